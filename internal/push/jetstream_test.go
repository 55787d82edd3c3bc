package push_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/push"
	"github.com/parley-chat/parley/internal/push/pushjs"
	"github.com/parley-chat/parley/internal/push/pushtest"
)

// The tests in this file run the pipeline with its jobs in JetStream, as
// with --nats: a real nats-server embedded in the test, with JetStream on
// a file store. Collapsing and the window stay in the SQLite outbox; the
// queue carries the per-subscription jobs, and retries are NAKs with a
// delay, in real time (the fake clock only drives the outbox).

// startNATS starts an embedded nats-server with JetStream.
func startNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// node is one node's connection to NATS and its push queue.
type node struct {
	bus   *natsbus.Bus
	queue *pushjs.Queue
}

// openNode connects a node to ns and opens the push queue.
func openNode(t testing.TB, ns *natsserver.Server, name string, o pushjs.Options) node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbus.Open(ctx, []string{ns.ClientURL()}, natsbus.Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	q, err := pushjs.Open(ctx, b, o)
	if err != nil {
		t.Fatal(err)
	}
	return node{bus: b, queue: q}
}

func withQueue(q push.Queue) func(*push.Deps) { return func(d *push.Deps) { d.Queue = q } }

// newJSEnv is newEnv with the jobs going through JetStream.
func newJSEnv(t *testing.T, cfg push.Config, tls *pushtest.WebPush, o pushjs.Options, deps ...func(*push.Deps)) (*env, *natsserver.Server, node) {
	t.Helper()
	ns := startNATS(t)
	n := openNode(t, ns, "node-a", o)
	e := newEnv(t, cfg, tls.Server, true, append(deps, withQueue(n.queue))...)
	return e, ns, n
}

// otherNode starts a second push service on e's store with its own queue
// connection, as another parleyd of the cluster, with its own metrics.
func (e *env) otherNode(t *testing.T, q push.Queue) (*push.Service, *metrics) {
	t.Helper()
	m := &metrics{sent: map[string]int{}}
	ps, err := push.New(e.cfg, push.Deps{Store: e.store, Metrics: m, Now: e.clock.Now, RootCAs: e.roots, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	ps.Start(e.presence)
	t.Cleanup(ps.Close)
	return ps, m
}

// streamJobs is how many jobs the push stream holds.
func streamJobs(t testing.TB, n node) uint64 {
	t.Helper()
	js, err := jetstream.New(n.bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), pushjs.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// outboxJobs is how many jobs the store's outbox holds, due or not. It
// claims them (for a moment the far future), so call it when the outbox
// must be empty.
func outboxJobs(t testing.TB, e *env) int {
	t.Helper()
	far := time.Now().Add(365 * 24 * time.Hour).UnixMilli()
	jobs, err := e.store.ClaimPushJobs(e.ctx, far, far, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

func TestJetStreamFiveMessagesCollapseIntoOneNotificationPerWindow(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e, _, n := newJSEnv(t, push.Config{Window: window}, wp, pushjs.Options{})
	alice, bob, phone, conv := e.pair(wp)
	tablet := wp.Subscribe(true)
	e.subscribe(e.device(usernameOf(t, e, bob), "Bob"), tablet, chat.PlatformWebPush)

	e.send(alice, conv, secret, secret, secret, secret, secret)
	wp.Wait(t, phone.ID, 1, 10*time.Second)
	wp.Wait(t, tablet.ID, 1, 10*time.Second)
	settle()
	for _, sub := range []pushtest.Subscription{phone, tablet} {
		if n := len(wp.Attempts(sub.ID)); n != 1 {
			t.Fatalf("%d notifications within the window, want 1 per subscription", n)
		}
	}
	e.clock.Advance(window)
	for _, sub := range []pushtest.Subscription{phone, tablet} {
		got := wp.Wait(t, sub.ID, 1, 10*time.Second)
		if first := got[0].Note; first.Count < 5 {
			last := wp.Wait(t, sub.ID, 2, 10*time.Second)[1].Note
			if last.Count != 5 || last.Body != "Alice sent you 5 messages" || last.Badge != 5 || last.Tag != first.Tag {
				t.Fatalf("after the window: %+v (first %+v)", last, first)
			}
		} else if first.Body != "Alice sent you 5 messages" {
			t.Fatalf("collapsed at once: %+v", first)
		}
	}
	e.clock.Advance(10 * window)
	settle()
	for _, r := range wp.Accepted("") {
		if bytes.Contains(r.Raw, []byte(secret)) {
			t.Fatalf("a notification carries the message text: %s", r.Raw)
		}
	}
	for _, sub := range []pushtest.Subscription{phone, tablet} {
		if n := len(wp.Attempts(sub.ID)); n > 2 {
			t.Fatalf("%d notifications for 5 messages", n)
		}
	}
	if got := e.metrics.count("webpush/sent"); got != len(wp.Accepted("")) {
		t.Fatalf("counted %d sent, the service accepted %d", got, len(wp.Accepted("")))
	}
	if jobs := streamJobs(t, n); jobs != 0 || outboxJobs(t, e) != 0 {
		t.Fatalf("%d jobs left in the stream, %d in the outbox", jobs, outboxJobs(t, e))
	}
}

func TestJetStreamRetriesHonourRetryAfter(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e, _, _ := newJSEnv(t, push.Config{Window: window, RetryBase: 200 * time.Millisecond}, wp, pushjs.Options{})
	alice, _, phone, conv := e.pair(wp)
	wp.Script(phone.ID, pushtest.Response{Status: 429, RetryAfter: "2"}, pushtest.Response{Status: 503})
	e.send(alice, conv, "x")

	got := wp.Wait(t, phone.ID, 1, 20*time.Second)
	tries := wp.Attempts(phone.ID)
	if len(tries) != 3 || tries[0].Status != 429 || tries[1].Status != 503 || tries[2].Status != 201 {
		t.Fatalf("attempts %v", statusesOf(tries))
	}
	// 429 with Retry-After 2: not sooner, though the first backoff is at
	// most 200 ms. 503 without: the second backoff, 200 to 400 ms.
	if gap := tries[1].At.Sub(tries[0].At); gap < 2*time.Second-50*time.Millisecond {
		t.Fatalf("retried %s after a 429 with Retry-After: 2", gap)
	}
	if gap := tries[2].At.Sub(tries[1].At); gap < 150*time.Millisecond || gap > 1500*time.Millisecond {
		t.Fatalf("retried %s after a 503, want the second backoff (200-400 ms)", gap)
	}
	if got[0].Note.Count != 1 {
		t.Fatalf("delivered %+v", got[0].Note)
	}
	eventually(t, "the outcomes to be counted", func() bool {
		return e.metrics.count("webpush/retry") == 2 && e.metrics.count("webpush/sent") == 1
	})
}

func TestJetStreamGivesUpAfterMaxAttempts(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e, _, n := newJSEnv(t, push.Config{Window: window, MaxAttempts: 2, RetryBase: 50 * time.Millisecond}, wp, pushjs.Options{})
	alice, _, phone, conv := e.pair(wp)
	wp.Script(phone.ID, pushtest.Response{Status: 500}, pushtest.Response{Status: 500}, pushtest.Response{Status: 500})
	e.send(alice, conv, "x")
	eventually(t, "the job to be given up", func() bool { return e.metrics.count("webpush/failed") == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := len(wp.Attempts(phone.ID)); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	eventually(t, "the job to leave the stream", func() bool { return streamJobs(t, n) == 0 })
}

func TestJetStreamGoneSubscriptionIsDeleted(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e, _, _ := newJSEnv(t, push.Config{Window: window}, wp, pushjs.Options{})
	alice, bob, gone, conv := e.pair(wp)
	kept := wp.Subscribe(true)
	e.subscribe(bob, kept, chat.PlatformWebPush)
	wp.Forget(gone.ID) // 410 from now on
	e.send(alice, conv, "x")
	wp.Wait(t, kept.ID, 1, 10*time.Second)
	eventually(t, "the gone outcome to be counted", func() bool { return e.metrics.count("webpush/gone") == 1 })
	// Counted once the subscription was deleted.
	subs, err := e.store.PushSubscriptions(e.ctx, bob.UserID)
	if err != nil || len(subs) != 1 || subs[0].Endpoint != kept.Endpoint {
		t.Fatalf("subscriptions after a 410: %+v, %v", subs, err)
	}
	e.send(alice, conv, "y")
	e.clock.Advance(window)
	wp.Wait(t, kept.ID, 2, 10*time.Second)
	if n := len(wp.Attempts(gone.ID)); n != 1 {
		t.Fatalf("the gone subscription was tried %d times", n)
	}
}

func TestJetStreamSkipsAUserWhoCameOnline(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e, _, _ := newJSEnv(t, push.Config{Window: window}, wp, pushjs.Options{})
	alice, bob, phone, conv := e.pair(wp)
	e.send(alice, conv, "1")
	wp.Wait(t, phone.ID, 1, 10*time.Second)
	e.send(alice, conv, "2") // held by the window
	eventually(t, "the second message to be recorded", func() bool { return e.metrics.recorded.Load() == 2 })
	e.presence.set(bob, true)
	e.clock.Advance(window)
	eventually(t, "the job to be skipped", func() bool { return e.metrics.count("webpush/skipped") == 1 })
	if n := len(wp.Attempts(phone.ID)); n != 1 {
		t.Fatalf("pushed %d times, want once (before bob came back)", n)
	}
}

// TestJetStreamNewerNotificationReplacesAWaitingRetry: a job waiting in
// the queue for its retry is replaced by the conversation's next
// notification, which goes out at once; the older one never does.
func TestJetStreamNewerNotificationReplacesAWaitingRetry(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e, _, n := newJSEnv(t, push.Config{Window: window}, wp, pushjs.Options{})
	alice, _, phone, conv := e.pair(wp)
	wp.Script(phone.ID, pushtest.Response{Status: 503, RetryAfter: "3"})
	e.send(alice, conv, "1")
	eventually(t, "the 503", func() bool { return e.metrics.count("webpush/retry") == 1 })
	start := time.Now()
	e.send(alice, conv, "2")
	e.clock.Advance(window)
	got := wp.Wait(t, phone.ID, 1, 10*time.Second)
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("the newer notification took %s: it waited for the older one's retry", d)
	}
	if n := got[0].Note; n.Count != 2 || n.Seq != 2 {
		t.Fatalf("delivered %+v, want the newer notification (2 messages)", n)
	}
	time.Sleep(3500*time.Millisecond - time.Since(start)) // the older one's retry time
	if tries := wp.Attempts(phone.ID); len(tries) != 2 {
		t.Fatalf("attempts %v: the replaced notification was sent", statusesOf(tries))
	}
	if jobs := streamJobs(t, n); jobs != 0 {
		t.Fatalf("%d jobs left in the stream", jobs)
	}
}

// TestJetStreamJobWaitingForRetrySurvivesItsNode: node A gets a 503 with
// Retry-After and stops; the job waits in JetStream (not in the outbox) and
// node B, on the same store and stream, sends it when it is due.
func TestJetStreamJobWaitingForRetrySurvivesItsNode(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e, ns, a := newJSEnv(t, push.Config{Window: window}, wp, pushjs.Options{})
	alice, _, phone, conv := e.pair(wp)
	wp.Script(phone.ID, pushtest.Response{Status: 503, RetryAfter: "2"})
	e.send(alice, conv, "x")
	eventually(t, "the 503", func() bool { return e.metrics.count("webpush/retry") == 1 })
	e.push.Close() // node A stops
	if jobs, left := streamJobs(t, a), outboxJobs(t, e); jobs != 1 || left != 0 {
		t.Fatalf("%d jobs in the stream and %d in the outbox, want the job in the stream only", jobs, left)
	}

	b := openNode(t, ns, "node-b", pushjs.Options{})
	_, mb := e.otherNode(t, b.queue)
	got := wp.Wait(t, phone.ID, 1, 10*time.Second)
	tries := wp.Attempts(phone.ID)
	if len(tries) != 2 || tries[1].At.Sub(tries[0].At) < 2*time.Second-50*time.Millisecond {
		t.Fatalf("attempts %v, the second %s after the first (Retry-After: 2)", statusesOf(tries), tries[len(tries)-1].At.Sub(tries[0].At))
	}
	eventually(t, "node B to count the send", func() bool { return mb.count("webpush/sent") == 1 })
	if got[0].Note.Count != 1 || e.metrics.count("webpush/sent") != 0 {
		t.Fatalf("delivered %+v; node B counted %v, node A %v", got[0].Note, mb, e.metrics)
	}
}

// TestJetStreamJobOfANodeThatDiedMidSendGoesToAnother: node A takes the job
// and loses its connection before acknowledging it, as under kill -9; the
// job goes to node B after the ack wait.
func TestJetStreamJobOfANodeThatDiedMidSendGoesToAnother(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	o := pushjs.Options{AckWait: time.Second}
	e, ns, a := newJSEnv(t, push.Config{Window: window}, wp, o)
	alice, _, phone, conv := e.pair(wp)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	wp.Script(phone.ID, pushtest.Response{Hold: func() { once.Do(func() { close(arrived) }); <-release }})
	e.send(alice, conv, "x")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("node A never sent")
	}
	a.bus.Conn().Close() // node A is gone: it will never acknowledge
	close(release)
	b := openNode(t, ns, "node-b", o)
	_, mb := e.otherNode(t, b.queue)
	eventually(t, "node B to send the job", func() bool { return mb.count("webpush/sent") == 1 })
	if n := len(wp.Accepted(phone.ID)); n != 2 {
		t.Fatalf("%d notifications, want 2 (at least once: A's reached the service before it died)", n)
	}
	if jobs := streamJobs(t, b); jobs != 0 {
		t.Fatalf("%d jobs left in the stream", jobs)
	}
}

// flakyFinish fails the first FinishPushJobs calls: the jobs were enqueued
// but their hand-over was not recorded, as if the node died in between.
type flakyFinish struct {
	chat.PushStore
	mu       sync.Mutex
	fails    int
	finished int // jobs finished
}

func (f *flakyFinish) FinishPushJobs(ctx context.Context, r []chat.PushJobResult) error {
	f.mu.Lock()
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return errors.New("disk I/O error")
	}
	err := f.PushStore.FinishPushJobs(ctx, r)
	if err == nil {
		f.mu.Lock()
		f.finished += len(r)
		f.mu.Unlock()
	}
	return err
}

func (f *flakyFinish) done() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished
}

// TestJetStreamDeduplicatesAJobEnqueuedAgain: the hand-over of a job is not
// recorded, so after the lease the job is claimed and enqueued again, once
// the first copy was already sent; JetStream drops the copy by its id.
func TestJetStreamDeduplicatesAJobEnqueuedAgain(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	flaky := &flakyFinish{fails: 1}
	e, _, n := newJSEnv(t, push.Config{Window: window, Lease: 10 * time.Second}, wp, pushjs.Options{},
		func(d *push.Deps) { flaky.PushStore = d.Store; d.Store = flaky })
	alice, _, phone, conv := e.pair(wp)
	e.send(alice, conv, "x")
	wp.Wait(t, phone.ID, 1, 10*time.Second)
	if n.queue.Duplicates() != 0 {
		t.Fatal("a duplicate before the lease ended")
	}
	e.clock.Advance(10 * time.Second) // the lease ends: claimed and enqueued again
	eventually(t, "the job to be enqueued again and finished", func() bool { return flaky.done() == 1 })
	settle()
	time.Sleep(200 * time.Millisecond)
	if got := len(wp.Attempts(phone.ID)); got != 1 {
		t.Fatalf("%d notifications for one message: the copy was sent", got)
	}
	if d := n.queue.Duplicates(); d != 1 {
		t.Fatalf("the queue saw %d duplicates, want 1", d)
	}
	if left := outboxJobs(t, e); left != 0 {
		t.Fatalf("%d jobs left in the outbox", left)
	}
	// The next notification of the same conversation is not taken for a
	// duplicate (the outbox generation starts at 1 again).
	e.send(alice, conv, "y")
	e.clock.Advance(window)
	if n := wp.Wait(t, phone.ID, 2, 10*time.Second)[1].Note; n.Count != 2 || n.Seq != 2 {
		t.Fatalf("the next notification %+v", n)
	}
}

func statusesOf(rs []pushtest.Received) string {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return fmt.Sprint(out)
}
