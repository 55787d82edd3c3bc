package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Result is what a scenario run produced: written as <scenario>.json beside
// a picture, <scenario>.svg.
type Result struct {
	Scenario string         `json:"scenario"`
	Title    string         `json:"title"`
	Target   string         `json:"target"`
	Started  time.Time      `json:"started"`
	Seconds  float64        `json:"seconds"`
	Machine  Machine        `json:"machine"`
	Server   ServerInfo     `json:"server"`
	Params   map[string]any `json:"params"`
	Figures  []Figure       `json:"figures"`
	Limits   []string       `json:"limits,omitempty"` // what stood in the way
	Phases   []*Phase       `json:"phases"`
	Timeline []TimelineRow  `json:"timeline"`
	Error    string         `json:"error,omitempty"`
	// Picture selects what the SVG shows.
	Picture Picture `json:"picture"`
}

// Picture says which phase and histograms the SVG draws.
type Picture struct {
	Phase string   `json:"phase"` // phase whose distributions are drawn
	Hists []string `json:"hists"` // histogram names, in legend order
	Rate  []string `json:"rates"` // counters drawn as rates on the timeline
}

// ReadResult loads a result written by Write (to draw it again).
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Figure is one reported number beside its target.
type Figure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	LoadAvg   string `json:"loadavg_at_start"` // others share this machine
}

// ServerInfo describes the server under test.
type ServerInfo struct {
	URL       string   `json:"url"`
	PID       int      `json:"pid,omitempty"`
	URLs      []string `json:"urls,omitempty"` // every node, when the sockets were spread over several
	PIDs      []int    `json:"pids,omitempty"` // their processes; CPU and RSS figures are sums
	Placement string   `json:"placement"`
	Software  string   `json:"software,omitempty"` // parley, or centrifugo (the pairs scenario's peer)
	Command   []string `json:"command,omitempty"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	m.LoadAvg = loadAvg()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func (r *Result) figure(name string, value float64, unit, target string, met *bool, note string) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: round3(value), Unit: unit, Target: target, Met: met, Note: note})
}

func atMost(v, limit float64) *bool  { b := v <= limit; return &b }
func atLeast(v, limit float64) *bool { b := v >= limit; return &b }

// phase returns the named phase, or nil.
func (r *Result) phase(name string) *Phase {
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Write saves the JSON result and the SVG picture in dir.
func (r *Result) Write(dir string) (jsonPath, svgPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	jsonPath = filepath.Join(dir, r.Scenario+".json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(jsonPath, b, 0o644); err != nil {
		return "", "", err
	}
	svgPath = filepath.Join(dir, r.Scenario+".svg")
	if err := os.WriteFile(svgPath, []byte(r.SVG()), 0o644); err != nil {
		return "", "", err
	}
	return jsonPath, svgPath, nil
}

// PrintSummary writes the figures as a table.
func (r *Result) PrintSummary(w io.Writer) {
	fmt.Fprintf(w, "\n== %s: %s\n", r.Scenario, r.Title)
	if r.Error != "" {
		fmt.Fprintf(w, "   ERROR: %s\n", r.Error)
	}
	for _, f := range r.Figures {
		mark := "  "
		if f.Met != nil {
			mark = "ok"
			if !*f.Met {
				mark = "--"
			}
		}
		line := fmt.Sprintf("   %s %-44s %12s %-8s", mark, f.Name, fmtValue(f.Value), f.Unit)
		if f.Target != "" {
			line += "  target " + f.Target
		}
		if f.Note != "" {
			line += "  (" + f.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
	for _, l := range r.Limits {
		fmt.Fprintf(w, "   limit: %s\n", l)
	}
}

func fmtValue(v float64) string {
	switch {
	case v == float64(int64(v)) && (v >= 1000 || v <= -1000):
		return commas(int64(v))
	case v >= 100:
		return commas(int64(v + 0.5))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
