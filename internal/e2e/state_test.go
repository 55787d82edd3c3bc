package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

type convView struct {
	ConversationID string `json:"conversation_id"`
	LastSeq        int64  `json:"last_seq"`
	UnreadCount    int64  `json:"unread_count"`
	Members        []struct {
		UserID       string `json:"user_id"`
		DeliveredSeq int64  `json:"delivered_seq"`
		ReadSeq      int64  `json:"read_seq"`
	} `json:"members"`
}

func (c convView) watermarks(userID string) (delivered, read int64) {
	for _, m := range c.Members {
		if m.UserID == userID {
			return m.DeliveredSeq, m.ReadSeq
		}
	}
	return -1, -1
}

func statusFrame(conv string, seq int64, status string) map[string]any {
	return map[string]any{"type": "message_status", "conversation_id": conv, "seq": seq, "status": status}
}

func TestReceiptsMoveWatermarksForwardOnly(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	bobPhone := dial(t, srv, bob.Token)
	laptop := bob
	laptop.login(t, srv)
	bobLaptop := dial(t, srv, laptop.Token)
	for i := 1; i <= 5; i++ {
		a.send(sendText(conv, fmt.Sprintf("rc-%d", i), "hello"))
		a.expect("ack")
	}
	var view convView
	api(t, srv, "GET", "/api/v1/conversations/"+conv, bob.Token, nil, &view)
	if view.UnreadCount != 5 {
		t.Fatalf("bob's unread_count %d, want 5", view.UnreadCount)
	}

	bobPhone.send(statusFrame(conv, 5, "delivered"))
	st := a.expect("message_status", "new_message")
	if st.str("user_id") != bob.UserID || st.num("seq") != 5 || st.str("status") != "delivered" || st.str("conversation_id") != conv {
		t.Fatalf("alice got %v", st)
	}
	bobPhone.send(statusFrame(conv, 3, "read"))
	if st := a.expect("message_status"); st.str("status") != "read" || st.num("seq") != 3 {
		t.Fatalf("alice got %v", st)
	}
	// The reader's other device learns the read state too.
	for {
		st := bobLaptop.expect("message_status", "new_message")
		if st.str("status") == "read" {
			if st.num("seq") != 3 || st.str("user_id") != bob.UserID {
				t.Fatalf("bob's laptop got %v", st)
			}
			break
		}
	}
	// Lower values never move a watermark back.
	bobPhone.send(statusFrame(conv, 1, "read"))
	bobPhone.send(statusFrame(conv, 2, "delivered"))
	a.quiet(300*time.Millisecond, "message_status")
	api(t, srv, "GET", "/api/v1/conversations/"+conv, alice.Token, nil, &view)
	if d, r := view.watermarks(bob.UserID); d != 5 || r != 3 {
		t.Fatalf("bob's watermarks delivered=%d read=%d, want 5 and 3", d, r)
	}
	api(t, srv, "GET", "/api/v1/conversations/"+conv, bob.Token, nil, &view)
	if view.UnreadCount != 2 {
		t.Fatalf("bob's unread_count %d after reading up to 3 of 5, want 2", view.UnreadCount)
	}
	// Reading everything on one device clears unread everywhere; read implies delivered.
	bobLaptop.send(statusFrame(conv, 5, "read"))
	a.expect("message_status")
	api(t, srv, "GET", "/api/v1/conversations/"+conv, bob.Token, nil, &view)
	if d, r := view.watermarks(bob.UserID); view.UnreadCount != 0 || d != 5 || r != 5 {
		t.Fatalf("after reading all: unread=%d delivered=%d read=%d", view.UnreadCount, d, r)
	}
	// A receipt beyond the last message is capped.
	bobLaptop.send(statusFrame(conv, 99, "read"))
	a.quiet(200*time.Millisecond, "message_status")
	api(t, srv, "GET", "/api/v1/conversations/"+conv, bob.Token, nil, &view)
	if _, r := view.watermarks(bob.UserID); r != 5 {
		t.Fatalf("read_seq %d after a receipt past the end, want 5", r)
	}
}

func TestGroupReceiptsPerMember(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "alice")
	members := []account{newAccount(t, srv, "bob"), newAccount(t, srv, "carol"), newAccount(t, srv, "dave")}
	conv := group(t, srv, alice, "readers", members...)
	a := dial(t, srv, alice.Token)
	a.send(sendText(conv, "g-1", "one"))
	a.expect("ack")
	a.send(sendText(conv, "g-2", "two"))
	a.expect("ack")
	for i, m := range members[:2] {
		s := dial(t, srv, m.Token)
		s.send(statusFrame(conv, int64(i+1), "read"))
		if st := a.expect("message_status"); st.str("user_id") != m.UserID {
			t.Fatalf("alice got %v", st)
		}
	}
	var view convView
	api(t, srv, "GET", "/api/v1/conversations/"+conv, alice.Token, nil, &view)
	want := map[string]int64{members[0].UserID: 1, members[1].UserID: 2, members[2].UserID: 0}
	for uid, seq := range want {
		if _, r := view.watermarks(uid); r != seq {
			t.Fatalf("member %s read_seq %d, want %d (%+v)", uid, r, seq, view)
		}
	}
}

func TestPresenceOnlineThenOfflineWithLastSeen(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) {
		c.PresenceGrace = 100 * time.Millisecond
		c.PresenceWindow = 100 * time.Millisecond
	})
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	direct(t, srv, alice, bob) // presence is only for users who share a conversation
	a := dial(t, srv, alice.Token)
	a.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{bob.UserID}})
	if p := a.expect("presence"); p.str("user_id") != bob.UserID || p.str("status") != "offline" {
		t.Fatalf("initial presence %v", p)
	}
	b := dial(t, srv, bob.Token)
	if p := a.expect("presence"); p.str("status") != "online" {
		t.Fatalf("presence after bob connected: %v", p)
	}
	before := time.Now().UnixMilli()
	b.ws.CloseNow()
	p := a.expect("presence")
	if p.str("status") != "offline" || p.num("last_seen") < before-1000 || p.num("last_seen") > time.Now().UnixMilli() {
		t.Fatalf("presence after bob left: %v (left at ~%d)", p, before)
	}
	// A new subscriber sees the stored last_seen.
	a2 := dial(t, srv, alice.Token)
	a2.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{bob.UserID}})
	if q := a2.expect("presence"); q.str("status") != "offline" || q.num("last_seen") != p.num("last_seen") {
		t.Fatalf("stored presence %v, want last_seen %d", q, p.num("last_seen"))
	}
}

func TestPresenceFlappingIsBatched(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) {
		c.PresenceGrace = 200 * time.Millisecond
		c.PresenceWindow = time.Second
	})
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	direct(t, srv, alice, bob) // presence is only for users who share a conversation
	a := dial(t, srv, alice.Token)
	a.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{bob.UserID}})
	a.expect("presence")
	start := time.Now()
	for i := 0; i < 10; i++ { // bob reconnects ten times quickly
		b := dial(t, srv, bob.Token)
		b.ws.CloseNow()
	}
	b := dial(t, srv, bob.Token)
	defer b.ws.CloseNow()
	changes := 0
	deadline := time.After(1500 * time.Millisecond)
	for done := false; !done; {
		select {
		case f := <-a.frames:
			if f.str("type") == "presence" {
				changes++
			}
		case <-deadline:
			done = true
		}
	}
	if changes > 2 || time.Since(start) < time.Second {
		t.Fatalf("%d presence changes for ten reconnects in %s, want at most 2", changes, time.Since(start))
	}
}

func TestTypingReachesOthersAndIsNeverStored(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a, b := dial(t, srv, alice.Token), dial(t, srv, bob.Token)
	a.send(map[string]any{"type": "typing", "conversation_id": conv, "state": "typing"})
	if f := b.expect("typing"); f.str("user_id") != alice.UserID || f.str("state") != "typing" || f.str("conversation_id") != conv {
		t.Fatalf("bob got %v", f)
	}
	a.send(map[string]any{"type": "typing", "conversation_id": conv, "state": "typing"}) // repeat: throttled
	a.send(map[string]any{"type": "typing", "conversation_id": conv, "state": "stopped"})
	if f := b.expect("typing"); f.str("state") != "stopped" {
		t.Fatalf("bob got %v, want stopped (the repeat within a second is not forwarded)", f)
	}
	a.quiet(200*time.Millisecond, "typing") // never back to the typer
	var page struct {
		Messages []frame `json:"messages"`
	}
	api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages", alice.Token, nil, &page)
	var view convView
	api(t, srv, "GET", "/api/v1/conversations/"+conv, alice.Token, nil, &view)
	if len(page.Messages) != 0 || view.LastSeq != 0 {
		t.Fatalf("typing left traces: %d messages, last_seq %d", len(page.Messages), view.LastSeq)
	}
}

func TestMessageRateLimit(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MessageRate = 100 })
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	start := time.Now()
	for i := 1; i <= 100; i++ {
		a.send(sendText(conv, fmt.Sprintf("rl-%d", i), "x"))
	}
	for i := 1; i <= 100; i++ {
		a.expect("ack")
	}
	// The bucket refills at 100 a minute: one message more for every 0.6 s
	// the burst took (a slow machine), and then the next one is refused.
	sent := 100
	var e frame
	for {
		sent++
		ref := fmt.Sprintf("rl-%d", sent)
		a.send(sendText(conv, ref, "one too many"))
		if e = a.expect("error", "ack"); e.str("ref") == ref {
			break
		}
	}
	refilled := int(time.Since(start) / (600 * time.Millisecond))
	if e.num("status") != 429 || e.num("retry_after") <= 0 || sent-101 > refilled {
		t.Fatalf("message %d (%d refilled in %v): %v", sent, refilled, time.Since(start), e)
	}
	var page struct {
		Messages []frame `json:"messages"`
	}
	api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages?limit=200", bob.Token, nil, &page)
	if len(page.Messages) != sent-1 {
		t.Fatalf("history has %d messages, want %d", len(page.Messages), sent-1)
	}
	for _, m := range page.Messages {
		if m.str("client_message_id") == fmt.Sprintf("rl-%d", sent) {
			t.Fatal("the rejected message was stored")
		}
	}
}

func TestLoginBruteForceIsLimited(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "alice")
	for i := 0; i < 10; i++ {
		if st := api(t, srv, "POST", "/api/v1/auth/login", "", map[string]string{"username": alice.Username, "password": "guess-" + fmt.Sprint(i)}, nil); st != 401 {
			t.Fatalf("wrong guess %d: status %d", i, st)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/auth/login", jsonBody(map[string]string{"username": alice.Username, "password": "password-" + alice.Username}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("login after 10 failures: status %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Other users are not locked out.
	bob := newAccount(t, srv, "bob")
	bob.login(t, srv)
}

func TestSocketsPerUserLimit(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MaxSocketsPerUser = 2 })
	alice := newAccount(t, srv, "alice")
	dial(t, srv, alice.Token)
	dial(t, srv, alice.Token)
	var e apiError
	if st := api(t, srv, "GET", "/api/v1/ws", alice.Token, nil, &e); st != 429 {
		t.Fatalf("third socket: status %d, want 429", st)
	}
}
