package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Spread is one figure over repeated runs.
type Spread struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"` // in run order
}

// Repeated is a scenario run several times, each on a fresh server.
type Repeated struct {
	Scenario string         `json:"scenario"`
	Runs     int            `json:"runs"`
	Params   map[string]any `json:"params"`
	Server   ServerInfo     `json:"server"`
	Machine  Machine        `json:"machine"`
	Figures  []Spread       `json:"figures"`
	Errors   []string       `json:"errors,omitempty"`
}

// RunRepeated runs the scenarios n times (RunScenarios, so a fresh server
// per run with StartServer), each run's results in OutDir/run-K, and writes
// OutDir/<scenario>-runs.json with the median, min and max of every figure.
func RunRepeated(ctx context.Context, o *Options, scs []*Scenario, n int) ([]*Repeated, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	base, dataDir := o.OutDir, o.DataDir
	if base == "" {
		base = "bench-results"
	}
	byName := map[string][]*Result{}
	var errs []error
	for k := 1; k <= n && ctx.Err() == nil; k++ {
		run := *o
		run.OutDir, run.DataDir = filepath.Join(base, "run-"+strconv.Itoa(k)), dataDir
		fmt.Fprintf(o.Log, "\n##### run %d of %d\n", k, n)
		results, err := RunScenarios(ctx, &run, scs)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %d: %w", k, err))
		}
		for _, r := range results {
			byName[r.Scenario] = append(byName[r.Scenario], r)
		}
	}
	var out []*Repeated
	for _, sc := range scs {
		rs := byName[sc.Name]
		if len(rs) == 0 {
			continue
		}
		rep := summarizeRuns(rs)
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(filepath.Join(base, sc.Name+"-runs.json"), b, 0o644)
		}
		if err != nil {
			errs = append(errs, err)
		}
		rep.Print(o.Log)
		out = append(out, rep)
	}
	return out, errors.Join(errs...)
}

// summarizeRuns gathers each figure across the runs of one scenario.
func summarizeRuns(rs []*Result) *Repeated {
	rep := &Repeated{Scenario: rs[0].Scenario, Runs: len(rs), Params: rs[0].Params, Server: rs[0].Server, Machine: rs[0].Machine}
	idx := map[string]int{}
	for _, r := range rs {
		if r.Error != "" {
			rep.Errors = append(rep.Errors, r.Error)
		}
		for _, f := range r.Figures {
			i, ok := idx[f.Name]
			if !ok {
				i = len(rep.Figures)
				idx[f.Name] = i
				rep.Figures = append(rep.Figures, Spread{Name: f.Name, Unit: f.Unit})
			}
			rep.Figures[i].Values = append(rep.Figures[i].Values, f.Value)
		}
	}
	for i := range rep.Figures {
		s := &rep.Figures[i]
		v := append([]float64(nil), s.Values...)
		sort.Float64s(v)
		s.Min, s.Max = v[0], v[len(v)-1]
		s.Median = v[len(v)/2]
		if len(v)%2 == 0 {
			s.Median = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
	}
	return rep
}

// Print writes the spread of every figure: median (min-max).
func (rep *Repeated) Print(w io.Writer) {
	fmt.Fprintf(w, "\n=== %s on %s, %d runs: median (min-max)\n", rep.Scenario, rep.Server.Software, rep.Runs)
	for _, s := range rep.Figures {
		fmt.Fprintf(w, "  %-40s %10.2f  (%.2f-%.2f) %s\n", s.Name, s.Median, s.Min, s.Max, s.Unit)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}
