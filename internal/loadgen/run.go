package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options configure a benchmark run.
type Options struct {
	URL          string        // server to test (unless StartServer); a comma-separated list spreads the sockets over several nodes
	ServerPIDs   []int         // its processes, for CPU and RSS (none: not measured); with several nodes, one per node, summed
	PprofAddr    string        // its --pprof-addr, for Profile
	StartServer  bool          // start parleyd on DataDir (temp dir if empty)
	Parleyd      string        // parleyd binary for StartServer
	DataDir      string        // server data dir for StartServer (kept); temp and removed if empty
	ServerArgs   []string      // extra parleyd flags
	DefaultFlags bool          // parleyd with its defaults instead of BenchServerFlags
	ServerCPUs   string        // taskset -c for the server ("" = unpinned)
	WorkerCPUs   string        // taskset -c for worker processes
	Workers      int           // at least this many worker processes
	InProcess    bool          // workers as goroutines (tests, tiny runs)
	OutDir       string        // results: <scenario>.json, .svg, profiles
	AccountsPath string        // account cache file ("" = in DataDir, else OutDir)
	Profile      bool          // CPU and heap profiles of the server during the main phase
	Quick        bool          // tiny sizes: a smoke test of the machinery
	Sockets      int           // override the scenario's socket count
	Rate         float64       // override the scenario's rate
	Duration     time.Duration // override the main phase's duration
	Ramp         bool          // chat: run the ramp to find the knee
	Pairs        int           // pairs: sender/receiver pairs (override)
	PairRate     float64       // pairs: msgs/s each sender sends (override)
	Target       string        // ProtoParley ("" too) or ProtoCentrifugo (pairs only, with StartServer)
	Centrifugo   string        // centrifugo binary for Target centrifugo (default: next to parley-bench, PATH, GOPATH/bin)
	Timeout      time.Duration // bound on each scenario (default 10 min)
	Log          io.Writer     // progress (stderr)
}

// Scenario is a named benchmark.
type Scenario struct {
	Name   string
	Title  string
	Target string
	// Prepare runs before the server starts, on its data dir (only with
	// StartServer): offline seeding.
	Prepare func(ctx context.Context, o *Options, dataDir string) error
	Run     func(ctx context.Context, r *Run) error
	// Peer: the scenario also runs against Centrifugo (Options.Target).
	Peer bool
}

// Scenarios lists every scenario in the order they run by default.
func Scenarios() []*Scenario {
	return []*Scenario{idleScenario, chatScenario, fanoutScenario, stormScenario, syncScenario, historyScenario, pairsScenario}
}

// FindScenario returns the named scenario.
func FindScenario(name string) (*Scenario, error) {
	var names []string
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("no scenario %q (have %s)", name, strings.Join(names, ", "))
}

// RunScenarios runs the scenarios one after the other, against opts.URL or
// a server it starts, and writes each result to opts.OutDir.
func RunScenarios(ctx context.Context, o *Options, scs []*Scenario) ([]*Result, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.OutDir == "" {
		o.OutDir = "bench-results"
	}
	peer := o.Target == ProtoCentrifugo
	switch {
	case o.Target != "" && o.Target != ProtoParley && !peer:
		return nil, fmt.Errorf("--target %q: want %s or %s", o.Target, ProtoParley, ProtoCentrifugo)
	case peer && !o.StartServer:
		return nil, errors.New("--target centrifugo needs --start-server (the generator writes its config)")
	}
	if peer {
		for _, sc := range scs {
			if !sc.Peer {
				return nil, fmt.Errorf("scenario %s runs against Parley only", sc.Name)
			}
		}
	}
	var srv *ServerProc
	placement := "external"
	if o.StartServer {
		dir := o.DataDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "parley-bench-data-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		o.DataDir = dir
		var err error
		if peer {
			srv, err = startPeer(ctx, o)
		} else {
			srv, err = startParleyd(ctx, o, scs)
		}
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		o.URL, o.ServerPIDs, o.PprofAddr = srv.URL, []int{srv.PID()}, srv.PprofAddr
		placement = "unpinned: server and generator share both cores"
		if o.ServerCPUs != "" {
			placement = fmt.Sprintf("server on core %s, workers on core %s (taskset)", o.ServerCPUs, o.WorkerCPUs)
		}
		fmt.Fprintf(o.Log, "%s pid %d at %s (data %s)\n", filepath.Base(srv.Args[0]), srv.PID(), o.URL, dir)
	}
	urls := SplitURLs(o.URL)
	if len(urls) == 0 {
		return nil, errors.New("no server: give --url or --start-server")
	}
	if len(urls) > 1 {
		placement = fmt.Sprintf("external cluster of %d nodes; sockets spread round robin", len(urls))
	}
	accPath := o.AccountsPath
	if accPath == "" {
		if o.DataDir != "" {
			accPath = filepath.Join(o.DataDir, "parley-bench-accounts.json")
		} else {
			accPath = filepath.Join(o.OutDir, "parley-bench-accounts.json")
		}
	}
	var acc *Accounts
	var c *api
	if !peer {
		var err error
		if acc, err = LoadAccounts(accPath, urls[0]); err != nil {
			return nil, err
		}
		c = newAPI(urls[0])
		acc.validate(ctx, c)
	}
	var results []*Result
	var errs []error
	for _, sc := range scs {
		r := &Run{Opts: o, URL: urls[0], URLs: urls, PIDs: o.ServerPIDs, Pprof: o.PprofAddr, Start: time.Now(), Acc: acc, api: c, out: o.Log,
			tickSt: tickState{counters: map[string]uint64{}, hists: map[string]*Histogram{}}}
		r.Result = &Result{Scenario: sc.Name, Title: sc.Title, Target: sc.Target, Started: r.Start, Machine: machine(),
			Server: ServerInfo{URL: o.URL, PID: firstPID(o.ServerPIDs), Placement: placement}, Params: map[string]any{}}
		if len(urls) > 1 || len(o.ServerPIDs) > 1 {
			r.Result.Server.URLs, r.Result.Server.PIDs = urls, o.ServerPIDs
		}
		if srv != nil {
			r.Result.Server.Command = srv.Args
			r.secret = srv.Secret
		}
		r.Result.Server.Software = ProtoParley
		if peer {
			r.Result.Server.Software = ProtoCentrifugo
		}
		fmt.Fprintf(o.Log, "\n=== %s: %s (target: %s)\n", sc.Name, sc.Title, sc.Target)
		sctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := sc.Run(sctx, r)
		cancel()
		r.Result.Seconds = round3(time.Since(r.Start).Seconds())
		if err != nil {
			r.Result.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", sc.Name, err))
		}
		if o.OutDir != "" {
			j, s, werr := r.Result.Write(o.OutDir)
			if werr != nil {
				errs = append(errs, werr)
			} else {
				fmt.Fprintf(o.Log, "wrote %s and %s\n", j, s)
			}
		}
		r.Result.PrintSummary(o.Log)
		results = append(results, r.Result)
		if ctx.Err() != nil {
			break
		}
	}
	return results, errors.Join(errs...)
}

// startParleyd prepares the data dir for scs and starts parleyd on it.
func startParleyd(ctx context.Context, o *Options, scs []*Scenario) (*ServerProc, error) {
	for _, sc := range scs {
		if sc.Prepare != nil {
			if err := sc.Prepare(ctx, o, o.DataDir); err != nil {
				return nil, fmt.Errorf("%s: preparing: %w", sc.Name, err)
			}
		}
	}
	bin, err := FindParleyd(o.Parleyd)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	return StartServer(ctx, ServerOptions{Binary: bin, DataDir: o.DataDir, CPUs: o.ServerCPUs, Pprof: o.Profile,
		Extra: o.ServerArgs, DefaultFlags: o.DefaultFlags, LogPath: filepath.Join(o.OutDir, "parleyd.log")})
}

// startPeer starts Centrifugo with a config in the data dir.
func startPeer(ctx context.Context, o *Options) (*ServerProc, error) {
	bin, err := FindCentrifugo(o.Centrifugo)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	return StartCentrifugo(ctx, CentrifugoOptions{Binary: bin, Dir: o.DataDir, CPUs: o.ServerCPUs, LogPath: filepath.Join(o.OutDir, "centrifugo.log")})
}

// size picks the full, quick or overridden value of a scenario parameter.
func (r *Run) size(full, quick int, override int) int {
	switch {
	case override > 0:
		return override
	case r.Opts.Quick:
		return quick
	}
	return full
}

func (r *Run) rate(full, quick float64) float64 {
	switch {
	case r.Opts.Rate > 0:
		return r.Opts.Rate
	case r.Opts.Quick:
		return quick
	}
	return full
}

func (r *Run) duration(full, quick time.Duration) time.Duration {
	switch {
	case r.Opts.Duration > 0:
		return r.Opts.Duration
	case r.Opts.Quick:
		return quick
	}
	return full
}

// users returns n accounts of a pool, creating what is missing.
func (r *Run) users(ctx context.Context, pool string, n int) ([]Account, error) {
	start := time.Now()
	have := len(r.Acc.Pools[pool])
	us, err := r.Acc.Users(ctx, r.api, pool, n, func(done, total int) {
		r.logf("setup: %d of %d accounts created", done, total)
	})
	if err == nil && have < n {
		r.logf("setup: %d accounts created in %s (cached in %s)", n-have, time.Since(start).Round(time.Millisecond), r.Acc.path)
	}
	return us, err
}

// profile takes a CPU profile of the server for d (in the background) and a
// heap profile at the end; wait blocks until both are saved.
func (r *Run) profile(ctx context.Context, d time.Duration) (wait func()) {
	if !r.Opts.Profile || r.Pprof == "" || d < time.Second {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		base := filepath.Join(r.Opts.OutDir, r.Result.Scenario)
		cpu := base + "-cpu.pprof"
		if err := fetchProfile(ctx, r.Pprof, "profile", fmt.Sprintf("?seconds=%d", int(d.Seconds())), cpu); err != nil {
			r.logf("cpu profile: %v", err)
		} else {
			r.logf("saved %s", cpu)
		}
		heap := base + "-heap.pprof"
		if err := fetchProfile(ctx, r.Pprof, "heap", "", heap); err != nil {
			r.logf("heap profile: %v", err)
		} else {
			r.logf("saved %s", heap)
		}
	}()
	return func() { <-done }
}

// sample reads the server's process figures (zero without a pid), summed
// over the nodes.
func (r *Run) sample() ProcSample {
	if len(r.PIDs) == 0 {
		return ProcSample{}
	}
	s, err := SampleProcs(r.PIDs)
	if err != nil {
		r.logf("reading /proc: %v", err)
	}
	return s
}

// SplitURLs splits a comma-separated list of server URLs, dropping blanks
// and trailing slashes.
func SplitURLs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func firstPID(pids []int) int {
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}
