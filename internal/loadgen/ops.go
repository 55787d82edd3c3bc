package loadgen

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// connect opens every socket, Concurrent dials at a time, retrying a failed
// dial twice.
func (wk *Worker) connect(ctx context.Context, c Command) {
	conc := max(c.Concurrent, 1)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for _, s := range wk.socks {
		if s.open.Load() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			wk.dialRetry(ctx, s, "connect", 3)
		}()
	}
	wg.Wait()
}

// dialRetry dials with up to tries attempts and records the time of the
// successful one in histogram name.
func (wk *Worker) dialRetry(ctx context.Context, s *socket, name string, tries int) bool {
	for i := range tries {
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := s.dial(dctx)
		cancel()
		if err == nil {
			wk.hist(name).Record(time.Since(start))
			wk.count("connected", 1)
			return true
		}
		wk.noteErr(err)
		if i < tries-1 && !sleepCtx(ctx, time.Duration(100+rand.IntN(400))*time.Millisecond) {
			break
		}
	}
	wk.count("connect_failed", 1)
	return false
}

func (wk *Worker) senders() []*socket {
	var out []*socket
	for _, s := range wk.socks {
		if len(s.spec.Convs) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// sendJob is one scheduled send.
type sendJob struct {
	s        *socket
	intended time.Time
}

// sendOne writes one message from s to its next conversation (channel, for
// Centrifugo), stamped with stamp (unix nanoseconds), of size bytes.
func (wk *Worker) sendOne(s *socket, buf []byte, stamp int64, size int) []byte {
	convs := s.spec.Convs
	conv := convs[int(s.conv.Add(1)-1)%len(convs)]
	n := s.next.Add(1)
	if wk.job.Proto == ProtoCentrifugo {
		buf = s.appendPublish(buf[:0], conv, stamp, size)
	} else {
		buf = appendSend(buf[:0], s.prefix, n, conv, stamp, size)
	}
	if s.write(buf) {
		wk.count("sent", 1)
	}
	return buf
}

// chat sends Rate messages per second (open loop, evenly spaced, round robin
// over the sending sockets) for DurationMS, then waits up to DrainMS for the
// outstanding acks. Latencies are recorded by the read loops, from the time
// each send left or, with Scheduled, from the time it was due. How late each
// send left against its schedule is recorded as "lag": a large lag means the
// generator, or a server that stopped reading, held the sends up.
func (wk *Worker) chat(ctx context.Context, c Command) {
	senders := wk.senders()
	if len(senders) == 0 || c.Rate <= 0 {
		sleepCtx(ctx, time.Duration(c.DurationMS)*time.Millisecond)
		return
	}
	jobs := make(chan sendJob, 4096)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for j := range jobs {
				now := time.Now()
				wk.hist("lag").Record(now.Sub(j.intended))
				stamp := now.UnixNano()
				if c.Scheduled {
					stamp = j.intended.UnixNano()
				}
				buf = wk.sendOne(j.s, buf, stamp, c.Bytes)
			}
		}()
	}
	start := time.Now()
	dur := time.Duration(c.DurationMS) * time.Millisecond
	interval := time.Duration(float64(time.Second) / c.Rate)
	var k int64
	next := 0
	tick := time.NewTicker(time.Millisecond)
loop:
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			break loop
		}
		elapsed := time.Since(start)
		if elapsed >= dur {
			break
		}
		due := int64(elapsed/interval) + 1
		for ; k < due; k++ {
			s := senders[next]
			next = (next + 1) % len(senders)
			if !s.open.Load() {
				wk.count("skipped", 1)
				continue
			}
			select {
			case jobs <- sendJob{s, start.Add(time.Duration(k) * interval)}:
			case <-ctx.Done():
				break loop
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	wk.drain(ctx, time.Duration(c.DrainMS)*time.Millisecond)
}

// drain waits until every sent message was acked and no delivery arrived
// for half a second (deliveries may trail the acks), or d passes.
func (wk *Worker) drain(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		wk.mu.Lock()
		sent, acked := wk.counters["sent"], wk.counters["acked"]
		wk.mu.Unlock()
		quiet := time.Since(time.Unix(0, wk.lastDelivery.Load())) > 500*time.Millisecond
		if quiet && (sent == nil || (acked != nil && acked.Load() >= sent.Load())) {
			return
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// burst makes each sending socket post Count messages to each of its
// conversations, Window in flight, as fast as the server acks them (used to
// fill conversations before a sync or history scenario).
func (wk *Worker) burst(ctx context.Context, c Command) {
	window := max(c.Window, 1)
	var wg sync.WaitGroup
	for _, s := range wk.senders() {
		if !s.open.Load() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			total := int64(c.Count * len(s.spec.Convs))
			base := s.acked.Load()
			var buf []byte
			for sent := int64(0); sent < total; sent++ {
				for sent-(s.acked.Load()-base) >= int64(window) {
					select {
					case <-s.ackSig:
					case <-time.After(time.Second):
					case <-ctx.Done():
						return
					}
				}
				buf = wk.sendOne(s, buf, time.Now().UnixNano(), c.Bytes)
			}
			for s.acked.Load()-base < total && ctx.Err() == nil && s.open.Load() {
				select {
				case <-s.ackSig:
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
			}
		}()
	}
	wg.Wait()
}

// storm drops every socket at At (no close handshake, as a lost network
// would), then reconnects each at a uniformly random moment in the next
// JitterMS and syncs it with its cursors. "storm" records the time from the
// drop to each socket's sync_complete, "resync" from its reconnect to it.
func (wk *Worker) storm(ctx context.Context, c Command) {
	at := time.Unix(0, c.At)
	if !sleepCtx(ctx, time.Until(at)) {
		return
	}
	for _, s := range wk.socks {
		s.drop()
	}
	wk.count("dropped", uint64(len(wk.socks)))
	jitter := time.Duration(c.JitterMS) * time.Millisecond
	var wg sync.WaitGroup
	for _, s := range wk.socks {
		wg.Add(1)
		delay := time.Duration(rand.Int64N(int64(jitter) + 1))
		go func() {
			defer wg.Done()
			if !sleepCtx(ctx, time.Until(at.Add(delay))) {
				return
			}
			start := time.Now()
			if !wk.dialRetry(ctx, s, "reconnect", 10) {
				return
			}
			if wk.syncOnce(ctx, s, c.SyncLimit, "sync") {
				now := time.Now()
				wk.hist("storm").Record(now.Sub(at))
				wk.hist("resync").Record(now.Sub(start))
				wk.count("synced", 1)
			}
		}()
	}
	wg.Wait()
}

// syncOnce sends a sync with the socket's cursors and waits for its
// sync_complete, recording the time in histogram name.
func (wk *Worker) syncOnce(ctx context.Context, s *socket, limit int, name string) bool {
	done := s.startSync()
	start := time.Now()
	if !s.write(syncFrame(s.syncCursors(), limit)) {
		s.finishSync()
		wk.count("sync_failed", 1)
		return false
	}
	select {
	case <-done:
	case <-ctx.Done():
		s.finishSync()
		wk.count("sync_failed", 1)
		return false
	}
	if !s.open.Load() {
		wk.count("sync_failed", 1)
		return false
	}
	wk.hist(name).Record(time.Since(start))
	return true
}

// syncLoad runs Rate syncs per second (open loop) over the worker's sockets,
// one at a time per socket; a sync due when every socket is busy is counted
// as "late" and skipped.
func (wk *Worker) syncLoad(ctx context.Context, c Command) {
	busy := make([]atomic.Bool, len(wk.socks))
	var wg sync.WaitGroup
	wk.openLoop(ctx, c.Rate, time.Duration(c.DurationMS)*time.Millisecond, func() bool {
		for range len(wk.socks) {
			i := rand.IntN(len(wk.socks))
			s := wk.socks[i]
			if !s.open.Load() || !busy[i].CompareAndSwap(false, true) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer busy[i].Store(false)
				if wk.syncOnce(ctx, s, c.SyncLimit, "sync") {
					wk.count("synced", 1)
				}
			}()
			return true
		}
		return false
	})
	wg.Wait()
}

// openLoop calls start rate times per second, evenly spaced, for d; a start
// that returns false is counted as late.
func (wk *Worker) openLoop(ctx context.Context, rate float64, d time.Duration, start func() bool) {
	if rate <= 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / rate)
	begin := time.Now()
	var k int64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		elapsed := time.Since(begin)
		if elapsed >= d {
			return
		}
		for due := int64(elapsed/interval) + 1; k < due; k++ {
			if !start() {
				wk.count("late", 1)
			}
		}
	}
}

// history fetches pages of PageSize messages before a random cursor of
// conversation Conv over REST, Rate per second (open loop), at most
// Concurrent at once (more are counted late and skipped).
func (wk *Worker) history(ctx context.Context, c Command) {
	if len(wk.socks) == 0 {
		wk.noteErr(fmt.Errorf("history: no account"))
		return
	}
	token := wk.socks[0].spec.Token
	conc := max(c.Concurrent, 1)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}}
	defer client.CloseIdleConnections()
	base := wk.job.URL + "/api/v1/conversations/" + c.Conv + "/messages?limit=" + strconv.Itoa(c.PageSize) + "&before="
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	lo := int64(c.PageSize) + 1
	wk.openLoop(ctx, c.Rate, time.Duration(c.DurationMS)*time.Millisecond, func() bool {
		select {
		case sem <- struct{}{}:
		default:
			return false
		}
		before := lo + rand.Int64N(max(c.MaxSeq+1-lo, 1)+1)
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+strconv.FormatInt(before, 10), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				wk.count("http_errors", 1)
				wk.noteErr(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				wk.count("http_errors", 1)
				wk.noteErr(fmt.Errorf("history: HTTP %d", resp.StatusCode))
				return
			}
			wk.hist("page").Record(time.Since(start))
			wk.count("pages", 1)
			wk.count("page_bytes", uint64(n))
		}()
		return true
	})
	wg.Wait()
}

// learn makes every open socket sync once with no cursors and a limit of one
// message per conversation, and keep last_seq - Count of each conversation
// as its cursors: later syncs then miss Count messages per conversation.
func (wk *Worker) learn(ctx context.Context, c Command) {
	sem := make(chan struct{}, max(c.Concurrent, 1))
	var wg sync.WaitGroup
	for _, s := range wk.socks {
		if !s.open.Load() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.syncMu.Lock()
			s.learnBack, s.cursors = int64(c.Count), nil
			s.syncMu.Unlock()
			done := s.startSync()
			if !s.write(syncFrame(map[string]int64{}, 1)) {
				s.finishSync()
				return
			}
			select {
			case <-done:
				wk.count("learned", 1)
			case <-ctx.Done():
				s.finishSync()
			}
		}()
	}
	wg.Wait()
}
