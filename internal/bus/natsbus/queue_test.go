package natsbus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/chat"
)

// queued is how many jobs the default stream holds.
func queued(t *testing.T, b *natsbus.Bus) uint64 {
	t.Helper()
	js, err := jetstream.New(b.Conn())
	must(t, err)
	st, err := js.Stream(t.Context(), natsbus.DefaultQueueStream)
	must(t, err)
	info, err := st.Info(t.Context())
	must(t, err)
	return info.State.Msgs
}

func newQueue(t *testing.T, b *natsbus.Bus, o natsbus.QueueOptions) *natsbus.Queue {
	t.Helper()
	q, err := natsbus.NewQueue(t.Context(), b, o)
	if err != nil {
		t.Fatalf("queue: %v", err)
	}
	return q
}

// consume runs q.Consume until the test ends and returns the jobs' data as
// handled (one entry per attempt).
func consume(t *testing.T, q *natsbus.Queue, handler func(ctx context.Context, data []byte) error) <-chan string {
	t.Helper()
	ch := make(chan string, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, func(ctx context.Context, data []byte) error {
			ch <- string(data)
			return handler(ctx, data)
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	return ch
}

func job(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no job delivered")
		return ""
	}
}

func noJob(t *testing.T, ch <-chan string, d time.Duration) {
	t.Helper()
	select {
	case s := <-ch:
		t.Fatalf("unexpected job %q", s)
	case <-time.After(d):
	}
}

func ok(context.Context, []byte) error { return nil }

// quick makes retries quick for tests.
var quick = natsbus.QueueOptions{Backoff: []time.Duration{50 * time.Millisecond}, MaxDeliver: 3, AckWait: 5 * time.Second}

func TestQueueDeliversJobEnqueuedBeforeConsumer(t *testing.T) {
	s := startServer(t)
	producer := newQueue(t, openBus(t, s, natsbus.Options{Name: "producer"}), quick)
	must(t, producer.Enqueue(t.Context(), "push", []byte("job-1")))
	must(t, producer.Enqueue(t.Context(), "push.apns", []byte("job-2")))
	if err := producer.Enqueue(t.Context(), "push.*", []byte("x")); !errors.Is(err, natsbus.ErrInvalidTopic) {
		t.Fatalf("enqueue to a wildcard: %v", err)
	}

	wb := openBus(t, s, natsbus.Options{Name: "worker"})
	if n := queued(t, wb); n != 2 {
		t.Fatalf("%d jobs queued, want 2", n)
	}
	ch := consume(t, newQueue(t, wb, quick), ok)
	if a, b := job(t, ch), job(t, ch); a != "job-1" || b != "job-2" {
		t.Fatalf("jobs %q, %q", a, b)
	}
	noJob(t, ch, 200*time.Millisecond) // acked: not redelivered
	waitFor(t, "acked jobs to leave the stream", func() bool { return queued(t, wb) == 0 })
}

func TestQueueRetriesFailedJob(t *testing.T) {
	s := startServer(t)
	q := newQueue(t, openBus(t, s, natsbus.Options{}), quick)
	var calls atomic.Int32
	ch := consume(t, q, func(context.Context, []byte) error {
		if calls.Add(1) == 1 {
			return errors.New("apns: 503")
		}
		return nil
	})
	must(t, q.Enqueue(t.Context(), "push", []byte("job")))
	if job(t, ch) != "job" || job(t, ch) != "job" {
		t.Fatal("wrong job")
	}
	noJob(t, ch, 200*time.Millisecond) // the second attempt succeeded
	if q.Dropped() != 0 {
		t.Fatalf("dropped %d", q.Dropped())
	}
}

func TestQueueDropsAfterMaxDeliver(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	q := newQueue(t, b, quick)
	ch := consume(t, q, func(context.Context, []byte) error { return errors.New("always") })
	must(t, q.Enqueue(t.Context(), "push", []byte("doomed")))
	for range quick.MaxDeliver {
		if job(t, ch) != "doomed" {
			t.Fatal("wrong job")
		}
	}
	noJob(t, ch, 300*time.Millisecond)
	waitFor(t, "drop counted", func() bool { return q.Dropped() == 1 })
	waitFor(t, "the dropped job to leave the stream", func() bool { return queued(t, b) == 0 })
}

func TestQueueConcurrency(t *testing.T) {
	s := startServer(t)
	o := quick
	o.Concurrency = 4
	q := newQueue(t, openBus(t, s, natsbus.Options{}), o)
	var mu sync.Mutex
	running, peak := 0, 0
	release := make(chan struct{})
	ch := consume(t, q, func(context.Context, []byte) error {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	for range 8 {
		must(t, q.Enqueue(t.Context(), "push", []byte("j")))
	}
	for range 4 {
		job(t, ch)
	}
	noJob(t, ch, 100*time.Millisecond) // a fifth waits for a free slot
	close(release)
	for range 4 {
		job(t, ch)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != 4 {
		t.Fatalf("peak concurrency %d, want 4", peak)
	}
}

// TestQueueSurvivesServerRestart: jobs are on disk, and a running consumer
// carries on once the server is back.
func TestQueueSurvivesServerRestart(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, fast(natsbus.Options{}))
	q := newQueue(t, b, quick)
	must(t, q.Enqueue(t.Context(), "push", []byte("before restart")))

	s.restart()
	waitFor(t, "reconnect", func() bool { return b.Ping(t.Context()) == nil })
	ch := consume(t, q, ok)
	if got := job(t, ch); got != "before restart" {
		t.Fatalf("job %q", got)
	}

	s.restart()
	waitFor(t, "reconnect", func() bool { return b.Ping(t.Context()) == nil })
	waitFor(t, "enqueue after restart", func() bool {
		return q.Enqueue(t.Context(), "push", []byte("after restart")) == nil
	})
	if got := job(t, ch); got != "after restart" {
		t.Fatalf("job %q", got)
	}
}

func TestQueueConsumeEndsWithBus(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	q := newQueue(t, b, quick)
	done := make(chan error, 1)
	go func() { done <- q.Consume(t.Context(), ok) }()
	time.Sleep(50 * time.Millisecond) // let it start (either way it must end)
	must(t, b.Close())
	err := returnsSoon(t, "consume after the bus closed", func() error { return <-done })
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("consume after close: %v", err)
	}
}

// TestQueueDeduplicatesJobIDs: a job enqueued again under the same ID
// within the window is not stored twice, even after the first was done and
// left the stream (a producer that crashed between enqueueing and
// recording it enqueues again).
func TestQueueDeduplicatesJobIDs(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	q := newQueue(t, b, quick)
	enqueue := func(jobs ...natsbus.Job) {
		t.Helper()
		for i, err := range q.EnqueueJobs(t.Context(), jobs) {
			if err != nil {
				t.Fatalf("job %d: %v", i, err)
			}
		}
	}
	enqueue(natsbus.Job{Subject: "push.a", ID: "a-1", Data: []byte("a1")}, natsbus.Job{Subject: "push.b", ID: "b-1", Data: []byte("b1")})
	enqueue(natsbus.Job{Subject: "push.a", ID: "a-1", Data: []byte("a1 again")}) // still queued
	if n := queued(t, b); n != 2 || q.Duplicates() != 1 {
		t.Fatalf("%d jobs queued, %d duplicates; want 2 and 1", n, q.Duplicates())
	}
	ch := consume(t, q, ok)
	got := map[string]bool{job(t, ch): true, job(t, ch): true}
	if !got["a1"] || !got["b1"] {
		t.Fatalf("jobs %v", got)
	}
	waitFor(t, "acked jobs to leave the stream", func() bool { return queued(t, b) == 0 })
	enqueue(natsbus.Job{Subject: "push.b", ID: "b-1", Data: []byte("b1 after it was done")})
	noJob(t, ch, 200*time.Millisecond)
	enqueue(natsbus.Job{Subject: "push.b", ID: "b-2", Data: []byte("b2")}) // a new ID is a new job
	if got := job(t, ch); got != "b2" || q.Duplicates() != 2 {
		t.Fatalf("job %q, %d duplicates", got, q.Duplicates())
	}
	if errs := q.EnqueueJobs(t.Context(), []natsbus.Job{{Subject: "push.*", Data: []byte("x")}}); !errors.Is(errs[0], natsbus.ErrInvalidTopic) {
		t.Fatalf("enqueue to a wildcard: %v", errs[0])
	}
}

// TestQueueMaxPerSubjectKeepsTheNewest: with MaxPerSubject 1 a newer job
// replaces the one of its subject still waiting, here for a retry.
func TestQueueMaxPerSubjectKeepsTheNewest(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	o := quick
	o.MaxPerSubject = 1
	q := newQueue(t, b, o)
	must(t, q.Enqueue(t.Context(), "push.s1.c1", []byte("old")))
	must(t, q.Enqueue(t.Context(), "push.s1.c2", []byte("other")))
	must(t, q.Enqueue(t.Context(), "push.s1.c1", []byte("new")))
	if n := queued(t, b); n != 2 {
		t.Fatalf("%d jobs queued, want 2 (one per subject)", n)
	}
	ch := consume(t, q, func(_ context.Context, data []byte) error {
		if string(data) == "new" {
			return natsbus.RetryIn(time.Second, errors.New("503"))
		}
		return nil
	})
	got := map[string]bool{job(t, ch): true, job(t, ch): true}
	if !got["new"] || !got["other"] {
		t.Fatalf("jobs %v, want new and other", got)
	}
	// "new" waits a second for its retry; a newer job replaces it.
	must(t, q.Enqueue(t.Context(), "push.s1.c1", []byte("newest")))
	if got := job(t, ch); got != "newest" {
		t.Fatalf("job %q, want newest", got)
	}
	noJob(t, ch, 1500*time.Millisecond) // the replaced job never comes back
}

// TestQueueRetryInOverridesBackoff: a handler's RetryIn delay is the next
// attempt's delay, and Delivery counts attempts.
func TestQueueRetryInOverridesBackoff(t *testing.T) {
	s := startServer(t)
	q := newQueue(t, openBus(t, s, natsbus.Options{}), natsbus.QueueOptions{Backoff: []time.Duration{time.Millisecond}, MaxDeliver: -1})
	type attempt struct {
		n  int
		at time.Time
	}
	ch := make(chan attempt, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- q.ConsumeJobs(ctx, func(_ context.Context, d natsbus.Delivery) error {
			if d.Subject != "push.x" || string(d.Data) != "j" {
				t.Errorf("delivery %+v", d)
			}
			ch <- attempt{d.Attempt, time.Now()}
			if d.Attempt < 3 {
				return natsbus.RetryIn(time.Duration(d.Attempt)*400*time.Millisecond, errors.New("429"))
			}
			return nil
		})
	}()
	defer func() { cancel(); must(t, <-done) }()
	must(t, q.Enqueue(t.Context(), "push.x", []byte("j")))
	var got []attempt
	for range 3 {
		select {
		case a := <-ch:
			got = append(got, a)
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery")
		}
	}
	for i, a := range got {
		if a.n != i+1 {
			t.Fatalf("attempt %d numbered %d", i+1, a.n)
		}
	}
	if d := got[1].at.Sub(got[0].at); d < 400*time.Millisecond {
		t.Fatalf("second attempt after %s, want >= 400ms (RetryIn), not the 1ms backoff", d)
	}
	if d := got[2].at.Sub(got[1].at); d < 800*time.Millisecond {
		t.Fatalf("third attempt after %s, want >= 800ms", d)
	}
	select {
	case a := <-ch:
		t.Fatalf("acked job delivered again: %+v", a)
	case <-time.After(200 * time.Millisecond):
	}
}
