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
