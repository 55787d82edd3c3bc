package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/internal/push/pushjs"
	"github.com/parley-chat/parley/internal/push/pushtest"
	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// The push tests run a node whose push providers are local stand-ins that
// check what the real services check (internal/push/pushtest): a Web Push
// service that verifies VAPID and decrypts, a UnifiedPush distributor, an
// HTTP/2 APNs that verifies the provider token and headers, and an FCM
// with its OAuth2 token endpoint.

const vapidSubject = "mailto:ops@parley.test"

// pushStack is the four stand-ins.
type pushStack struct {
	wp, up *pushtest.WebPush
	ap     *pushtest.APNs
	fc     *pushtest.FCM
	caFile string
}

func newPushStack(t *testing.T) *pushStack {
	st := &pushStack{wp: pushtest.NewWebPush(t), up: pushtest.NewUnifiedPush(t), ap: pushtest.NewAPNs(t), fc: pushtest.NewFCM(t)}
	st.wp.Subject = vapidSubject
	st.caFile = pushtest.WriteCAFile(t, st.wp.Server)
	return st
}

// configure points a node's push configuration at the stand-ins.
func (st *pushStack) configure(c *server.Config, window time.Duration) {
	c.Push.Window = window
	c.Push.VAPIDSubject = vapidSubject
	c.Push.APNs = st.ap.Config()
	c.Push.FCM = st.fc.Config()
	c.Push.CAFile = st.caFile
	c.Push.AllowLoopback = true
}

// startPushNode starts a node with push aimed at a fresh stack.
func startPushNode(t *testing.T, window time.Duration) (*servertest.Server, *pushStack) {
	st := newPushStack(t)
	srv := servertest.Start(t, func(c *server.Config) { st.configure(c, window) })
	st.wp.VAPIDKey = vapidKey(t, srv)
	return srv, st
}

// pushNodeStarter is startPushNode or startJetStreamPushNode.
type pushNodeStarter func(t *testing.T, window time.Duration) (*servertest.Server, *pushStack)

// pushModes runs a push test twice: with the jobs sent from the store's
// outbox (the in-process bus), and through JetStream (--nats).
func pushModes(t *testing.T, test func(*testing.T, pushNodeStarter)) {
	t.Run("outbox", func(t *testing.T) { test(t, startPushNode) })
	t.Run("jetstream", func(t *testing.T) { test(t, startJetStreamPushNode) })
}

// startJetStreamPushNode starts a node with push aimed at a fresh stack
// and --nats on a fresh embedded nats-server with JetStream (the store is
// still SQLite). When the test ends it checks that the jobs went through
// the push stream and none was left there.
func startJetStreamPushNode(t *testing.T, window time.Duration) (*servertest.Server, *pushStack) {
	ns := startNATS(t)
	t.Cleanup(func() { // after the node stopped, before nats-server does
		if s := pushStream(t, ns); s.LastSeq == 0 || s.Msgs != 0 {
			t.Errorf("push stream: %d jobs enqueued, %d left; want some, none left", s.LastSeq, s.Msgs)
		}
	})
	st := newPushStack(t)
	srv := servertest.Start(t, func(c *server.Config) {
		st.configure(c, window)
		c.NATS = ns.ClientURL()
	})
	st.wp.VAPIDKey = vapidKey(t, srv)
	return srv, st
}

// startNATS starts an embedded nats-server with JetStream on a file store.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("embedded NATS did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// pushStream returns the state of the JetStream push queue.
func pushStream(t *testing.T, ns *natsserver.Server) jetstream.StreamState {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, pushjs.Stream)
	if err != nil {
		t.Fatalf("push stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

func vapidKey(t testing.TB, srv *servertest.Server) string {
	t.Helper()
	a := newAccount(t, srv, "vapid")
	var k struct {
		Key string `json:"key"`
	}
	if st := api(t, srv, "GET", "/api/v1/push/vapid-public-key", a.Token, nil, &k); st != http.StatusOK || len(k.Key) != 87 {
		t.Fatalf("vapid-public-key: %d %q", st, k.Key)
	}
	return k.Key
}

// subscribePush subscribes a's device and returns the subscription id.
func subscribePush(t testing.TB, srv *servertest.Server, a account, body map[string]any) string {
	t.Helper()
	var out struct {
		SubscriptionID string `json:"subscription_id"`
	}
	if st := api(t, srv, "POST", "/api/v1/push/subscriptions", a.Token, body, &out); st != http.StatusCreated || out.SubscriptionID == "" {
		t.Fatalf("subscribe %v: status %d, %+v", body, st, out)
	}
	return out.SubscriptionID
}

func webPushBody(platform string, s pushtest.Subscription) map[string]any {
	b := map[string]any{"platform": platform, "endpoint": s.Endpoint}
	if s.P256dh != "" {
		b["keys"] = map[string]string{"p256dh": s.P256dh, "auth": s.Auth}
	}
	return b
}

// sendAll sends texts from a socket and waits for every ack.
func sendAll(t testing.TB, s *sock, conv string, texts ...string) {
	t.Helper()
	for i, text := range texts {
		s.send(sendText(conv, fmt.Sprintf("push-%d-%d", time.Now().UnixNano(), i), text))
	}
	for range texts {
		s.expect("ack", "message_status", "new_message", "conversation_updated")
	}
}

func TestPushSubscriptionEndpoints(t *testing.T) {
	srv := servertest.Start(t) // APNs and FCM not configured
	bob := newAccount(t, srv, "bob")
	wp := pushtest.NewWebPush(t)
	ua := wp.Subscribe(true)
	var key struct {
		Key string `json:"key"`
	}
	if st := api(t, srv, "GET", "/api/v1/push/vapid-public-key", bob.Token, nil, &key); st != http.StatusOK || !strings.HasPrefix(key.Key, "B") {
		t.Fatalf("vapid key: %d %q", st, key.Key)
	}
	cases := []struct {
		name string
		body any
		want int
	}{
		{"malformed JSON", `{"platform":`, http.StatusBadRequest},
		{"no platform", map[string]any{}, http.StatusBadRequest},
		{"webpush without keys", map[string]any{"platform": "webpush", "endpoint": "https://push.example/x"}, http.StatusBadRequest},
		{"apns not configured", map[string]any{"platform": "apns", "token": pushtest.DeviceToken()}, http.StatusUnprocessableEntity},
		{"fcm not configured", map[string]any{"platform": "fcm", "token": "abc"}, http.StatusUnprocessableEntity},
		{"unknown platform", map[string]any{"platform": "pager", "token": "x"}, http.StatusUnprocessableEntity},
		{"http endpoint", map[string]any{"platform": "webpush", "endpoint": "http://push.example/x", "keys": map[string]string{"p256dh": ua.P256dh, "auth": ua.Auth}}, http.StatusUnprocessableEntity},
		{"loopback endpoint", webPushBody("webpush", ua), http.StatusUnprocessableEntity},
		{"bad p256dh", map[string]any{"platform": "webpush", "endpoint": "https://push.example/x", "keys": map[string]string{"p256dh": "AAAA", "auth": ua.Auth}}, http.StatusUnprocessableEntity},
	}
	for _, c := range cases {
		if st := api(t, srv, "POST", "/api/v1/push/subscriptions", bob.Token, c.body, nil); st != c.want {
			t.Errorf("%s: status %d, want %d", c.name, st, c.want)
		}
	}
	good := map[string]any{"platform": "webpush", "endpoint": "https://push.example/bob", "keys": map[string]string{"p256dh": ua.P256dh, "auth": ua.Auth}}
	id := subscribePush(t, srv, bob, good)
	if again := subscribePush(t, srv, bob, good); again != id {
		t.Fatalf("the same device subscribing again got a new id %s (was %s)", again, id)
	}
	up := subscribePush(t, srv, bob, map[string]any{"platform": "unifiedpush", "endpoint": "https://ntfy.example/upX"})
	if st := api(t, srv, "POST", "/api/v1/push/subscriptions", "", good, nil); st != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", st)
	}
	eve := newAccount(t, srv, "eve")
	if st := api(t, srv, "DELETE", "/api/v1/push/subscriptions/"+id, eve.Token, nil, nil); st != http.StatusNotFound {
		t.Fatalf("deleting another user's subscription: %d, want 404", st)
	}
	if st := api(t, srv, "DELETE", "/api/v1/push/subscriptions/"+id, bob.Token, nil, nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d", st)
	}
	if st := api(t, srv, "DELETE", "/api/v1/push/subscriptions/"+id, bob.Token, nil, nil); st != http.StatusNotFound {
		t.Fatalf("delete twice: %d", st)
	}
	// Logging out deletes the device's subscriptions: the same device,
	// logged in again, has none left.
	device := bob.DeviceID
	if st := api(t, srv, "POST", "/api/v1/auth/logout", bob.Token, nil, nil); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	var l struct {
		Token string `json:"token"`
	}
	api(t, srv, "POST", "/api/v1/auth/login", "", map[string]string{"username": bob.Username, "password": "password-" + bob.Username, "device_id": device}, &l)
	if st := api(t, srv, "DELETE", "/api/v1/push/subscriptions/"+up, l.Token, nil, nil); st != http.StatusNotFound {
		t.Fatalf("a logged-out device's subscription survived: %d", st)
	}
}

// TestPushCollapsedPerDeviceWithoutText is the "done means": two
// closed devices with one subscription of each kind; five messages make
// exactly one notification per subscription per window, the last one
// counting five, none with the text.
func TestPushCollapsedPerDeviceWithoutText(t *testing.T) {
	pushModes(t, testPushCollapsedPerDeviceWithoutText)
}

func testPushCollapsedPerDeviceWithoutText(t *testing.T, startPushNode pushNodeStarter) {
	const window = 1500 * time.Millisecond
	srv, st := startPushNode(t, window)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	phone, tablet := bob, bob
	tablet.login(t, srv)
	ua, distributor := st.wp.Subscribe(true), st.up.Subscribe(true)
	apnsTok, fcmTok := pushtest.DeviceToken(), "fcm:"+bob.UserID
	subscribePush(t, srv, phone, webPushBody("webpush", ua))
	subscribePush(t, srv, phone, map[string]any{"platform": "apns", "token": apnsTok})
	subscribePush(t, srv, tablet, map[string]any{"platform": "fcm", "token": fcmTok})
	subscribePush(t, srv, tablet, webPushBody("unifiedpush", distributor))

	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	const text = "meet me at the old mill at nine"
	sentAt := time.Now() // before the first notification: its window opens after this
	sendAll(t, a, conv, text, text, text, text, text)

	type target struct {
		name string
		wait func() []pushtest.Received
	}
	targets := []target{
		{"webpush", func() []pushtest.Received { return st.wp.Wait(t, ua.ID, 1, 10*time.Second) }},
		{"unifiedpush", func() []pushtest.Received { return st.up.Wait(t, distributor.ID, 1, 10*time.Second) }},
		{"apns", func() []pushtest.Received { return st.ap.Wait(t, apnsTok, 1, 10*time.Second) }},
		{"fcm", func() []pushtest.Received { return st.fc.Wait(t, fcmTok, 1, 10*time.Second) }},
	}
	for _, tg := range targets {
		tg.wait()
	}
	time.Sleep(window + 700*time.Millisecond) // the window ends; the collapsed rest goes out
	for _, tg := range targets {
		got := tg.wait()
		if len(got) > 2 {
			t.Fatalf("%s: %d notifications for five messages in one window", tg.name, len(got))
		}
		// The second may go out only when the window the first opened has
		// ended. Measured from the sends, not from the first's arrival: a
		// first notification delivered late (a busy machine) would make a
		// correct gap look short.
		if len(got) == 2 && got[1].At.Sub(sentAt) < window {
			t.Fatalf("%s: the second notification arrived %s after the sends, inside the %s window (the first arrived after %s)",
				tg.name, got[1].At.Sub(sentAt), window, got[0].At.Sub(sentAt))
		}
		counts := make([]int64, len(got))
		for i, r := range got {
			counts[i] = r.Note.Count
		}
		t.Logf("%s: %d notification(s) for 5 messages, counts %v", tg.name, len(got), counts)
		last := got[len(got)-1].Note
		want := alice.Username + " sent you 5 messages"
		if last.Count != 5 || last.Body != want || last.Badge != 5 || last.ConversationID != conv || last.Type != "message" {
			t.Fatalf("%s: last notification %+v, want %q with badge 5", tg.name, last, want)
		}
		for _, r := range got {
			if bytes.Contains(r.Raw, []byte("old mill")) {
				t.Fatalf("%s: a notification carries the message text: %s", tg.name, r.Raw)
			}
			if r.Note.Tag != got[0].Note.Tag || r.Note.Tag == "" {
				t.Fatalf("%s: collapse keys differ: %q %q", tg.name, r.Note.Tag, got[0].Note.Tag)
			}
		}
	}
	if v := metricValue(t, srv, `parley_push_sends_total{outcome="sent",platform="apns"}`); v < 1 {
		t.Fatalf("apns sends not counted: %v", v)
	}
}

func TestPushAtMostOncePerConversationPerWindowWithBadge(t *testing.T) {
	const window = 1500 * time.Millisecond
	srv, st := startPushNode(t, window)
	alice, carol, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "carol"), newAccount(t, srv, "bob")
	tok := pushtest.DeviceToken()
	subscribePush(t, srv, bob, map[string]any{"platform": "apns", "token": tok})
	withAlice, withCarol := direct(t, srv, alice, bob), direct(t, srv, carol, bob)
	a, c := dial(t, srv, alice.Token), dial(t, srv, carol.Token)

	sendAll(t, a, withAlice, "one")
	first := st.ap.Wait(t, tok, 1, 10*time.Second)[0]
	sendAll(t, a, withAlice, "two", "three")
	sendAll(t, c, withCarol, "hi")
	got := st.ap.Wait(t, tok, 2, 10*time.Second)
	if n := got[1].Note; n.ConversationID != withCarol || n.Badge != 4 || n.Body != carol.Username+" sent you a message" {
		t.Fatalf("carol's conversation has its own window; got %+v", n)
	}
	got = st.ap.Wait(t, tok, 3, 10*time.Second)
	if n := got[2].Note; n.ConversationID != withAlice || n.Count != 3 || n.Badge != 4 {
		t.Fatalf("alice's collapsed notification %+v", n)
	}
	if gap := got[2].At.Sub(first.At); gap < window-50*time.Millisecond {
		t.Fatalf("alice's conversation notified twice within %s (the window is %s)", gap, window)
	}
}

func TestPushNoneWhileAnyDeviceIsOnline(t *testing.T) {
	const window = 300 * time.Millisecond
	srv, st := startPushNode(t, window)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	phone, laptop := bob, bob
	laptop.login(t, srv)
	ua := st.wp.Subscribe(true)
	subscribePush(t, srv, phone, webPushBody("webpush", ua))
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	l := dial(t, srv, laptop.Token) // bob is at his laptop

	sendAll(t, a, conv, "are you there?", "hello?")
	l.expect("new_message")
	l.expect("new_message")
	time.Sleep(3 * window)
	if n := len(st.wp.Attempts(ua.ID)); n != 0 {
		t.Fatalf("%d pushes while one of bob's devices had a socket", n)
	}
	if err := l.ws.CloseNow(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, srv, "parley_connections") > 1 { // alice's socket remains
		if time.Now().After(deadline) {
			t.Fatal("the laptop's socket never closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sendAll(t, a, conv, "now?")
	if n := st.wp.Wait(t, ua.ID, 1, 10*time.Second)[0].Note; n.Count != 1 || n.Badge != 3 {
		t.Fatalf("push once bob left: %+v", n)
	}
}

func TestPushClearWhenReadOnAnotherDevice(t *testing.T) {
	srv, st := startPushNode(t, 30*time.Second)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	phone, laptop := bob, bob
	laptop.login(t, srv)
	tok := pushtest.DeviceToken()
	subscribePush(t, srv, phone, map[string]any{"platform": "apns", "token": tok})
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	sendAll(t, a, conv, "1", "2", "3")
	st.ap.Wait(t, tok, 1, 10*time.Second)

	l := dial(t, srv, laptop.Token)
	l.send(statusFrame(conv, 3, "read"))
	got := st.ap.Wait(t, tok, 2, 10*time.Second)
	c := got[len(got)-1]
	if c.Note.Type != "clear" || c.Note.Badge != 0 || c.Note.Body != "" || bytes.Contains(c.Raw, []byte(`"alert"`)) {
		t.Fatalf("clear push %+v %s", c.Note, c.Raw)
	}
	if c.Header.Get("apns-collapse-id") != got[0].Header.Get("apns-collapse-id") {
		t.Fatal("the clear does not name the conversation's notification")
	}
}

func TestPushGoneSubscriptionIsDeleted(t *testing.T) { pushModes(t, testPushGoneSubscriptionIsDeleted) }

func testPushGoneSubscriptionIsDeleted(t *testing.T, startPushNode pushNodeStarter) {
	srv, st := startPushNode(t, 30*time.Second)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ua := st.wp.Subscribe(true)
	id := subscribePush(t, srv, bob, webPushBody("webpush", ua))
	st.wp.Forget(ua.ID) // the browser dropped it: 410 Gone
	a := dial(t, srv, alice.Token)
	sendAll(t, a, direct(t, srv, alice, bob), "x")
	waitUntil(t, 10*time.Second, "the 410 Gone to be counted", func() bool {
		return hasMetric(t, srv, `parley_push_sends_total{outcome="gone",platform="webpush"}`)
	})
	// Outcomes are counted once stored: the subscription is gone by now.
	if st := api(t, srv, "DELETE", "/api/v1/push/subscriptions/"+id, bob.Token, nil, nil); st != http.StatusNotFound {
		t.Fatalf("a subscription answered 410 Gone is still there (DELETE: %d)", st)
	}
}

// hasMetric reports whether /metrics exports the (labelled) series.
func hasMetric(t testing.TB, srv *servertest.Server, series string) bool {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return bytes.Contains(buf.Bytes(), []byte("\n"+series+" "))
}

func TestPushRetriesOn429And5xxHonouringRetryAfter(t *testing.T) {
	pushModes(t, testPushRetriesOn429And5xxHonouringRetryAfter)
}

func testPushRetriesOn429And5xxHonouringRetryAfter(t *testing.T, startPushNode pushNodeStarter) {
	srv, st := startPushNode(t, 30*time.Second)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	fcmTok := "fcm-retry-" + bob.UserID
	subscribePush(t, srv, bob, map[string]any{"platform": "fcm", "token": fcmTok})
	st.fc.Script(fcmTok, pushtest.Response{Status: 429, Reason: "QUOTA_EXCEEDED", RetryAfter: "2"}, pushtest.Response{Status: 503})
	a := dial(t, srv, alice.Token)
	sendAll(t, a, direct(t, srv, alice, bob), "x")
	got := st.fc.Wait(t, fcmTok, 1, 20*time.Second)
	tries := st.fc.Attempts(fcmTok)
	if len(tries) != 3 || tries[0].Status != 429 || tries[1].Status != 503 || tries[2].Status != 200 {
		t.Fatalf("attempts %v", statuses(tries))
	}
	if gap := tries[1].At.Sub(tries[0].At); gap < 2*time.Second-50*time.Millisecond {
		t.Fatalf("retried %s after a 429 with Retry-After: 2", gap)
	}
	if got[0].Note.Count != 1 {
		t.Fatalf("delivered %+v", got[0].Note)
	}
	if v := metricValue(t, srv, `parley_push_sends_total{outcome="retry",platform="fcm"}`); v != 2 {
		t.Fatalf("retries counted %v", v)
	}
}

func statuses(rs []pushtest.Received) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

// TestPushOutboxSurvivesKill9 records a notification that the window holds
// back, kills the server with SIGKILL before it is due, and expects it
// after the restart.
func TestPushOutboxSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds parleyd and kills it")
	}
	st := newPushStack(t)
	proc := newParleydProc(t, buildParleyd(t))
	proc.extra = []string{"--push-window", "4s", "--vapid-subject", vapidSubject, "--push-ca-file", st.caFile, "--push-allow-loopback"}
	proc.start()
	srv := proc.srv
	st.wp.VAPIDKey = vapidKey(t, srv) // the same key must sign after the restart
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ua := st.wp.Subscribe(true)
	subscribePush(t, srv, bob, webPushBody("webpush", ua))
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	sendAll(t, a, conv, "first")
	st.wp.Wait(t, ua.ID, 1, 10*time.Second)
	sendAll(t, a, conv, "second", "third") // held by the window
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, srv, "parley_push_recorded_total") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the held messages were never recorded")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(st.wp.Attempts(ua.ID)); n != 1 {
		t.Fatalf("%d pushes before the kill, want 1", n)
	}
	proc.kill()
	killed := time.Now()
	proc.start()
	got := st.wp.Wait(t, ua.ID, 2, 20*time.Second)
	if len(got) != 2 || got[1].At.Before(killed) {
		t.Fatalf("pushes %d", len(got))
	}
	if n := got[1].Note; n.Count != 3 || n.Body != alice.Username+" sent you 3 messages" || n.Badge != 3 {
		t.Fatalf("after the restart: %+v", n)
	}
}

// TestPushJetStreamJobSurvivesKill9: with --nats, a notification the push
// service answered 503 with Retry-After waits in JetStream (no longer in
// the outbox) for its retry; the node is killed with SIGKILL before it is
// due, and the restarted node sends it.
func TestPushJetStreamJobSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds parleyd and kills it")
	}
	ns := startNATS(t)
	st := newPushStack(t)
	proc := newParleydProc(t, buildParleyd(t))
	proc.extra = []string{"--nats", ns.ClientURL(), "--push-window", "30s", "--vapid-subject", vapidSubject, "--push-ca-file", st.caFile, "--push-allow-loopback"}
	proc.start()
	srv := proc.srv
	st.wp.VAPIDKey = vapidKey(t, srv) // the same key must sign after the restart
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ua := st.wp.Subscribe(true)
	subscribePush(t, srv, bob, webPushBody("webpush", ua))
	st.wp.Script(ua.ID, pushtest.Response{Status: 503, RetryAfter: "4"})
	a := dial(t, srv, alice.Token)
	sendAll(t, a, direct(t, srv, alice, bob), "first")
	waitUntil(t, 10*time.Second, "the 503 to be counted", func() bool {
		return hasMetric(t, srv, `parley_push_sends_total{outcome="retry",platform="webpush"}`)
	})
	time.Sleep(300 * time.Millisecond) // the NAK with its delay reaches nats-server
	proc.kill()
	killed := time.Now()

	if s := pushStream(t, ns); s.Msgs != 1 {
		t.Fatalf("%d jobs in the push stream after the kill, want 1", s.Msgs)
	}
	if n := outboxJobs(t, proc.dataDir); n != 0 {
		t.Fatalf("%d jobs in the outbox: the job should live in JetStream only", n)
	}
	proc.start()
	got := st.wp.Wait(t, ua.ID, 1, 20*time.Second)
	tries := st.wp.Attempts(ua.ID)
	if len(tries) != 2 || tries[0].Status != 503 || !tries[1].At.After(killed) {
		t.Fatalf("attempts %v", statuses(tries))
	}
	if gap := tries[1].At.Sub(tries[0].At); gap < 4*time.Second-50*time.Millisecond {
		t.Fatalf("sent %s after a 503 with Retry-After: 4", gap)
	}
	if n := got[0].Note; n.Count != 1 || n.Body != alice.Username+" sent you a message" {
		t.Fatalf("after the restart: %+v", n)
	}
	waitUntil(t, 10*time.Second, "the sent job to leave the push stream", func() bool { return pushStream(t, ns).Msgs == 0 })
}

// outboxJobs counts the jobs in the push outbox of a stopped node's store,
// on a copy of it.
func outboxJobs(t *testing.T, dataDir string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(copyStore(t, dataDir), "parley.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	far := time.Now().Add(365 * 24 * time.Hour).UnixMilli()
	jobs, err := st.ClaimPushJobs(ctx, far, far, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

// TestPushJetStreamJobGoesToAnotherNode: on a cluster (PostgreSQL, NATS), a
// notification waiting in JetStream for its retry is sent by another node
// once the node that got the 503 is gone. FCM, whose credentials every node
// shares (each node has its own VAPID key in its data directory).
func TestPushJetStreamJobGoesToAnotherNode(t *testing.T) {
	st := newPushStack(t)
	cl := startCluster(t, 2, func(c *server.Config) { st.configure(c, 30*time.Second) })
	alice, bob := newAccount(t, cl.nodes[0], "alice"), newAccount(t, cl.nodes[1], "bob")
	tok := "fcm-cluster-" + bob.UserID
	subscribePush(t, cl.nodes[1], bob, map[string]any{"platform": "fcm", "token": tok})
	st.fc.Script(tok, pushtest.Response{Status: 503, RetryAfter: "3"})
	a := dial(t, cl.nodes[0], alice.Token)
	sendAll(t, a, direct(t, cl.nodes[0], alice, bob), "x")

	const retried = `parley_push_sends_total{outcome="retry",platform="fcm"}`
	first := -1
	deadline := time.Now().Add(10 * time.Second)
	for first < 0 {
		for i, n := range cl.nodes {
			if hasMetric(t, n, retried) {
				first = i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no node counted the 503")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the NAK reaches nats-server
	cl.nodes[first].Stop()
	other := cl.nodes[1-first]

	got := st.fc.Wait(t, tok, 1, 20*time.Second)
	tries := st.fc.Attempts(tok)
	if len(tries) != 2 || tries[0].Status != 503 || tries[1].At.Sub(tries[0].At) < 3*time.Second-50*time.Millisecond {
		t.Fatalf("attempts %v, %s apart (Retry-After: 3)", statuses(tries), tries[len(tries)-1].At.Sub(tries[0].At))
	}
	if got[0].Note.Count != 1 {
		t.Fatalf("delivered %+v", got[0].Note)
	}
	waitUntil(t, 10*time.Second, fmt.Sprintf("node%d to count the send", 1-first), func() bool {
		return hasMetric(t, other, `parley_push_sends_total{outcome="sent",platform="fcm"}`)
	})
	if s := pushStream(t, cl.nats); s.LastSeq != 1 || s.Msgs != 0 {
		t.Fatalf("push stream: %d enqueued, %d left; want 1, 0", s.LastSeq, s.Msgs)
	}
}
