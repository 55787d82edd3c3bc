// Command parley-bench is Parley's load generator. It runs named scenarios
// (idle, chat, fanout, storm, sync, history, pairs, or all) against a server, shows
// progress on stderr once a second, and writes <scenario>.json and
// <scenario>.svg to --out. It re-executes itself as `parley-bench worker`
// subprocesses so that no process holds more than 9,500 sockets.
//
//	go build -o bin/ ./cmd/parleyd ./cmd/parley-bench
//	bin/parley-bench --start-server --pin --out bench-results all
//
// See docs/benchmarks.md for every command and the figures they produce.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "worker":
			// A subprocess of the orchestrator: job and commands on stdin,
			// progress and results on stdout.
			if err := loadgen.ServeWorker(ctx, stdin, stdout); err != nil {
				fmt.Fprintf(stderr, "parley-bench worker: %v\n", err)
				return 1
			}
			return 0
		case "seed-history":
			return seedHistory(ctx, args[1:], stderr)
		case "render":
			// Draw result files again (after a change to the picture).
			for _, path := range args[1:] {
				r, err := loadgen.ReadResult(path)
				if err == nil {
					err = os.WriteFile(strings.TrimSuffix(path, ".json")+".svg", []byte(r.SVG()), 0o644)
				}
				if err != nil {
					fmt.Fprintf(stderr, "parley-bench: %v\n", err)
					return 1
				}
			}
			return 0
		case "list":
			for _, s := range loadgen.Scenarios() {
				fmt.Fprintf(stdout, "%-8s %s\n         target: %s\n", s.Name, s.Title, s.Target)
			}
			return 0
		}
	}
	o := &loadgen.Options{Log: stderr}
	runs := 1
	fs := flag.NewFlagSet("parley-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.URL, "url", "", "server to test, e.g. http://127.0.0.1:8080 (or --start-server); a comma-separated list of a cluster's nodes spreads the sockets over them round robin (setup uses the first)")
	pids := fs.String("server-pid", "", "process id of that server: its CPU time and RSS are read from /proc/<pid>; with several nodes, a comma-separated list (figures are their sums)")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "the server's --pprof-addr, for --profile")
	fs.BoolVar(&o.StartServer, "start-server", false, "start parleyd on --data-dir (a temporary dir if empty) with the benchmark flags: "+strings.Join(loadgen.BenchServerFlags, " "))
	fs.BoolVar(&o.DefaultFlags, "default-flags", false, "with --start-server: run parleyd with its own defaults (bcrypt cost, rate limits) instead of the benchmark flags")
	fs.StringVar(&o.Parleyd, "parleyd", "", "parleyd binary for --start-server (default: next to parley-bench, then PATH)")
	fs.StringVar(&o.DataDir, "data-dir", "", "data dir of the started server; kept, so a rerun reuses its accounts and seeded messages")
	var serverArgs multi
	fs.Var(&serverArgs, "server-arg", "extra parleyd flag for --start-server (repeatable), e.g. --server-arg=--max-batch=512")
	var pin pinFlag
	fs.Var(&pin, "pin", "with --start-server: pin the server to core 0 (or --pin=LIST, a taskset CPU list) and the workers to the other cores (taskset)")
	fs.IntVar(&o.Workers, "workers", 0, "at least this many worker processes (default: one per 9,500 sockets)")
	fs.BoolVar(&o.InProcess, "in-process", false, "run workers as goroutines instead of subprocesses (small runs only)")
	fs.StringVar(&o.OutDir, "out", "bench-results", "directory for <scenario>.json, <scenario>.svg, profiles and the server log")
	fs.StringVar(&o.AccountsPath, "accounts", "", "account cache file (default: in --data-dir, else in --out)")
	fs.BoolVar(&o.Profile, "profile", false, "save the server's CPU and heap profiles during the main phase (needs --pprof-addr or --start-server)")
	fs.BoolVar(&o.Quick, "quick", false, "tiny sizes and one-second phases: a smoke test of the generator")
	fs.IntVar(&o.Sockets, "sockets", 0, "override the scenario's socket count")
	fs.Float64Var(&o.Rate, "rate", 0, "override the scenario's rate (msgs/s, deliveries/s for fanout, syncs/s, pages/s)")
	fs.DurationVar(&o.Duration, "duration", 0, "override the main phase's duration")
	fs.BoolVar(&o.Ramp, "ramp", false, "chat: run the ramp to the knee even with --quick")
	fs.IntVar(&o.Pairs, "pairs", 0, "pairs: sender/receiver pairs (default 1,000)")
	fs.Float64Var(&o.PairRate, "pair-rate", 0, "pairs: msgs/s each sender posts (default 5)")
	fs.StringVar(&o.Target, "target", loadgen.ProtoParley, "server software for --start-server: parley, or centrifugo (pairs only: the non-durable reference)")
	fs.StringVar(&o.Centrifugo, "centrifugo", "", "centrifugo binary for --target centrifugo (default: next to parley-bench, PATH, then ~/go/bin)")
	fs.IntVar(&runs, "runs", 1, "run each scenario this many times, each on a fresh server, and report the median, min and max of every figure")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "bound on each scenario")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "parley-bench: Parley's load generator.\n\nUsage:\n  parley-bench [flags] scenario... (or all)\n  parley-bench list\n  parley-bench render result.json...\n  parley-bench seed-history --data-dir DIR   (with the server stopped)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.ServerArgs = serverArgs
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "parley-bench: --server-pid %q: want process ids separated by commas\n", *pids)
			return 2
		}
		o.ServerPIDs = append(o.ServerPIDs, n)
	}
	if pin != "" {
		var err error
		if o.ServerCPUs, o.WorkerCPUs, err = pin.split(runtime.NumCPU()); err != nil {
			fmt.Fprintf(stderr, "parley-bench: --pin: %v\n", err)
			return 2
		}
	}
	names := fs.Args()
	if len(names) == 0 {
		fs.Usage()
		return 2
	}
	var scs []*loadgen.Scenario
	for _, n := range names {
		if n == "all" {
			scs = append(scs, loadgen.Scenarios()...)
			continue
		}
		sc, err := loadgen.FindScenario(n)
		if err != nil {
			fmt.Fprintf(stderr, "parley-bench: %v\n", err)
			return 2
		}
		scs = append(scs, sc)
	}
	if o.Target == loadgen.ProtoCentrifugo {
		if _, err := loadgen.FindCentrifugo(o.Centrifugo); err != nil {
			fmt.Fprintf(stderr, "parley-bench: skipped: %v\n", err)
			return 0
		}
	}
	var err error
	if runs > 1 {
		_, err = loadgen.RunRepeated(ctx, o, scs, runs)
	} else {
		_, err = loadgen.RunScenarios(ctx, o, scs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "parley-bench: %v\n", err)
		return 1
	}
	return 0
}

// pinFlag is --pin (core 0 for the server) or --pin=LIST.
type pinFlag string

func (p *pinFlag) String() string   { return string(*p) }
func (p *pinFlag) IsBoolFlag() bool { return true }
func (p *pinFlag) Set(v string) error {
	switch v {
	case "true":
		v = "0"
	case "false":
		v = ""
	}
	*p = pinFlag(v)
	return nil
}

// split returns the server's CPU list and the workers' (every other CPU
// of n) as taskset -c lists.
func (p pinFlag) split(n int) (server, workers string, err error) {
	taken := map[int]bool{}
	for _, part := range strings.Split(string(p), ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= n {
			return "", "", fmt.Errorf("%q: want a CPU list such as 0 or 0-1,3 of CPUs 0-%d", string(p), n-1)
		}
		for c := a; c <= b; c++ {
			taken[c] = true
		}
	}
	var rest []string
	for c := range n {
		if !taken[c] {
			rest = append(rest, strconv.Itoa(c))
		}
	}
	if len(rest) == 0 {
		return "", "", fmt.Errorf("%q leaves no CPU for the load workers", string(p))
	}
	return string(p), strings.Join(rest, ","), nil
}

func seedHistory(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed-history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data-dir", "", "the (stopped) server's data dir")
	quick := fs.Bool("quick", false, "the --quick sizes")
	if err := fs.Parse(args); err != nil || *dir == "" {
		fmt.Fprintln(stderr, "usage: parley-bench seed-history --data-dir DIR [--quick]")
		return 2
	}
	seed := loadgen.HistorySeed{Total: 1000000, Conv: 100000, Convs: 9}
	if *quick {
		seed = loadgen.HistorySeed{Total: 3000, Conv: 2000, Convs: 1}
	}
	if err := loadgen.SeedHistory(ctx, *dir, seed, stderr); err != nil {
		fmt.Fprintf(stderr, "parley-bench: %v\n", err)
		return 1
	}
	return 0
}
