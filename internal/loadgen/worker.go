package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Worker runs one share of a scenario's sockets. It reads a Job and then
// Commands (JSON lines) and writes Messages (JSON lines): a progress line
// about every second, and a done line when a command finishes.
type Worker struct {
	job    Job
	wsURLs []string // by node (SockSpec.Node)
	client *http.Client
	socks  []*socket

	outMu sync.Mutex
	out   *json.Encoder

	mu        sync.Mutex // guards the maps below (the values are atomic)
	phase     string
	counters  map[string]*atomic.Uint64 // this command
	ivCount   map[string]*atomic.Uint64 // this progress interval
	hists     map[string]*Histogram     // this command
	ivHists   map[string]*Histogram     // this progress interval
	errs      []string
	trackLast atomic.Bool
	// lastDelivery is when the latest new_message arrived (unix nanos).
	lastDelivery atomic.Int64
	lastMu       sync.Mutex
	last         map[string][2]uint32
}

// maxSocketsPerWorker keeps a worker process well under the 20,000 open files
// a process may hold here (each socket is one file).
const maxSocketsPerWorker = 9500

// ServeWorker runs a worker on r and w until it reads a quit command or r
// ends. It is the body of `parley-bench worker` and of in-process workers.
func ServeWorker(ctx context.Context, r io.Reader, w io.Writer) error {
	in := bufio.NewReaderSize(r, 1<<20)
	dec := json.NewDecoder(in)
	var job Job
	if err := dec.Decode(&job); err != nil {
		return fmt.Errorf("worker: reading the job: %w", err)
	}
	if len(job.Sockets) > maxSocketsPerWorker {
		return fmt.Errorf("worker: %d sockets, more than %d per process", len(job.Sockets), maxSocketsPerWorker)
	}
	urls := job.URLs
	if len(urls) == 0 {
		urls = []string{job.URL}
	}
	wk := &Worker{job: job, client: newHTTPClient(), out: json.NewEncoder(w)}
	for _, u := range urls {
		if job.Proto == ProtoCentrifugo {
			wk.wsURLs = append(wk.wsURLs, centrifugoWS(u))
		} else {
			wk.wsURLs = append(wk.wsURLs, wsURL(u))
		}
	}
	for _, spec := range job.Sockets {
		if spec.Node < 0 || spec.Node >= len(urls) {
			return fmt.Errorf("worker: socket of user %s on node %d of %d", spec.User, spec.Node, len(urls))
		}
	}
	wk.resetPhase("setup", false)
	// Message ids are unique per sender across runs (a repeated id would be
	// taken for a retry): worker, socket and the start time of this process.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i, spec := range job.Sockets {
		prefix := "w" + strconv.Itoa(job.Worker) + "s" + strconv.Itoa(i) + "r" + run
		wk.socks = append(wk.socks, &socket{w: wk, idx: i, spec: spec, prefix: prefix, ackSig: make(chan struct{}, 1), learnBack: -1})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go wk.progressLoop(ctx)
	if job.Proto != ProtoCentrifugo { // its server pings, the socket answers
		go wk.heartbeatLoop(ctx)
	}
	defer wk.closeAll()

	cmds := make(chan Command)
	go func() {
		defer close(cmds)
		for {
			var c Command
			if err := dec.Decode(&c); err != nil {
				return
			}
			cmds <- c
		}
	}()
	for {
		var c Command
		var ok bool
		select {
		case c, ok = <-cmds:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok || c.Op == OpQuit {
			return nil
		}
		wk.run(ctx, c)
	}
}

// run executes one command and reports it done.
func (wk *Worker) run(ctx context.Context, c Command) {
	wk.resetPhase(c.Phase, c.TrackLast)
	limit := time.Duration(c.TimeoutMS) * time.Millisecond
	if limit <= 0 {
		limit = time.Duration(c.DurationMS+c.DrainMS)*time.Millisecond + 2*time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	switch c.Op {
	case OpConnect:
		wk.connect(ctx, c)
	case OpChat:
		wk.chat(ctx, c)
	case OpBurst:
		wk.burst(ctx, c)
	case OpIdle:
		sleepCtx(ctx, time.Duration(c.DurationMS)*time.Millisecond)
	case OpStorm:
		wk.storm(ctx, c)
	case OpSync:
		wk.syncLoad(ctx, c)
	case OpHistory:
		wk.history(ctx, c)
	case OpLearn:
		wk.learn(ctx, c)
	default:
		wk.noteErr(fmt.Errorf("unknown op %q", c.Op))
	}
	wk.flushInterval()
	wk.send(Message{Kind: MsgDone, Phase: c.Phase, Done: wk.done()})
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (wk *Worker) send(m Message) {
	m.Worker = wk.job.Worker
	wk.outMu.Lock()
	defer wk.outMu.Unlock()
	_ = wk.out.Encode(m)
}

func (wk *Worker) logf(format string, args ...any) {
	wk.send(Message{Kind: MsgLog, Text: fmt.Sprintf(format, args...)})
}

// resetPhase starts the counters and histograms of a new command.
func (wk *Worker) resetPhase(phase string, trackLast bool) {
	wk.flushInterval()
	wk.mu.Lock()
	wk.phase = phase
	wk.counters = map[string]*atomic.Uint64{}
	wk.ivCount = map[string]*atomic.Uint64{}
	wk.hists = map[string]*Histogram{}
	wk.ivHists = map[string]*Histogram{}
	wk.errs = nil
	wk.mu.Unlock()
	wk.lastMu.Lock()
	wk.last = nil
	if trackLast {
		wk.last = make(map[string][2]uint32)
	}
	wk.lastMu.Unlock()
	wk.trackLast.Store(trackLast)
}

// count adds n to a counter of the command and of the interval.
func (wk *Worker) count(name string, n uint64) {
	wk.mu.Lock()
	c, iv := wk.counters[name], wk.ivCount[name]
	if c == nil {
		c = new(atomic.Uint64)
		wk.counters[name] = c
	}
	if iv == nil {
		iv = new(atomic.Uint64)
		wk.ivCount[name] = iv
	}
	wk.mu.Unlock()
	c.Add(n)
	iv.Add(n)
}

// recorder records into the command's and the interval's histogram.
type recorder struct{ a, b *Histogram }

func (r recorder) Record(d time.Duration) {
	r.a.Record(d)
	r.b.Record(d)
}

func (wk *Worker) hist(name string) recorder {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	h, iv := wk.hists[name], wk.ivHists[name]
	if h == nil {
		h = NewHistogram()
		wk.hists[name] = h
	}
	if iv == nil {
		iv = NewHistogram()
		wk.ivHists[name] = iv
	}
	return recorder{h, iv}
}

func (wk *Worker) noteErr(err error) {
	s := err.Error()
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if len(wk.errs) >= 8 {
		return
	}
	for _, e := range wk.errs {
		if e == s {
			return
		}
	}
	wk.errs = append(wk.errs, s)
}

// noteLast records one delivery of a message for the last-recipient figure.
func (wk *Worker) noteLast(clientID []byte, d time.Duration) {
	if len(clientID) == 0 {
		return
	}
	us := uint32(min(d.Microseconds(), 1<<32-1))
	wk.lastMu.Lock()
	if wk.last != nil {
		v := wk.last[string(clientID)]
		v[0] = max(v[0], us)
		v[1]++
		wk.last[string(clientID)] = v
	}
	wk.lastMu.Unlock()
}

func (wk *Worker) openCount() int {
	n := 0
	for _, s := range wk.socks {
		if s.open.Load() {
			n++
		}
	}
	return n
}

// flushInterval writes the current interval's progress and starts a new one.
func (wk *Worker) flushInterval() {
	wk.mu.Lock()
	if wk.ivCount == nil {
		wk.mu.Unlock()
		return
	}
	counts, hists, phase := wk.ivCount, wk.ivHists, wk.phase
	wk.ivCount, wk.ivHists = map[string]*atomic.Uint64{}, map[string]*Histogram{}
	wk.mu.Unlock()
	iv := &Interval{End: time.Now().UnixNano(), Open: wk.openCount(), Counters: map[string]uint64{}, Hists: map[string]*Snapshot{}}
	for k, v := range counts {
		iv.Counters[k] = v.Load()
	}
	for k, h := range hists {
		iv.Hists[k] = h.Snapshot()
	}
	wk.send(Message{Kind: MsgProgress, Phase: phase, Progress: iv})
}

func (wk *Worker) progressLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			wk.flushInterval()
		case <-ctx.Done():
			return
		}
	}
}

// heartbeatLoop sends each open socket a ping frame every 30 s (the server
// closes sockets silent for two heartbeat intervals), spread evenly.
func (wk *Worker) heartbeatLoop(ctx context.Context) {
	const period = 30
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		for i := tick % period; i < len(wk.socks); i += period {
			if s := wk.socks[i]; s.open.Load() {
				s.write(pingFrame)
			}
		}
	}
}

// done collects the command's outcome.
func (wk *Worker) done() *Done {
	wk.mu.Lock()
	d := &Done{Counters: map[string]uint64{}, Hists: map[string]*Snapshot{}, Errors: wk.errs}
	for k, v := range wk.counters {
		d.Counters[k] = v.Load()
	}
	for k, h := range wk.hists {
		d.Hists[k] = h.Snapshot()
	}
	wk.mu.Unlock()
	wk.lastMu.Lock()
	d.Last = wk.last
	wk.lastMu.Unlock()
	sort.Strings(d.Errors)
	return d
}

func (wk *Worker) closeAll() {
	for _, s := range wk.socks {
		s.close()
	}
	time.Sleep(100 * time.Millisecond) // let close frames go out
}
