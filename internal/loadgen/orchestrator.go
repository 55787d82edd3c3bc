package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// workerHandle is one worker, a subprocess or (for small runs and tests) a
// goroutine, spoken to in JSON lines.
type workerHandle struct {
	id      int
	enc     *json.Encoder
	stdin   io.WriteCloser
	cmd     *exec.Cmd
	done    chan struct{}
	senders int // sockets that post (for splitting rates)
	sockets int
}

// Fleet is the set of workers of one scenario.
type Fleet struct {
	run     *Run
	workers []*workerHandle
	msgs    chan Message
	stopped bool
}

// StartFleet spreads the sockets over workers (at most maxSocketsPerWorker
// each; at least opts.Workers) and starts them.
func (r *Run) StartFleet(ctx context.Context, socks []SockSpec) (*Fleet, error) {
	n := max(r.Opts.Workers, (len(socks)+maxSocketsPerWorker-1)/maxSocketsPerWorker, 1)
	if r.Opts.InProcess && len(socks) > 2000 {
		return nil, fmt.Errorf("%d sockets are too many for in-process workers", len(socks))
	}
	f := &Fleet{run: r, msgs: make(chan Message, 1024)}
	// Socket j goes to node j%len(URLs): with several nodes the two
	// sockets of a pair (2i, 2i+1) sit on different nodes, so 1:1 traffic
	// crosses the bus, and a group's members are spread over all of them.
	for j := range socks {
		socks[j].Node = j % len(r.URLs)
	}
	for i := range n {
		// Socket i goes to worker i%n: each worker gets a fair share of
		// every role.
		var share []SockSpec
		senders := 0
		for j := i; j < len(socks); j += n {
			share = append(share, socks[j])
			if len(socks[j].Convs) > 0 {
				senders++
			}
		}
		h, err := r.startWorker(ctx, i, f.msgs)
		if err != nil {
			f.Stop()
			return nil, err
		}
		h.senders, h.sockets = senders, len(share)
		f.workers = append(f.workers, h)
		if err := h.enc.Encode(Job{Worker: i, URL: r.URL, URLs: r.URLs, Sockets: share, Proto: r.proto()}); err != nil {
			f.Stop()
			return nil, fmt.Errorf("worker %d: sending the job: %w", i, err)
		}
	}
	return f, nil
}

func (r *Run) startWorker(ctx context.Context, id int, msgs chan<- Message) (*workerHandle, error) {
	h := &workerHandle{id: id, done: make(chan struct{})}
	var out io.Reader
	if r.Opts.InProcess {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		h.stdin, out = inW, outR
		go func() {
			err := ServeWorker(context.Background(), inR, outW)
			if err != nil {
				_ = json.NewEncoder(outW).Encode(Message{Kind: MsgFatal, Worker: id, Text: err.Error()})
			}
			outW.Close()
		}()
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		var cmd *exec.Cmd
		if r.Opts.WorkerCPUs != "" {
			cmd = exec.Command("taskset", "-c", r.Opts.WorkerCPUs, exe, "worker")
		} else {
			cmd = exec.Command(exe, "worker")
		}
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting worker %d: %w", id, err)
		}
		h.cmd, h.stdin, out = cmd, stdin, stdout
	}
	h.enc = json.NewEncoder(h.stdin)
	go func() {
		defer close(h.done)
		dec := json.NewDecoder(bufio.NewReaderSize(out, 1<<20))
		for {
			var m Message
			if err := dec.Decode(&m); err != nil {
				if err != io.EOF {
					msgs <- Message{Kind: MsgFatal, Worker: id, Text: "reading worker output: " + err.Error()}
				}
				return
			}
			m.Worker = id
			msgs <- m
		}
	}()
	return h, nil
}

// Stop tells every worker to quit and waits for them (killing after 10 s).
func (f *Fleet) Stop() {
	if f.stopped {
		return
	}
	f.stopped = true
	for _, h := range f.workers {
		_ = h.enc.Encode(Command{Op: OpQuit})
		_ = h.stdin.Close()
	}
	deadline := time.After(10 * time.Second)
	for _, h := range f.workers {
		select {
		case <-h.done:
		case <-deadline:
		}
		if h.cmd != nil {
			select {
			case <-h.done:
				_ = h.cmd.Wait()
			default:
				_ = h.cmd.Process.Kill()
				_ = h.cmd.Wait()
			}
		}
	}
	// Drain what is left so that readers are not stuck.
	for {
		select {
		case <-f.msgs:
		default:
			return
		}
	}
}

// generatorCPU is the CPU seconds used so far by the worker processes (0
// for in-process workers).
func (f *Fleet) generatorCPU() float64 {
	total := 0.0
	for _, h := range f.workers {
		if h.cmd != nil && h.cmd.Process != nil {
			if s, err := SampleProc(h.cmd.Process.Pid); err == nil {
				total += s.CPU
			}
		}
	}
	return total
}

// Sockets is the number of sockets of the fleet.
func (f *Fleet) Sockets() int {
	n := 0
	for _, h := range f.workers {
		n += h.sockets
	}
	return n
}

// Do runs a command on every worker and waits for all to finish. The rate is
// the total: it is split by each worker's share of sending sockets (or of
// sockets, when none sends). Progress is printed every second and recorded
// in the run's timeline; the phase's outcome is returned and added to the
// result.
func (f *Fleet) Do(ctx context.Context, c Command) (*Phase, error) {
	r := f.run
	ph := newPhase(c.Phase, c.Rate)
	totalSenders, totalSockets := 0, 0
	for _, h := range f.workers {
		totalSenders += h.senders
		totalSockets += h.sockets
	}
	for _, h := range f.workers {
		wc := c
		switch {
		case c.Op == OpHistory:
			wc.Rate = c.Rate / float64(len(f.workers))
			wc.Concurrent = max(1, c.Concurrent/len(f.workers))
		case totalSenders > 0:
			wc.Rate = c.Rate * float64(h.senders) / float64(totalSenders)
		case totalSockets > 0:
			wc.Rate = c.Rate * float64(h.sockets) / float64(totalSockets)
		}
		if err := h.enc.Encode(wc); err != nil {
			return nil, fmt.Errorf("worker %d: %w", h.id, err)
		}
	}
	r.beginPhase(ph)
	gen0 := f.generatorCPU()
	defer func() {
		if gen0 > 0 {
			ph.Generator = round3(100 * (f.generatorCPU() - gen0) / time.Since(ph.Start).Seconds())
		}
		r.endPhase(ph)
	}()
	pending := len(f.workers)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	limit := time.Duration(c.TimeoutMS) * time.Millisecond
	if limit <= 0 {
		limit = time.Duration(c.DurationMS+c.DrainMS)*time.Millisecond + 3*time.Minute
	}
	deadline := time.After(limit + 10*time.Second)
	for pending > 0 {
		select {
		case m := <-f.msgs:
			switch m.Kind {
			case MsgProgress:
				if m.Progress != nil {
					r.addInterval(ph, m.Worker, m.Progress)
				}
			case MsgDone:
				ph.addDone(m.Done)
				pending--
			case MsgLog:
				r.logf("worker %d: %s", m.Worker, m.Text)
			case MsgFatal:
				return ph, fmt.Errorf("worker %d: %s", m.Worker, m.Text)
			}
		case <-tick.C:
			r.tick(ph)
		case <-deadline:
			return ph, fmt.Errorf("phase %s: workers did not finish in %s", c.Phase, limit)
		case <-ctx.Done():
			return ph, ctx.Err()
		}
	}
	return ph, nil
}

// Phase is one command's outcome over all workers.
type Phase struct {
	Name     string               `json:"name"`
	Rate     float64              `json:"rate,omitempty"` // requested, per second
	Start    time.Time            `json:"start"`
	Seconds  float64              `json:"seconds"`
	Counters map[string]uint64    `json:"counters"`
	Latency  map[string]Summary   `json:"latency_ms"`
	Errors   []string             `json:"errors,omitempty"`
	Server   *ServerDelta         `json:"server,omitempty"`
	Hists    map[string]*Snapshot `json:"histograms,omitempty"`
	// LastRecipient is built from the per-message delivery times (fan-out).
	lastMax   map[string]uint32
	lastCount map[string]uint32
	// Machine is how busy all cores were during the phase (percent of all
	// of them): the server, the generator and whatever else ran.
	Machine   float64 `json:"machine_busy_percent"`
	Generator float64 `json:"generator_cpu_percent,omitempty"` // worker processes, percent of one core
	LoadAvg   string  `json:"loadavg_at_end"`
	// ListenDrops counts SYNs the kernel dropped because a listen queue
	// was full (clients retry after 1 s, then 3 s).
	ListenDrops float64 `json:"listen_drops,omitempty"`
	drops0      float64
	busy0       [2]float64
	live        map[string]*Histogram // merged intervals, for "p99 so far"
	open        map[int]int           // latest open sockets per worker
	startCPU    ProcSample
	hists       map[string]*Histogram
}

// ServerDelta is what the server spent during a phase.
type ServerDelta struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPercent      float64 `json:"cpu_percent_of_one_core"`
	RSSStartMB      float64 `json:"rss_start_mb"`
	RSSEndMB        float64 `json:"rss_end_mb"`
	CPUPerMessageUS float64 `json:"cpu_us_per_message,omitempty"`
	CPUPerDeliverUS float64 `json:"cpu_us_per_delivery,omitempty"`
	CPUPerOpUS      float64 `json:"cpu_us_per_op,omitempty"`
}

func newPhase(name string, rate float64) *Phase {
	return &Phase{Name: name, Rate: rate, Counters: map[string]uint64{}, Latency: map[string]Summary{},
		live: map[string]*Histogram{}, open: map[int]int{}, hists: map[string]*Histogram{}}
}

func (ph *Phase) addDone(d *Done) {
	if d == nil {
		return
	}
	for k, v := range d.Counters {
		ph.Counters[k] += v
	}
	for k, s := range d.Hists {
		h := ph.hists[k]
		if h == nil {
			h = NewHistogram()
			ph.hists[k] = h
		}
		h.Merge(s)
	}
	for _, e := range d.Errors {
		if len(ph.Errors) < 12 && !contains(ph.Errors, e) {
			ph.Errors = append(ph.Errors, e)
		}
	}
	if d.Last != nil {
		if ph.lastMax == nil {
			ph.lastMax, ph.lastCount = map[string]uint32{}, map[string]uint32{}
		}
		for id, v := range d.Last {
			ph.lastMax[id] = max(ph.lastMax[id], v[0])
			ph.lastCount[id] += v[1]
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// finish computes the summaries once every worker is done.
func (ph *Phase) finish() {
	ph.Hists = map[string]*Snapshot{}
	for k, h := range ph.hists {
		s := h.Snapshot()
		ph.Hists[k] = s
		ph.Latency[k] = s.Summarize()
	}
}

// LastRecipient returns the histogram of post-to-last-recipient times and
// how many messages reached fewer than expect recipients.
func (ph *Phase) LastRecipient(expect int) (*Snapshot, int) {
	var h Histogram
	short := 0
	for id, us := range ph.lastMax {
		h.RecordMicros(uint64(us))
		if int(ph.lastCount[id]) < expect {
			short++
		}
	}
	return h.Snapshot(), short
}

// Open is the number of sockets open at the phase's end.
func (ph *Phase) Open() int {
	n := 0
	for _, v := range ph.open {
		n += v
	}
	return n
}

// PerSecond is a counter divided by the phase's duration.
func (ph *Phase) PerSecond(counter string) float64 {
	if ph.Seconds <= 0 {
		return 0
	}
	return float64(ph.Counters[counter]) / ph.Seconds
}

// timeline row state kept by the run between ticks.
type tickState struct {
	counters map[string]uint64
	hists    map[string]*Histogram
}

// TimelineRow is one second of a run.
type TimelineRow struct {
	T        float64            `json:"t"` // seconds since the run started
	Phase    string             `json:"phase"`
	Open     int                `json:"open"`
	Counters map[string]uint64  `json:"counters,omitempty"`
	P50      map[string]float64 `json:"p50_ms,omitempty"`
	P99      map[string]float64 `json:"p99_ms,omitempty"`
	CPU      float64            `json:"server_cpu_percent"`
	RSSMB    float64            `json:"server_rss_mb"`
	Machine  float64            `json:"machine_cpu_percent"` // all processes, percent of one core
}

func (r *Run) addInterval(ph *Phase, worker int, iv *Interval) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ph.open[worker] = iv.Open
	for k, v := range iv.Counters {
		r.tickSt.counters[k] += v
	}
	for k, s := range iv.Hists {
		for _, m := range []map[string]*Histogram{r.tickSt.hists, ph.live} {
			h := m[k]
			if h == nil {
				h = NewHistogram()
				m[k] = h
			}
			h.Merge(s)
		}
	}
}

// tick closes one second of the timeline and prints the progress line.
func (r *Run) tick(ph *Phase) {
	r.mu.Lock()
	st := r.tickSt
	r.tickSt = tickState{counters: map[string]uint64{}, hists: map[string]*Histogram{}}
	r.mu.Unlock()
	now := time.Now()
	row := TimelineRow{T: now.Sub(r.Start).Seconds(), Phase: ph.Name, Open: ph.Open(), Counters: st.counters,
		P50: map[string]float64{}, P99: map[string]float64{}}
	for k, h := range st.hists {
		s := h.Snapshot()
		row.P50[k] = float64(s.Quantile(0.5)) / 1000
		row.P99[k] = float64(s.Quantile(0.99)) / 1000
	}
	if len(r.PIDs) > 0 {
		if s, err := SampleProcs(r.PIDs); err == nil {
			if !r.lastSample.At.IsZero() {
				row.CPU = 100 * (s.CPU - r.lastSample.CPU) / s.At.Sub(r.lastSample.At).Seconds()
			}
			row.RSSMB = float64(s.RSS) / (1 << 20)
			r.lastSample = s
		}
	}
	if b, t := machineBusy(); t > r.lastBusy[1] && r.lastBusy[1] > 0 {
		row.Machine = round3(100 * float64(r.Result.Machine.CPUs) * (b - r.lastBusy[0]) / (t - r.lastBusy[1]))
		r.lastBusy = [2]float64{b, t}
	} else {
		r.lastBusy = [2]float64{b, t}
	}
	r.Result.Timeline = append(r.Result.Timeline, row)
	// The progress line: sockets, rates, p99 so far.
	var b strings.Builder
	fmt.Fprintf(&b, "[%s %3.0fs] sockets=%d", ph.Name, now.Sub(ph.Start).Seconds(), row.Open)
	keys := make([]string, 0, len(st.counters))
	for k := range st.counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "pongs" || k == "page_bytes" || k == "other_frames" {
			continue
		}
		fmt.Fprintf(&b, " %s/s=%d", k, st.counters[k])
	}
	lk := make([]string, 0, len(ph.live))
	for k := range ph.live {
		lk = append(lk, k)
	}
	sort.Strings(lk)
	for _, k := range lk {
		if k == "lag" {
			continue
		}
		fmt.Fprintf(&b, " %s-p99=%s", k, fmtMS(float64(ph.live[k].Snapshot().Quantile(0.99))/1000))
	}
	if len(r.PIDs) > 0 {
		fmt.Fprintf(&b, " | server cpu=%.0f%% rss=%.0fMB", row.CPU, row.RSSMB)
	}
	fmt.Fprintf(&b, " | machine %.0f%%", row.Machine)
	r.logf("%s", b.String())
}

func (r *Run) beginPhase(ph *Phase) {
	ph.Start = time.Now()
	ph.busy0[0], ph.busy0[1] = machineBusy()
	ph.drops0 = listenDrops()
	if len(r.PIDs) > 0 {
		ph.startCPU, _ = SampleProcs(r.PIDs)
	}
}

func (r *Run) endPhase(ph *Phase) {
	r.tick(ph) // the last (partial) second
	ph.Seconds = time.Since(ph.Start).Seconds()
	ph.finish()
	if b, t := machineBusy(); t > ph.busy0[1] {
		ph.Machine = round3(100 * (b - ph.busy0[0]) / (t - ph.busy0[1]))
	}
	ph.LoadAvg = loadAvg()
	ph.ListenDrops = listenDrops() - ph.drops0
	if len(r.PIDs) > 0 && !ph.startCPU.At.IsZero() {
		if s, err := SampleProcs(r.PIDs); err == nil {
			cpu := s.CPU - ph.startCPU.CPU
			ph.Server = &ServerDelta{
				CPUSeconds: round3(cpu),
				CPUPercent: round3(100 * cpu / s.At.Sub(ph.startCPU.At).Seconds()),
				RSSStartMB: round3(float64(ph.startCPU.RSS) / (1 << 20)),
				RSSEndMB:   round3(float64(s.RSS) / (1 << 20)),
			}
			if n := ph.Counters["acked"]; n > 0 {
				ph.Server.CPUPerMessageUS = round3(cpu * 1e6 / float64(n))
			}
			if n := ph.Counters["delivered"]; n > 0 {
				ph.Server.CPUPerDeliverUS = round3(cpu * 1e6 / float64(n))
			}
			if n := ph.Counters["synced"] + ph.Counters["pages"]; n > 0 {
				ph.Server.CPUPerOpUS = round3(cpu * 1e6 / float64(n))
			}
		}
	}
	r.Result.Phases = append(r.Result.Phases, ph)
	r.logf("phase %s done in %.1fs: %s", ph.Name, ph.Seconds, ph.brief())
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func (ph *Phase) brief() string {
	var parts []string
	keys := make([]string, 0, len(ph.Latency))
	for k := range ph.Latency {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+" "+ph.Latency[k].String())
	}
	for _, k := range []string{"sent", "acked", "delivered", "connected", "connect_failed", "synced", "sync_failed", "pages", "late", "closed", "errors"} {
		if v, ok := ph.Counters[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	if ph.Server != nil {
		parts = append(parts, fmt.Sprintf("server cpu=%.0f%%", ph.Server.CPUPercent))
	}
	parts = append(parts, fmt.Sprintf("generator cpu=%.0f%% machine busy=%.0f%% load=%s", ph.Generator, ph.Machine, ph.LoadAvg))
	if len(ph.Errors) > 0 {
		parts = append(parts, fmt.Sprintf("errors: %q", ph.Errors))
	}
	return strings.Join(parts, "; ")
}

// Run is one scenario's execution: options, the server under test, the
// result being built.
type Run struct {
	Opts   *Options
	URL    string   // the first node: setup and REST
	URLs   []string // every node the sockets are spread over
	PIDs   []int    // server processes (one per node), none if unknown: CPU and RSS are their sums
	Pprof  string
	Start  time.Time
	Result *Result
	Acc    *Accounts
	api    *api
	out    io.Writer
	secret string // Centrifugo's token key (Target centrifugo)

	mu         sync.Mutex
	tickSt     tickState
	lastSample ProcSample
	lastBusy   [2]float64
}

func (r *Run) logf(format string, args ...any) {
	fmt.Fprintf(r.out, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
