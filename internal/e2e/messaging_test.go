// Package e2e holds end-to-end tests: a real parleyd node in-process, driven
// over real HTTP and WebSocket connections with the raw wire protocol.
package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server/servertest"
)

func TestDirectChatDeliversToEveryDevice(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	if again := direct(t, srv, bob, alice); again != conv {
		t.Fatalf("the pair got two conversations: %s and %s", conv, again)
	}
	alicePhone := dial(t, srv, alice.Token)
	if alicePhone.ready.str("user_id") != alice.UserID || alicePhone.ready.str("device_id") != alice.DeviceID || alicePhone.ready.num("heartbeat_interval") != 30000 {
		t.Fatalf("ready frame wrong: %v", alicePhone.ready)
	}
	laptop := alice
	laptop.login(t, srv)
	aliceLaptop := dial(t, srv, laptop.Token)
	bobSock := dial(t, srv, bob.Token)

	alicePhone.send(map[string]any{"type": "send_message", "message_id": "m-1", "conversation_id": conv, "content": "hi bob", "timestamp": time.Now().UnixMilli()})
	ack := alicePhone.expect("ack")
	if ack.str("message_id") != "m-1" || ack.num("seq") != 1 || ack.str("status") != "sent" || ack.str("server_message_id") == "" || ack.str("conversation_id") != conv || ack.num("timestamp") == 0 {
		t.Fatalf("ack wrong: %v", ack)
	}
	for name, s := range map[string]*sock{"bob": bobSock, "alice's laptop": aliceLaptop} {
		m := s.expect("new_message")
		want := map[string]any{"message_id": ack.str("server_message_id"), "client_message_id": "m-1", "conversation_id": conv,
			"sender_id": alice.UserID, "sender_device_id": alice.DeviceID, "content": "hi bob", "content_type": "text"}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: new_message %s = %v, want %v", name, k, m[k], v)
			}
		}
		if m.num("seq") != 1 || m.num("timestamp") != ack.num("timestamp") {
			t.Errorf("%s: new_message seq/timestamp wrong: %v", name, m)
		}
	}
	alicePhone.quiet(200*time.Millisecond, "new_message") // the sender's own device gets the ack only
}

func TestDuplicateSendIsAckedAgainAndDeliveredOnce(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a, b := dial(t, srv, alice.Token), dial(t, srv, bob.Token)
	a.send(sendText(conv, "dup-1", "once"))
	first := a.expect("ack")
	a.send(sendText(conv, "dup-1", "once"))
	second := a.expect("ack")
	if first.str("server_message_id") != second.str("server_message_id") || first.num("seq") != second.num("seq") {
		t.Fatalf("retry got a different ack: %v vs %v", first, second)
	}
	b.expect("new_message")
	b.quiet(300*time.Millisecond, "new_message")
	var page struct {
		Messages []frame `json:"messages"`
	}
	api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages", bob.Token, nil, &page)
	if len(page.Messages) != 1 {
		t.Fatalf("history has %d messages, want 1", len(page.Messages))
	}
}

func TestOfflineDeviceSyncsInOrderAndIsNotPushedUnasked(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	for i := 1; i <= 5; i++ {
		a.send(sendText(conv, fmt.Sprintf("off-%d", i), fmt.Sprintf("msg %d", i)))
		a.expect("ack")
	}
	b := dial(t, srv, bob.Token)
	b.quiet(300*time.Millisecond, "new_message") // rule 4: only through sync
	b.send(map[string]any{"type": "sync", "cursors": map[string]int64{conv: 2}})
	for want := int64(3); want <= 5; want++ {
		m := b.expect("new_message")
		if m.num("seq") != want || m.str("content") != fmt.Sprintf("msg %d", want) {
			t.Fatalf("sync frame %v, want seq %d", m, want)
		}
	}
	done := b.expect("sync_complete")
	convs, _ := done["conversations"].(map[string]any)
	if convs[conv] != float64(5) {
		t.Fatalf("sync_complete conversations = %v", done["conversations"])
	}
	// Without a cursor the conversation is sent from last_seq - limit.
	b.send(map[string]any{"type": "sync", "cursors": map[string]int64{}, "limit": 2})
	for want := int64(4); want <= 5; want++ {
		if m := b.expect("new_message"); m.num("seq") != want {
			t.Fatalf("got seq %d want %d", m.num("seq"), want)
		}
	}
	done = b.expect("sync_complete")
	if tr, _ := done["truncated"].([]any); len(tr) != 1 || tr[0] != conv {
		t.Fatalf("truncated = %v, want [%s]", done["truncated"], conv)
	}
}

func TestConcurrentSendersInAGroupGetGaplessSeqs(t *testing.T) {
	srv := servertest.Start(t)
	const senders, each = 20, 10
	admin := newAccount(t, srv, "admin")
	members := make([]account, senders)
	for i := range members {
		members[i] = newAccount(t, srv, "member")
	}
	conv := group(t, srv, admin, "busy", members...)
	listener := dial(t, srv, admin.Token)
	socks := make([]*sock, senders)
	for i, m := range members {
		socks[i] = dial(t, srv, m.Token)
	}
	var wg sync.WaitGroup
	acked := make([][]int64, senders)
	for i := range socks {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				socks[i].send(sendText(conv, fmt.Sprintf("s%d-%d", i, j), "x"))
			}
			for j := 0; j < each; j++ {
				acked[i] = append(acked[i], socks[i].expect("ack", "new_message").num("seq"))
			}
		}(i)
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i := range acked {
		for _, s := range acked[i] {
			if seen[s] {
				t.Fatalf("seq %d acked twice", s)
			}
			seen[s] = true
		}
	}
	for s := int64(1); s <= senders*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing: seqs are not gapless", s)
		}
	}
	// Every member sees every message once, in order.
	for s := int64(1); s <= senders*each; s++ {
		if m := listener.expect("new_message"); m.num("seq") != s {
			t.Fatalf("listener got seq %d, want %d", m.num("seq"), s)
		}
	}
	listener.quiet(200*time.Millisecond, "new_message")
}

func TestGroupOf256Members(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 256 users")
	}
	srv := servertest.Start(t)
	admin := newAccount(t, srv, "admin")
	members := make([]account, 255)
	for i := range members {
		members[i] = newAccount(t, srv, "g")
	}
	conv := group(t, srv, admin, "big", members...)
	extra := newAccount(t, srv, "extra")
	if st := api(t, srv, "POST", "/api/v1/groups/"+conv+"/members", admin.Token, map[string]any{"user_ids": []string{extra.UserID}}, nil); st != http.StatusUnprocessableEntity {
		t.Fatalf("adding a 257th member: status %d, want 422", st)
	}
	socks := make([]*sock, len(members))
	for i, m := range members {
		socks[i] = dial(t, srv, m.Token)
	}
	a := dial(t, srv, admin.Token)
	a.send(sendText(conv, "big-1", "hello everyone"))
	a.expect("ack")
	for i, s := range socks {
		if m := s.expect("new_message"); m.str("content") != "hello everyone" {
			t.Fatalf("member %d got %v", i, m)
		}
	}
}

func TestHistorySurvivesRestart(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	for i := 1; i <= 3; i++ {
		a.send(sendText(conv, fmt.Sprintf("r-%d", i), fmt.Sprintf("before restart %d", i)))
		a.expect("ack")
	}
	srv = srv.Restart()
	var page struct {
		Messages []frame `json:"messages"`
		HasMore  bool    `json:"has_more"`
	}
	if st := api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages", bob.Token, nil, &page); st != http.StatusOK {
		t.Fatalf("history after restart: status %d", st)
	}
	if len(page.Messages) != 3 || page.Messages[0].num("seq") != 3 || page.Messages[2].num("seq") != 1 || page.HasMore {
		t.Fatalf("history after restart: %+v", page)
	}
	a = dial(t, srv, alice.Token)
	a.send(sendText(conv, "r-4", "after restart"))
	if ack := a.expect("ack"); ack.num("seq") != 4 {
		t.Fatalf("seq after restart %d, want 4", ack.num("seq"))
	}
}

func TestContentRoundTripsExactly(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a, b := dial(t, srv, alice.Token), dial(t, srv, bob.Token)
	texts := []string{"control \x01\x1f and \t tab", "<script>&amp;</script>", "emoji 👩‍👩‍👧 and \u2028 separator", `quotes " and \ backslash`, "日本語のテキスト"}
	for i, text := range texts {
		a.send(sendText(conv, fmt.Sprintf("rt-%d", i), text))
		a.expect("ack")
		if m := b.expect("new_message"); m.str("content") != text {
			t.Fatalf("sent %q, received %q", text, m.str("content"))
		}
	}
}
