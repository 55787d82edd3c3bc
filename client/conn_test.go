package client

// These tests drive the connection state machine against a scripted peer:
// each test plays the server's side of the frames it cares about, by hand.
// The behaviour of a real server is covered by integration_test.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const testToken = "tok"

// peer is an httptest server whose WebSocket connections the test scripts.
type peer struct {
	t     *testing.T
	srv   *httptest.Server
	conns chan *peerConn
	mu    sync.Mutex
	rest  map[string]http.HandlerFunc // "GET /api/v1/..." path handlers
	auths []string
}

type peerConn struct {
	t    *testing.T
	ws   *websocket.Conn
	done chan struct{}
}

func newPeer(t *testing.T) *peer {
	p := &peer{t: t, conns: make(chan *peerConn, 16), rest: map[string]http.HandlerFunc{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peer) authHeaders() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auths...)
}

func (p *peer) handle(pattern string, h http.HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rest[pattern] = h
}

func (p *peer) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.auths = append(p.auths, r.Header.Get("Authorization"))
	h := p.rest[r.Method+" "+r.URL.Path]
	p.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	if r.URL.Path != "/api/v1/ws" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"error":{"status":401,"code":"unauthorized","message":"bad token"}}`))
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	pc := &peerConn{t: p.t, ws: ws, done: make(chan struct{})}
	p.conns <- pc
	<-pc.done
}

// accept waits for the next connection and sends ready.
func (p *peer) accept(heartbeatMS int) *peerConn {
	p.t.Helper()
	select {
	case pc := <-p.conns:
		p.t.Cleanup(pc.close)
		pc.send(map[string]any{"type": "ready", "user_id": "me", "device_id": "dev", "heartbeat_interval": heartbeatMS})
		return pc
	case <-time.After(5 * time.Second):
		p.t.Fatal("no connection")
		return nil
	}
}

func (pc *peerConn) close() {
	select {
	case <-pc.done:
	default:
		_ = pc.ws.CloseNow()
		close(pc.done)
	}
}

func (pc *peerConn) closeWith(code websocket.StatusCode, reason string) {
	_ = pc.ws.Close(code, reason)
	pc.close()
}

func (pc *peerConn) send(v any) {
	pc.t.Helper()
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s)
	} else {
		b, _ = json.Marshal(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.ws.Write(ctx, websocket.MessageText, b); err != nil {
		pc.t.Errorf("peer write: %v", err)
	}
}

// expect reads frames until one of type typ (pings are skipped unless asked for).
func (pc *peerConn) expect(typ string) map[string]any {
	pc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := pc.ws.Read(ctx)
		if err != nil {
			pc.t.Fatalf("peer waiting for %s: %v", typ, err)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			pc.t.Fatalf("peer got bad frame %s", b)
		}
		if f["type"] == typ {
			return f
		}
		if f["type"] != "ping" {
			pc.t.Fatalf("peer got %s, want %s", b, typ)
		}
	}
}

func newMsgFrame(conv string, seq int64, sender string) map[string]any {
	return map[string]any{
		"type": "new_message", "message_id": fmt.Sprintf("srv-%s-%d", conv, seq), "client_message_id": "c",
		"conversation_id": conv, "seq": seq, "sender_id": sender, "sender_device_id": "d-" + sender,
		"content": fmt.Sprintf("m%d", seq), "content_type": "text", "timestamp": 1000 + seq,
	}
}

// runClient starts Run and returns a stop function that cancels it and
// returns its error.
func runClient(t *testing.T, c *Client) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// nextEvent returns the next event of one of the kinds (others skipped).
func nextEvent(t *testing.T, c *Client, kinds ...EventKind) Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed waiting for %v", kinds)
			}
			for _, k := range kinds {
				if ev.Kind == k {
					return ev
				}
			}
		case <-timeout:
			t.Fatalf("no %v event", kinds)
		}
	}
}

func testClient(urls []string, mod func(*Config)) *Client {
	cfg := Config{URLs: urls, Token: testToken, BackoffMin: time.Millisecond, BackoffMax: 20 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func TestRunSyncDedupHeartbeatAndFailover(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	c := testClient([]string{a.srv.URL, b.srv.URL}, func(cfg *Config) {
		cfg.Cursors = map[string]int64{"A": 5}
		cfg.SyncLimit = 50
	})
	runClient(t, c)

	pc := a.accept(40)
	if ev := nextEvent(t, c, EventConnected); ev.Ready.UserID != "me" || ev.Ready.URL != a.srv.URL {
		t.Fatalf("ready: %+v", ev.Ready)
	}
	sync := pc.expect("sync")
	if cur := sync["cursors"].(map[string]any); cur["A"] != 5.0 || len(cur) != 1 || sync["limit"] != 50.0 {
		t.Fatalf("first sync: %v", sync)
	}
	pc.send(newMsgFrame("A", 6, "bob"))
	pc.send(newMsgFrame("A", 6, "bob")) // duplicate
	pc.send(newMsgFrame("A", 5, "bob")) // already had it
	pc.send(newMsgFrame("A", 7, "bob"))
	pc.send(map[string]any{"type": "sync_complete", "conversations": map[string]int64{"A": 7}, "truncated": []string{}})
	for _, want := range []int64{6, 7} {
		if ev := nextEvent(t, c, EventMessage, EventSyncComplete); ev.Kind != EventMessage || ev.Message.Seq != want {
			t.Fatalf("want message %d, got %v %+v", want, ev.Kind, ev.Message)
		}
	}
	if ev := nextEvent(t, c, EventMessage, EventSyncComplete); ev.Kind != EventSyncComplete || ev.Sync.Conversations["A"] != 7 {
		t.Fatalf("want sync_complete, got %+v", ev)
	}
	// Heartbeat: a ping frame arrives every interval.
	pc.expect("ping")
	pc.send(`{"type":"pong"}`)
	pc.expect("ping")

	// Server goes away: the client reconnects to the other URL and syncs
	// from the cursor it reached.
	pc.closeWith(websocket.StatusGoingAway, "restart")
	if ev := nextEvent(t, c, EventDisconnected); ev.Err == nil {
		t.Fatal("disconnected without an error")
	}
	pc2 := b.accept(1000)
	if ev := nextEvent(t, c, EventConnected); ev.Ready.URL != b.srv.URL {
		t.Fatalf("reconnected to %s, want the next URL", ev.Ready.URL)
	}
	sync = pc2.expect("sync")
	if cur := sync["cursors"].(map[string]any); cur["A"] != 7.0 {
		t.Fatalf("second sync cursors: %v", cur)
	}
	if got := c.Cursors(); got["A"] != 7 {
		t.Fatalf("Cursors() = %v", got)
	}
	for _, auth := range append(a.authHeaders(), b.authHeaders()...) {
		if auth != "Bearer "+testToken {
			t.Fatalf("handshake Authorization %q", auth)
		}
	}
}

func TestGapFilledOverREST(t *testing.T) {
	p := newPeer(t)
	var queries []string
	var mu sync.Mutex
	p.handle("GET /api/v1/conversations/A/messages", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.WriteHeader(401)
			return
		}
		var msgs []map[string]any
		after := r.URL.Query().Get("after")
		switch after {
		case "1":
			msgs = append(msgs, newMsgFrame("A", 2, "bob"))
			_ = json.NewEncoder(w).Encode(map[string]any{"messages": msgs, "has_more": true})
		case "2":
			msgs = append(msgs, newMsgFrame("A", 3, "bob"), newMsgFrame("A", 4, "bob"))
			_ = json.NewEncoder(w).Encode(map[string]any{"messages": msgs, "has_more": false})
		default:
			t.Errorf("unexpected fill after=%s", after)
			w.WriteHeader(500)
		}
	})
	c := testClient([]string{p.srv.URL}, func(cfg *Config) { cfg.Cursors = map[string]int64{"A": 0} })
	runClient(t, c)
	pc := p.accept(1000)
	pc.expect("sync")
	pc.send(map[string]any{"type": "sync_complete", "conversations": map[string]int64{"A": 0}})
	pc.send(newMsgFrame("A", 1, "bob"))
	pc.send(newMsgFrame("A", 4, "bob")) // gap: 2, 3
	pc.send(newMsgFrame("A", 5, "bob")) // held until the gap is filled
	for want := int64(1); want <= 5; want++ {
		ev := nextEvent(t, c, EventMessage)
		if ev.Message.Seq != want || ev.Message.Content != fmt.Sprintf("m%d", want) {
			t.Fatalf("message %d: got %+v", want, ev.Message)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(queries, " ") != "after=1&limit=200 after=2&limit=200" {
		t.Fatalf("fill queries: %v", queries)
	}
}

func TestSendResendsSameIDAfterReconnectAndRetries429(t *testing.T) {
	p := newPeer(t)
	c := testClient([]string{p.srv.URL}, nil)
	runClient(t, c)

	pc := p.accept(1000)
	pc.expect("sync")
	pc.send(`{"type":"sync_complete","conversations":{"A":3}}`)

	type result struct {
		ack Ack
		err error
	}
	res := make(chan result, 1)
	go func() {
		ack, err := c.Send(context.Background(), "A", "hello", WithReplyTo(2), WithMessageID("my-id-1"))
		res <- result{ack, err}
	}()
	f := pc.expect("send_message")
	if f["message_id"] != "my-id-1" || f["conversation_id"] != "A" || f["content"] != "hello" ||
		f["content_type"] != "text" || f["reply_to_seq"] != 2.0 {
		t.Fatalf("send frame: %v", f)
	}
	// The connection drops before the ack: the frame is sent again after
	// the reconnect, with the same id.
	pc.closeWith(websocket.StatusInternalError, "crash")
	pc2 := p.accept(1000)
	pc2.expect("sync")
	f = pc2.expect("send_message")
	if f["message_id"] != "my-id-1" {
		t.Fatalf("resent with id %v", f["message_id"])
	}
	pc2.send(map[string]any{"type": "error", "status": 429, "code": "rate_limited", "message": "slow", "ref": "my-id-1", "retry_after": 20})
	f = pc2.expect("send_message")
	if f["message_id"] != "my-id-1" {
		t.Fatalf("retried with id %v", f["message_id"])
	}
	pc2.send(map[string]any{"type": "error", "status": 503, "code": "unavailable", "message": "store down", "ref": "my-id-1"})
	f = pc2.expect("send_message")
	pc2.send(map[string]any{"type": "ack", "message_id": "my-id-1", "server_message_id": "S1", "conversation_id": "A",
		"seq": 4, "status": "sent", "timestamp": 1234})
	r := <-res
	if r.err != nil || r.ack.Seq != 4 || r.ack.ServerMessageID != "S1" || r.ack.MessageID != "my-id-1" {
		t.Fatalf("Send = %+v, %v", r.ack, r.err)
	}
	// The own message reaches the app once, rebuilt from the ack.
	ev := nextEvent(t, c, EventMessage)
	want := Message{MessageID: "S1", ClientMessageID: "my-id-1", ConversationID: "A", Seq: 4, SenderID: "me",
		SenderDeviceID: "dev", Content: "hello", ContentType: "text", ReplyToSeq: 2, Timestamp: 1234}
	if *ev.Message != want {
		t.Fatalf("own message %+v", *ev.Message)
	}
	pc2.send(newMsgFrame("A", 4, "me")) // an echo of it is a duplicate
	pc2.send(newMsgFrame("A", 5, "bob"))
	if ev := nextEvent(t, c, EventMessage); ev.Message.Seq != 5 {
		t.Fatalf("got seq %d, want 5", ev.Message.Seq)
	}
}

func TestSendErrors(t *testing.T) {
	p := newPeer(t)
	c := testClient([]string{p.srv.URL}, func(cfg *Config) { cfg.AckTimeout = 100 * time.Millisecond })
	runClient(t, c)
	pc := p.accept(1000)
	pc.expect("sync")

	errc := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), "A", "x")
		errc <- err
	}()
	f := pc.expect("send_message")
	id := f["message_id"].(string)
	if len(id) != 26 {
		t.Fatalf("generated id %q", id)
	}
	// An unrelated error is an event, not the Send's answer.
	pc.send(map[string]any{"type": "error", "status": 400, "code": "bad_request", "message": "what", "ref": "other"})
	if ev := nextEvent(t, c, EventError); StatusOf(ev.Err) != 400 {
		t.Fatalf("error event %v", ev.Err)
	}
	// No ack within AckTimeout: resent on the same connection.
	if f := pc.expect("send_message"); f["message_id"] != id {
		t.Fatalf("resent %v", f["message_id"])
	}
	pc.send(map[string]any{"type": "error", "status": 403, "code": "forbidden", "message": "not a member", "ref": id})
	err := <-errc
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Ref != id || !IsForbidden(err) {
		t.Fatalf("Send error %v", err)
	}

	// ctx ends while waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Send(ctx, "A", "y"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send with expired ctx: %v", err)
	}
}

func TestExpiredAtHandshake(t *testing.T) {
	p := newPeer(t)
	c := New(Config{URLs: []string{p.srv.URL}, Token: "wrong"})
	err := c.Run(context.Background())
	if !IsSessionExpired(err) || !IsUnauthorized(err) || StatusOf(err) != 401 {
		t.Fatalf("Run = %v", err)
	}
	var kinds []EventKind
	for ev := range c.Events() { // closed once Run returned
		kinds = append(kinds, ev.Kind)
	}
	if len(kinds) != 1 || kinds[0] != EventExpired {
		t.Fatalf("events %v", kinds)
	}
	if _, err := c.Send(context.Background(), "A", "x"); !errors.Is(err, ErrClosed) || !IsSessionExpired(err) {
		t.Fatalf("Send after Run = %v", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v", err)
	}
}

func TestExpiredOnSocket(t *testing.T) {
	for _, viaFrame := range []bool{true, false} {
		t.Run(fmt.Sprintf("frame=%v", viaFrame), func(t *testing.T) {
			p := newPeer(t)
			c := testClient([]string{p.srv.URL}, nil)
			errc := make(chan error, 1)
			go func() { errc <- c.Run(context.Background()) }()
			pc := p.accept(1000)
			pc.expect("sync")
			if viaFrame {
				pc.send(`{"type":"error","status":440,"code":"session_expired","message":"token revoked"}`)
			}
			pc.closeWith(CloseSessionExpired, "expired")
			var err error
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not stop")
			}
			if !IsSessionExpired(err) || StatusOf(err) != 440 {
				t.Fatalf("Run = %v", err)
			}
			var kinds []EventKind
			for ev := range c.Events() {
				kinds = append(kinds, ev.Kind)
			}
			if len(kinds) != 3 || kinds[0] != EventConnected || kinds[1] != EventDisconnected || kinds[2] != EventExpired {
				t.Fatalf("events %v", kinds)
			}
		})
	}
}

func TestAutoDeliveredReceiptsAndPresence(t *testing.T) {
	p := newPeer(t)
	c := testClient([]string{p.srv.URL}, func(cfg *Config) {
		cfg.AutoDelivered = true
		cfg.Cursors = map[string]int64{"A": 0}
	})
	if err := c.SubscribePresence(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	runClient(t, c)
	pc := p.accept(1000)
	pc.expect("sync")
	if f := pc.expect("presence_subscribe"); fmt.Sprint(f["user_ids"]) != "[bob]" {
		t.Fatalf("presence_subscribe %v", f)
	}
	pc.send(`{"type":"sync_complete","conversations":{"A":0}}`)
	pc.send(newMsgFrame("A", 1, "bob"))
	pc.send(newMsgFrame("A", 2, "bob"))
	nextEvent(t, c, EventMessage)
	nextEvent(t, c, EventMessage)
	// Receipts go up to what the app has read; one frame may cover both.
	for {
		f := pc.expect("message_status")
		if f["conversation_id"] != "A" || f["status"] != "delivered" {
			t.Fatalf("receipt %v", f)
		}
		if f["seq"] == 2.0 {
			break
		}
	}
	pc.send(`{"type":"presence","user_id":"bob","status":"online","last_seen":0}`)
	pc.send(`{"type":"typing","conversation_id":"A","user_id":"bob","state":"typing"}`)
	pc.send(`{"type":"message_status","conversation_id":"A","user_id":"bob","seq":2,"status":"read","timestamp":5}`)
	pc.send(`{"type":"conversation_updated","conversation_id":"A","change":"renamed","conversation":{"conversation_id":"A","type":"group","name":"n"}}`)
	if ev := nextEvent(t, c, EventPresence); ev.Presence.UserID != "bob" || ev.Presence.Status != PresenceOnline {
		t.Fatalf("presence %+v", ev.Presence)
	}
	if ev := nextEvent(t, c, EventTyping); !ev.Typing.Typing() || ev.Typing.UserID != "bob" {
		t.Fatalf("typing %+v", ev.Typing)
	}
	if ev := nextEvent(t, c, EventStatus); ev.Status.Seq != 2 || ev.Status.Status != StatusRead {
		t.Fatalf("status %+v", ev.Status)
	}
	if ev := nextEvent(t, c, EventConversationUpdated); ev.Update.Conversation.Name != "n" {
		t.Fatalf("update %+v", ev.Update)
	}
	// Frames of the client API.
	if err := c.MarkRead(context.Background(), "A", 2); err != nil {
		t.Fatal(err)
	}
	if f := pc.expect("message_status"); f["status"] != "read" || f["seq"] != 2.0 {
		t.Fatalf("read receipt %v", f)
	}
	if err := c.Typing(context.Background(), "A", true); err != nil {
		t.Fatal(err)
	}
	if f := pc.expect("typing"); f["state"] != "typing" || f["conversation_id"] != "A" {
		t.Fatalf("typing frame %v", f)
	}
	if err := c.Typing(context.Background(), "A", false); err != nil {
		t.Fatal(err)
	}
	if f := pc.expect("typing"); f["state"] != "stopped" {
		t.Fatalf("typing frame %v", f)
	}
	// Subscriptions are renewed on reconnect.
	if err := c.SubscribePresence(context.Background(), "carol"); err != nil {
		t.Fatal(err)
	}
	pc.expect("presence_subscribe")
	pc.closeWith(websocket.StatusGoingAway, "")
	pc2 := p.accept(1000)
	pc2.expect("sync")
	f := pc2.expect("presence_subscribe")
	ids := fmt.Sprint(f["user_ids"])
	if !strings.Contains(ids, "bob") || !strings.Contains(ids, "carol") {
		t.Fatalf("renewed subscription %v", ids)
	}
}

func TestTypingWithoutConnection(t *testing.T) {
	c := testClient([]string{"http://127.0.0.1:1"}, nil)
	if err := c.Typing(context.Background(), "A", true); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Typing = %v", err)
	}
}

func TestRunReturnsWithoutLeaks(t *testing.T) {
	p := newPeer(t)
	base := runtime.NumGoroutine()
	c := testClient([]string{p.srv.URL}, nil)
	stop := runClient(t, c)
	pc := p.accept(20)
	pc.expect("sync")
	pc.send(`{"type":"sync_complete","conversations":{}}`)
	pc.send(newMsgFrame("A", 3, "bob"))
	pc.expect("ping")
	// A Send in flight and an app that never reads Events.
	go func() { _, _ = c.Send(context.Background(), "A", "pending") }()
	pc.expect("send_message")
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	n := 0
	for range c.Events() {
		n++
	}
	if n == 0 {
		t.Fatal("no events were kept for the app")
	}
	pc.close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReconnectBackoffOnRefusal(t *testing.T) {
	// A server that is down: Run keeps trying, with backoff, until ctx ends.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	}))
	defer srv.Close()
	c := testClient([]string{srv.URL}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v", err)
	}
}

func TestSilentServerIsDroppedAndReconnected(t *testing.T) {
	p := newPeer(t)
	c := testClient([]string{p.srv.URL}, nil)
	runClient(t, c)
	pc := p.accept(20) // heartbeat 20ms; the peer never answers pings
	pc.expect("sync")
	nextEvent(t, c, EventConnected)
	ev := nextEvent(t, c, EventDisconnected)
	if !errors.Is(ev.Err, errHeartbeatTimeout) {
		t.Fatalf("disconnected with %v, want a heartbeat timeout", ev.Err)
	}
	pc2 := p.accept(1000)
	pc2.expect("sync")
}
