package natsbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/internal/bus/bustest"
	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/chat"
)

// testServer is an embedded NATS server with JetStream on a file store, which
// can be stopped and restarted on the same port and store.
type testServer struct {
	t    testing.TB
	srv  *server.Server
	port int
	dir  string
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	s := &testServer{t: t, port: -1, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) start() {
	s.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: s.port, JetStream: true, StoreDir: s.dir,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		s.t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatal("nats server not ready")
	}
	s.srv = srv
	s.port = srv.Addr().(*net.TCPAddr).Port
}

func (s *testServer) stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// restart stops the server and starts a new one on the same port and store.
func (s *testServer) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

func (s *testServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// testLogger logs through t until the test ends, then discards: NATS
// callbacks may outlive a test by a moment.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Logf("%s", p)
	}
	return len(p), nil
}

// fast makes reconnects quick for tests.
func fast(o natsbus.Options) natsbus.Options {
	o.ReconnectWait = 20 * time.Millisecond
	o.ReconnectJitter = 20 * time.Millisecond
	return o
}

func openBus(t testing.TB, s *testServer, o natsbus.Options) *natsbus.Bus {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbus.Open(ctx, []string{s.url()}, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	s := startServer(t)
	var n atomic.Int32
	bustest.Run(t, func(t *testing.T) chat.Bus {
		return openBus(t, s, natsbus.Options{Name: fmt.Sprintf("node-%d", n.Add(1))})
	})
}

func msg(seq int64) *chat.Event {
	return &chat.Event{Kind: chat.EventMessage, Message: &chat.Message{ID: fmt.Sprint("m", seq), ConversationID: "c1", Seq: seq, Content: "hi"}}
}

func TestTopicValidation(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	tests := []struct {
		topic string
		ok    bool
	}{
		{chat.UserTopic("01ARZ3NDEKTSV4RRFFQ69G5FAV"), true},
		{chat.ChannelTopic, true},
		{"u", true},
		{"", false},
		{"u.a b", false},
		{"u.a\tb", false},
		{"u.*", false},
		{"u.>", false},
		{"u.a*", false},
		{"u..a", false},
		{".u", false},
		{"u.", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.topic), func(t *testing.T) {
			perr := b.Publish(t.Context(), tc.topic, msg(1))
			unsub, serr := b.Subscribe(tc.topic, func(*chat.Event) {})
			if serr == nil {
				unsub()
			}
			for _, err := range []error{perr, serr} {
				if tc.ok && err != nil {
					t.Fatalf("valid topic refused: %v", err)
				}
				if !tc.ok && (!errors.Is(err, natsbus.ErrInvalidTopic) || !errors.Is(err, chat.ErrInvalid)) {
					t.Fatalf("invalid topic: got %v, want ErrInvalidTopic", err)
				}
			}
		})
	}
}

// TestSubjectLayout checks the wire: subject prefix+topic, payload the JSON
// of the event.
func TestSubjectLayout(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct{ prefix, subject string }{
		{"", "parley.u.01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"acme", "acme.u.01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"acme.chat.", "acme.chat.u.01ARZ3NDEKTSV4RRFFQ69G5FAV"},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			b := openBus(t, s, natsbus.Options{Prefix: tc.prefix})
			raw, err := b.Conn().SubscribeSync(tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Ping(t.Context()); err != nil { // SUB registered
				t.Fatal(err)
			}
			ev := &chat.Event{Kind: chat.EventTyping, Typing: &chat.TypingChange{ConversationID: "c", UserID: "u", DeviceID: "d", State: "typing"}}
			if err := b.Publish(t.Context(), chat.UserTopic("01ARZ3NDEKTSV4RRFFQ69G5FAV"), ev); err != nil {
				t.Fatal(err)
			}
			m, err := raw.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(ev)
			if string(m.Data) != string(want) {
				t.Fatalf("payload %s, want %s", m.Data, want)
			}
		})
	}
}

// TestEveryEventKindRoundTrips sends one event of each kind, every payload
// field set, across two nodes and compares what arrives.
func TestEveryEventKindRoundTrips(t *testing.T) {
	s := startServer(t)
	pub, sub := openBus(t, s, natsbus.Options{}), openBus(t, s, natsbus.Options{})
	m := &chat.Message{ID: "m1", ClientID: "c1", ConversationID: "cv", Seq: 7, SenderID: "u1", SenderDeviceID: "d1",
		Content: "héllo \u2028 <b>", ContentType: chat.ContentText, MediaID: "md", ReplyToSeq: 3, Timestamp: 1700000000000, ClientTimestamp: 1699999999999}
	events := []*chat.Event{
		{Kind: chat.EventMessage, ExceptDevice: "d1", Message: m},
		{Kind: chat.EventStatus, Status: &chat.StatusChange{ConversationID: "cv", UserID: "u2", Seq: 7, Status: "read", Timestamp: 5}},
		{Kind: chat.EventTyping, ExceptDevice: "d1", Typing: &chat.TypingChange{ConversationID: "cv", UserID: "u1", DeviceID: "d1", State: "typing"}},
		{Kind: chat.EventConversation, Conversation: &chat.ConversationChange{Change: "member_added", Conversation: chat.Conversation{
			ID: "cv", Type: "group", Name: "g", LastSeq: 7, LastMessage: m, CreatedAt: 1, UpdatedAt: 2, UnreadCount: 4,
			Members: []chat.Member{{UserID: "u1", Role: "admin", DeliveredSeq: 7, ReadSeq: 6, JoinedAt: 1}},
		}}},
		{Kind: chat.EventRevoke, Revoke: &chat.Revoke{DeviceID: "d1", TokenHash: "th"}},
	}
	got := make(chan *chat.Event, len(events))
	unsub, err := sub.Subscribe("u.rt", func(ev *chat.Event) { got <- ev })
	must(t, err)
	defer unsub()
	must(t, sub.Ping(t.Context()))
	for _, ev := range events {
		must(t, pub.Publish(t.Context(), "u.rt", ev))
	}
	for _, want := range events {
		select {
		case ev := <-got:
			if !reflect.DeepEqual(ev, want) {
				a, _ := json.Marshal(ev)
				b, _ := json.Marshal(want)
				t.Fatalf("kind %d changed on the way:\n got %s\nwant %s", want.Kind, a, b)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("kind %d not delivered", want.Kind)
		}
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publishUntilSeen publishes events with increasing seqs from seq until the
// subscriber reports one of them: a subscription may take effect later than
// the publisher's reconnect.
func publishUntilSeen(t *testing.T, b *natsbus.Bus, topic string, seq int64, got <-chan int64) int64 {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for next := seq; ; next++ {
		if err := b.Publish(t.Context(), topic, msg(next)); err != nil {
			t.Logf("publish %d: %v", next, err)
		}
		for {
			select {
			case s := <-got:
				if s >= seq {
					return s
				}
				continue // a late one from before
			case <-tick.C:
			case <-deadline:
				t.Fatalf("no event with seq >= %d delivered", seq)
			}
			break
		}
	}
}

// returnsSoon fails the test if f blocks: Publish and Ping must not hang on
// a dead server. The bound is generous: a liveness check, not a timing one.
func returnsSoon(t *testing.T, what string, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked", what)
		return nil
	}
}

func TestPublishDuringServerRestart(t *testing.T) {
	s := startServer(t)
	pub := openBus(t, s, fast(natsbus.Options{Name: "pub"}))
	sub := openBus(t, s, fast(natsbus.Options{Name: "sub"}))
	topic := chat.UserTopic("01ARZ3NDEKTSV4RRFFQ69G5FAV")
	got := make(chan int64, 1024)
	unsub, err := sub.Subscribe(topic, func(ev *chat.Event) { got <- ev.Message.Seq })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	publishUntilSeen(t, pub, topic, 1, got)

	s.stop()
	waitFor(t, "publisher to see the server gone", func() bool { return !pub.Conn().IsConnected() })
	err = returnsSoon(t, "publish while down", func() error { return pub.Publish(t.Context(), topic, msg(100)) })
	if err != nil {
		t.Fatalf("publish while down should be buffered, got %v", err)
	}
	err = returnsSoon(t, "ping while down", func() error { return pub.Ping(t.Context()) })
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("ping while down: %v, want ErrUnavailable", err)
	}

	s.restart()
	waitFor(t, "reconnect", func() bool { return pub.Ping(t.Context()) == nil && sub.Ping(t.Context()) == nil })
	seen := publishUntilSeen(t, pub, topic, 200, got)
	t.Logf("delivery resumed with seq %d", seen)
}

func TestPingFailsWhileServerDown(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, fast(natsbus.Options{}))
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	s.stop()
	waitFor(t, "disconnect", func() bool { return !b.Conn().IsConnected() })
	for range 3 {
		err := returnsSoon(t, "ping", func() error { return b.Ping(t.Context()) })
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Fatalf("ping while down: %v, want ErrUnavailable", err)
		}
	}
	s.start()
	waitFor(t, "ping after restart", func() bool { return b.Ping(t.Context()) == nil })
}

func TestPublishFailsWhenReconnectBufferFull(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, fast(natsbus.Options{ReconnectBufSize: 4 << 10}))
	s.stop()
	waitFor(t, "disconnect", func() bool { return !b.Conn().IsConnected() })
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = returnsSoon(t, "publish", func() error { return b.Publish(t.Context(), "u.x", msg(int64(i))) })
	}
	if !errors.Is(err, chat.ErrUnavailable) || !errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.Fatalf("publish past the reconnect buffer: %v, want ErrUnavailable", err)
	}
}

func TestClosed(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := b.Publish(t.Context(), "u.x", msg(1)); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("publish after close: %v", err)
	}
	if _, err := b.Subscribe("u.x", func(*chat.Event) {}); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("subscribe after close: %v", err)
	}
	if err := b.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("ping after close: %v", err)
	}
}

// TestCloseDrains: what a subscription holds when Close starts is delivered.
func TestCloseDrains(t *testing.T) {
	s := startServer(t)
	pub := openBus(t, s, natsbus.Options{})
	b := openBus(t, s, natsbus.Options{})
	release := make(chan struct{})
	var n atomic.Int32
	if _, err := b.Subscribe("u.x", func(*chat.Event) { <-release; n.Add(1) }); err != nil {
		t.Fatal(err)
	}
	_ = b.Ping(t.Context())
	const total = 50
	for i := range total {
		if err := pub.Publish(t.Context(), "u.x", msg(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	// After both round trips every event sits in b's subscription, the
	// first one stuck in the handler.
	_ = pub.Ping(t.Context())
	_ = b.Ping(t.Context())
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != total {
		t.Fatalf("handled %d events after drain, want %d", got, total)
	}
}

// TestSlowSubscriberDoesNotBlockPublisher: a handler that blocks makes its own
// subscription drop past the pending limit (counted), while the publisher and
// the other subscriptions of the same connection go on.
func TestSlowSubscriberDoesNotBlockPublisher(t *testing.T) {
	s := startServer(t)
	pub := openBus(t, s, natsbus.Options{})
	b := openBus(t, s, natsbus.Options{PendingMsgs: 10})
	release := make(chan struct{})
	defer close(release)
	if _, err := b.Subscribe("u.slow", func(*chat.Event) { <-release }); err != nil {
		t.Fatal(err)
	}
	var fastGot atomic.Int32
	if _, err := b.Subscribe("u.fast", func(*chat.Event) { fastGot.Add(1) }); err != nil {
		t.Fatal(err)
	}
	_ = b.Ping(t.Context())
	const total = 200
	err := returnsSoon(t, "publishing to a stuck subscriber", func() error {
		for i := range total {
			if err := pub.Publish(t.Context(), "u.slow", msg(int64(i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drops counted", func() bool { return b.Dropped() >= total-11 })
	// The stuck subscription does not hold up its neighbours (paced so as
	// to stay under their own pending limit).
	for i := range int32(total) {
		if err := pub.Publish(t.Context(), "u.fast", msg(int64(i))); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			waitFor(t, "fast subscriber", func() bool { return fastGot.Load() == i+1 })
		}
	}
	t.Logf("dropped %d of %d", b.Dropped(), total)
}

func TestOpenGivesUpWithContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = natsbus.Open(ctx, []string{url}, fast(natsbus.Options{Logger: testLogger(t)}))
	if !errors.Is(err, chat.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("open with no server: %v", err)
	}
}

// BenchmarkPublish measures events per second from one publishing node to
// one subscriber on another, through a real embedded server: encode,
// publish, route, decode, handle.
func BenchmarkPublish(b *testing.B) {
	s := startServer(b)
	quiet := slog.New(slog.DiscardHandler)
	pub := openBus(b, s, natsbus.Options{Logger: quiet})
	sub := openBus(b, s, natsbus.Options{Logger: quiet, PendingMsgs: 1 << 22, PendingBytes: 1 << 30})
	var got atomic.Int64
	if _, err := sub.Subscribe("u.bench", func(*chat.Event) { got.Add(1) }); err != nil {
		b.Fatal(err)
	}
	if err := sub.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	ev := benchEvent()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish(ctx, "u.bench", ev); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for got.Load()+int64(sub.Dropped()) < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", got.Load(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(sub.Dropped()), "dropped")
}

// BenchmarkPublishParallel is BenchmarkPublish with concurrent publishers on
// one connection, as a node's many sockets publish.
func BenchmarkPublishParallel(b *testing.B) {
	s := startServer(b)
	quiet := slog.New(slog.DiscardHandler)
	pub := openBus(b, s, natsbus.Options{Logger: quiet})
	sub := openBus(b, s, natsbus.Options{Logger: quiet, PendingMsgs: 1 << 22, PendingBytes: 1 << 30})
	var got, sent atomic.Int64
	if _, err := sub.Subscribe("u.bench", func(*chat.Event) { got.Add(1) }); err != nil {
		b.Fatal(err)
	}
	if err := sub.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	ev := benchEvent()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := pub.Publish(context.Background(), "u.bench", ev); err != nil {
				b.Error(err)
				return
			}
			sent.Add(1)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for got.Load()+int64(sub.Dropped()) < sent.Load() {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", got.Load(), sent.Load())
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(sent.Load())/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(sub.Dropped()), "dropped")
}

func benchEvent() *chat.Event {
	return &chat.Event{Kind: chat.EventMessage, ExceptDevice: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Message: &chat.Message{
		ID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", ConversationID: "01ARZ3NDEKTSV4RRFFQ69G5FAW", Seq: 12345,
		SenderID: "01ARZ3NDEKTSV4RRFFQ69G5FAX", Content: "hello, this is a typical short chat message", ContentType: chat.ContentText,
	}}
}

// BenchmarkCodec is the JSON part of BenchmarkPublish: one encode and one
// decode per event.
func BenchmarkCodec(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		data, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(data, new(chat.Event)); err != nil {
			b.Fatal(err)
		}
	}
}
