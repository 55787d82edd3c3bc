package client_test

// Integration tests: the SDK against a real in-process parleyd
// (internal/server/servertest), over real HTTP and WebSocket connections.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/internal/server/servertest"
)

const waitFor = 10 * time.Second

type account struct {
	user client.User
	sess client.Session
	pass string
}

func newAccount(t *testing.T, srv *servertest.Server, name string) account {
	t.Helper()
	ctx := context.Background()
	pass := "password-" + name
	u, err := client.Register(ctx, srv.URL, name, pass, "User "+name)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	s, err := client.Login(ctx, srv.URL, client.LoginRequest{Username: name, Password: pass, DeviceName: "test"})
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return account{user: u, sess: s, pass: pass}
}

// running is a Client whose Run runs in the background and whose events are
// collected by the test.
type running struct {
	*client.Client
	t       *testing.T
	events  chan client.Event
	backlog []client.Event // received, not consumed yet
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	err     error
}

func start(t *testing.T, srv *servertest.Server, acc account, mod func(*client.Config)) *running {
	t.Helper()
	cfg := client.Config{
		URLs:       []string{srv.URL},
		Token:      acc.sess.Token,
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c := client.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Client: c, t: t, events: make(chan client.Event, 10000), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	go func() {
		for ev := range c.Events() {
			r.events <- ev
		}
		close(r.events)
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends Run and returns its error.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(waitFor):
			r.t.Error("Run did not return")
		}
	})
	return r.err
}

// next returns the first event of one of the kinds; events of other kinds
// are kept, in order, for later calls.
func (r *running) next(kinds ...client.EventKind) client.Event {
	r.t.Helper()
	match := func(ev client.Event) bool {
		for _, k := range kinds {
			if ev.Kind == k {
				return true
			}
		}
		return false
	}
	for i, ev := range r.backlog {
		if match(ev) {
			r.backlog = append(r.backlog[:i:i], r.backlog[i+1:]...)
			return ev
		}
	}
	timeout := time.After(waitFor)
	for {
		select {
		case ev, ok := <-r.events:
			if !ok {
				r.t.Fatalf("events closed while waiting for %v", kinds)
			}
			if match(ev) {
				return ev
			}
			r.backlog = append(r.backlog, ev)
		case <-timeout:
			r.t.Fatalf("no %v event within %s", kinds, waitFor)
		}
	}
}

// messages collects the next n messages of conv (messages of other
// conversations are dropped), then checks that nothing else of conv arrives
// for a moment.
func (r *running) messages(conv string, n int) []client.Message {
	r.t.Helper()
	var out []client.Message
	for len(out) < n {
		ev := r.next(client.EventMessage)
		if ev.Message.ConversationID == conv {
			out = append(out, *ev.Message)
		}
	}
	for _, ev := range r.backlog {
		if ev.Kind == client.EventMessage && ev.Message.ConversationID == conv {
			r.t.Fatalf("unexpected message %d %q", ev.Message.Seq, ev.Message.Content)
		}
	}
	r.quiet(conv, 300*time.Millisecond)
	return out
}

// quiet fails if a message of conv arrives within d.
func (r *running) quiet(conv string, d time.Duration) {
	r.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-r.events:
			if !ok {
				return
			}
			if ev.Kind == client.EventMessage && ev.Message.ConversationID == conv {
				r.t.Fatalf("unexpected message %d %q", ev.Message.Seq, ev.Message.Content)
			}
			r.backlog = append(r.backlog, ev)
		case <-timeout:
			return
		}
	}
}

func checkSeqs(t *testing.T, msgs []client.Message, from int64, contents ...string) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != from+int64(i) {
			t.Fatalf("message %d has seq %d, want %d (all: %v)", i, m.Seq, from+int64(i), seqsOf(msgs))
		}
		if i < len(contents) && m.Content != contents[i] {
			t.Fatalf("message seq %d content %q, want %q", m.Seq, m.Content, contents[i])
		}
	}
}

func seqsOf(msgs []client.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func restClient(srv *servertest.Server, acc account) *client.Client {
	return client.New(client.Config{URLs: []string{srv.URL}, Token: acc.sess.Token})
}

func TestIntegrationRegisterLogin(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	u, err := client.Register(ctx, srv.URL, "alice", "correct-horse", "Alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.UserID == "" || u.Username != "alice" || u.DisplayName != "Alice" {
		t.Fatalf("registered %+v", u)
	}
	if _, err := client.Register(ctx, srv.URL, "alice", "correct-horse", ""); !client.IsConflict(err) {
		t.Fatalf("duplicate username: %v", err)
	}
	if _, err := client.Register(ctx, srv.URL, "No Spaces!", "correct-horse", ""); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("invalid username: %v", err)
	}
	if _, err := client.Register(ctx, srv.URL, "bobby", "short", ""); client.StatusOf(err) != 422 {
		t.Fatalf("short password: %v", err)
	}
	if _, err := client.Login(ctx, srv.URL, client.LoginRequest{Username: "alice", Password: "wrong-password"}); !client.IsUnauthorized(err) {
		t.Fatalf("wrong password: %v", err)
	}
	s, err := client.Login(ctx, srv.URL, client.LoginRequest{Username: "alice", Password: "correct-horse", DeviceName: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Token == "" || s.UserID != u.UserID || s.DeviceID == "" || s.Expires().Before(time.Now()) {
		t.Fatalf("session %+v", s)
	}
	c := client.New(client.Config{URLs: []string{srv.URL}, Token: s.Token})
	me, err := c.Me(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if me.UserID != u.UserID || me.Username != "alice" || len(me.Devices) != 1 || me.Devices[0].DeviceID != s.DeviceID {
		t.Fatalf("me %+v", me)
	}
	// Logging in again with the device id keeps the device.
	s2, err := client.Login(ctx, srv.URL, client.LoginRequest{Username: "alice", Password: "correct-horse", DeviceID: s.DeviceID})
	if err != nil || s2.DeviceID != s.DeviceID || s2.Token == s.Token {
		t.Fatalf("re-login on the same device: %+v, %v", s2, err)
	}
	if got, err := c.UserByUsername(ctx, "alice"); err != nil || got.UserID != u.UserID {
		t.Fatalf("UserByUsername: %+v %v", got, err)
	}
	if _, err := c.UserByUsername(ctx, "nobody"); !client.IsNotFound(err) {
		t.Fatalf("UserByUsername(nobody): %v", err)
	}
	if got, err := c.User(ctx, u.UserID); err != nil || got.Username != "alice" {
		t.Fatalf("User: %+v %v", got, err)
	}
	// Logout revokes the token at once.
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Me(ctx); !client.IsUnauthorized(err) {
		t.Fatalf("Me after logout: %v", err)
	}
	var ae *client.APIError
	if _, err := c.Me(ctx); !errors.As(err, &ae) || ae.Message == "" || ae.Code == "" {
		t.Fatalf("401 error body not decoded: %#v", err)
	}
}

func TestIntegrationChat(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ctx := context.Background()

	a := start(t, srv, alice, nil)
	b := start(t, srv, bob, func(c *client.Config) { c.AutoDelivered = true })
	if ev := a.next(client.EventConnected); ev.Ready.UserID != alice.user.UserID || ev.Ready.DeviceID != alice.sess.DeviceID || ev.Ready.HeartbeatInterval <= 0 {
		t.Fatalf("ready %+v", ev.Ready)
	}
	b.next(client.EventConnected)
	a.next(client.EventSyncComplete)
	b.next(client.EventSyncComplete)

	conv, err := a.CreateDirect(ctx, bob.user.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.CreateDirect(ctx, alice.user.UserID); err != nil || again.ConversationID != conv.ConversationID {
		t.Fatalf("bob's direct conversation %+v, %v", again, err)
	}
	if _, err := a.CreateDirect(ctx, alice.user.UserID); client.StatusOf(err) != 422 {
		t.Fatalf("direct with yourself: %v", err)
	}
	id := conv.ConversationID

	ack, err := a.Send(ctx, id, "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	if ack.Seq != 1 || ack.ServerMessageID == "" || ack.ConversationID != id || len(ack.MessageID) != 26 {
		t.Fatalf("ack %+v", ack)
	}
	got := b.messages(id, 1)
	m := got[0]
	if m.Content != "hi bob" || m.SenderID != alice.user.UserID || m.SenderDeviceID != alice.sess.DeviceID ||
		m.MessageID != ack.ServerMessageID || m.ClientMessageID != ack.MessageID || m.ContentType != "text" || m.Timestamp != ack.Timestamp {
		t.Fatalf("bob got %+v (ack %+v)", m, ack)
	}
	// Alice's own message reaches her app too, rebuilt from the ack.
	if own := a.messages(id, 1)[0]; own.Seq != 1 || own.Content != "hi bob" || own.MessageID != ack.ServerMessageID {
		t.Fatalf("own message %+v", own)
	}
	// Bob's automatic delivered receipt reaches Alice.
	for {
		ev := a.next(client.EventStatus)
		if ev.Status.ConversationID == id && ev.Status.UserID == bob.user.UserID && ev.Status.Seq == 1 {
			if ev.Status.Status != client.StatusDelivered {
				t.Fatalf("status %+v", ev.Status)
			}
			break
		}
	}
	// Bob replies (a reply to seq 1) and reads.
	if _, err := b.Send(ctx, id, "hello alice", client.WithReplyTo(1)); err != nil {
		t.Fatal(err)
	}
	reply := a.messages(id, 1)[0]
	if reply.Seq != 2 || reply.Content != "hello alice" || reply.ReplyToSeq != 1 || reply.SenderID != bob.user.UserID {
		t.Fatalf("alice got %+v", reply)
	}
	if err := b.MarkRead(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	for {
		ev := a.next(client.EventStatus)
		if ev.Status.UserID == bob.user.UserID && ev.Status.Status == client.StatusRead {
			if ev.Status.Seq != 2 {
				t.Fatalf("read status %+v", ev.Status)
			}
			break
		}
	}
	// Typing is forwarded.
	if err := b.Typing(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if ev := a.next(client.EventTyping); ev.Typing.UserID != bob.user.UserID || !ev.Typing.Typing() || ev.Typing.ConversationID != id {
		t.Fatalf("typing %+v", ev.Typing)
	}
	// A non-retryable error comes back from Send at once.
	if _, err := a.Send(ctx, "no-such-conversation", "x"); client.StatusOf(err) != 404 && client.StatusOf(err) != 403 {
		t.Fatalf("send to unknown conversation: %v", err)
	}
	big := make([]byte, 65537)
	for i := range big {
		big[i] = 'x'
	}
	if _, err := a.Send(ctx, id, string(big)); !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("send over 64 KiB: %v", err)
	}
	// The REST views agree.
	cv, err := b.Conversation(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if cv.LastSeq != 2 || cv.Type != client.TypeDirect || len(cv.Members) != 2 {
		t.Fatalf("conversation %+v", cv)
	}
	list, err := a.Conversations(ctx)
	if err != nil || len(list) != 1 || list[0].ConversationID != id || list[0].LastMessage == nil || list[0].LastMessage.Seq != 2 {
		t.Fatalf("conversations %+v, %v", list, err)
	}
	if list[0].UnreadCount != 1 {
		t.Fatalf("alice unread %d, want 1", list[0].UnreadCount)
	}
	page, err := a.History(ctx, id, client.HistoryQuery{})
	if err != nil || len(page.Messages) != 2 || page.Messages[0].Seq != 2 || page.HasMore {
		t.Fatalf("history %+v, %v", page, err)
	}
	page, err = a.History(ctx, id, client.HistoryQuery{Before: 2})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Seq != 1 {
		t.Fatalf("history before 2: %+v, %v", page, err)
	}
	page, err = a.History(ctx, id, client.HistoryQuery{Forward: true, Limit: 1})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Seq != 1 || !page.HasMore {
		t.Fatalf("history after 0: %+v, %v", page, err)
	}
}

func TestIntegrationDuplicateSendDeliveredOnce(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ctx := context.Background()
	a := start(t, srv, alice, nil)
	b := start(t, srv, bob, nil)
	b.next(client.EventSyncComplete)
	conv, err := a.CreateDirect(ctx, bob.user.UserID)
	if err != nil {
		t.Fatal(err)
	}
	id := conv.ConversationID
	first, err := a.Send(ctx, id, "only once", client.WithMessageID("dup-key-1"))
	if err != nil {
		t.Fatal(err)
	}
	// The same id again, sequentially and concurrently: the same ack.
	var wg sync.WaitGroup
	acks := make([]client.Ack, 4)
	errs := make([]error, 4)
	for i := range acks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks[i], errs[i] = a.Send(ctx, id, "only once", client.WithMessageID("dup-key-1"))
		}()
	}
	wg.Wait()
	for i := range acks {
		if errs[i] != nil || acks[i].Seq != first.Seq || acks[i].ServerMessageID != first.ServerMessageID {
			t.Fatalf("repeat %d: %+v %v (first %+v)", i, acks[i], errs[i], first)
		}
	}
	if _, err := a.Send(ctx, id, "next"); err != nil {
		t.Fatal(err)
	}
	got := b.messages(id, 2)
	checkSeqs(t, got, 1, "only once", "next")
	// A second device of Alice sees each of her messages once as well.
	s2, err := client.Login(ctx, srv.URL, client.LoginRequest{Username: "alice", Password: alice.pass, DeviceName: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	phone := start(t, srv, account{user: alice.user, sess: s2}, nil)
	checkSeqs(t, phone.messages(id, 2), 1, "only once", "next")
}

func TestIntegrationOfflineSyncInOrder(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ctx := context.Background()
	a := start(t, srv, alice, nil)
	conv, err := a.CreateDirect(ctx, bob.user.UserID)
	if err != nil {
		t.Fatal(err)
	}
	id := conv.ConversationID
	var want []string
	send := func(n int) {
		for i := 0; i < n; i++ {
			text := fmt.Sprintf("message %d", len(want)+1)
			if _, err := a.Send(ctx, id, text); err != nil {
				t.Fatal(err)
			}
			want = append(want, text)
		}
	}
	send(5) // Bob is offline

	b := start(t, srv, bob, nil)
	checkSeqs(t, b.messages(id, 5), 1, want[:5]...)
	b.next(client.EventSyncComplete)
	cursors := b.Cursors()
	if cursors[id] != 5 {
		t.Fatalf("cursors %v", cursors)
	}
	if err := b.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}

	send(3) // offline again
	b2 := start(t, srv, bob, func(c *client.Config) { c.Cursors = cursors })
	checkSeqs(t, b2.messages(id, 3), 6, want[5:]...)
	// And live after the sync.
	send(1)
	checkSeqs(t, b2.messages(id, 1), 9, want[8])
}

func TestIntegrationGapFill(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ctx := context.Background()
	a := start(t, srv, alice, nil)
	conv, err := a.CreateDirect(ctx, bob.user.UserID)
	if err != nil {
		t.Fatal(err)
	}
	id := conv.ConversationID
	const n = 7
	for i := 1; i <= n; i++ {
		if _, err := a.Send(ctx, id, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("truncated sync is filled over REST", func(t *testing.T) {
		b := start(t, srv, bob, func(c *client.Config) {
			c.Cursors = map[string]int64{id: 0}
			c.SyncLimit = 2
		})
		sc := b.next(client.EventSyncComplete)
		if len(sc.Sync.Truncated) != 1 || sc.Sync.Truncated[0] != id || sc.Sync.Conversations[id] != n {
			t.Fatalf("sync_complete %+v, want %s truncated at last_seq %d", sc.Sync, id, n)
		}
		checkSeqs(t, b.messages(id, n), 1, "m1", "m2", "m3", "m4", "m5", "m6", "m7")
	})
	t.Run("live message after a gap", func(t *testing.T) {
		// No sync: the client knows it has seen up to seq 2 only, so the next
		// live message (seq 8) reveals a gap that is filled before it.
		b := start(t, srv, bob, func(c *client.Config) {
			c.Cursors = map[string]int64{id: 2}
			c.NoSync = true
		})
		b.next(client.EventConnected)
		waitConnected(t, b.Client)
		if _, err := a.Send(ctx, id, "m8"); err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, b.messages(id, 6), 3, "m3", "m4", "m5", "m6", "m7", "m8")
	})
	t.Run("more than a page", func(t *testing.T) {
		for i := n + 2; i <= 230; i++ {
			if _, err := a.Send(ctx, id, fmt.Sprintf("m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		b := start(t, srv, bob, func(c *client.Config) { c.Cursors = map[string]int64{id: 0} })
		got := b.messages(id, 230)
		checkSeqs(t, got, 1)
		if got[229].Content != "m230" {
			t.Fatalf("last message %+v", got[229])
		}
	})
}

func waitConnected(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("not connected")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIntegrationGroups(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, carol := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "carol")
	ctx := context.Background()
	a := start(t, srv, alice, nil)
	b := start(t, srv, bob, nil)
	b.next(client.EventSyncComplete)

	g, err := a.CreateGroup(ctx, "friends", []string{bob.user.UserID})
	if err != nil {
		t.Fatal(err)
	}
	if g.Type != client.TypeGroup || g.Name != "friends" || len(g.Members) != 2 {
		t.Fatalf("group %+v", g)
	}
	if m, ok := g.Member(alice.user.UserID); !ok || m.Role != client.RoleAdmin {
		t.Fatalf("creator membership %+v", m)
	}
	if ev := b.next(client.EventConversationUpdated); ev.Update.ConversationID != g.ConversationID || ev.Update.Change != client.ChangeCreated {
		t.Fatalf("bob's update %+v", ev.Update)
	}
	if _, err := a.Send(ctx, g.ConversationID, "welcome"); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, b.messages(g.ConversationID, 1), 1, "welcome")

	if _, err := b.AddMembers(ctx, g.ConversationID, carol.user.UserID); !client.IsForbidden(err) {
		t.Fatalf("non-admin add: %v", err)
	}
	g2, err := a.AddMembers(ctx, g.ConversationID, carol.user.UserID)
	if err != nil || len(g2.Members) != 3 {
		t.Fatalf("add: %+v %v", g2, err)
	}
	g3, err := a.RenameGroup(ctx, g.ConversationID, "best friends")
	if err != nil || g3.Name != "best friends" {
		t.Fatalf("rename: %+v %v", g3, err)
	}
	for {
		ev := b.next(client.EventConversationUpdated)
		if ev.Update.Change == client.ChangeRenamed {
			if ev.Update.Conversation.Name != "best friends" {
				t.Fatalf("renamed update %+v", ev.Update)
			}
			break
		}
	}
	if err := b.RemoveMember(ctx, g.ConversationID, bob.user.UserID); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if _, err := b.History(ctx, g.ConversationID, client.HistoryQuery{}); !client.IsForbidden(err) {
		t.Fatalf("history after leaving: %v", err)
	}
	if _, err := b.Send(ctx, g.ConversationID, "still here?"); !client.IsForbidden(err) {
		t.Fatalf("send after leaving: %v", err)
	}
}

func TestIntegrationLogoutEndsRun(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "alice")
	a := start(t, srv, alice, nil)
	a.next(client.EventConnected)
	if err := restClient(srv, alice).Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := a.next(client.EventExpired)
	if !client.IsSessionExpired(ev.Err) && !client.IsUnauthorized(ev.Err) {
		t.Fatalf("expired event %v", ev.Err)
	}
	select {
	case err := <-a.done:
		if !client.IsSessionExpired(err) {
			t.Fatalf("Run = %v", err)
		}
		a.once.Do(func() {})
	case <-time.After(waitFor):
		t.Fatal("Run did not return after logout")
	}
}

func TestIntegrationReconnectAfterRestart(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	ctx := context.Background()
	conv, err := restClient(srv, alice).CreateDirect(ctx, bob.user.UserID)
	if err != nil {
		t.Fatal(err)
	}
	id := conv.ConversationID
	b := start(t, srv, bob, nil)
	b.next(client.EventSyncComplete)
	// A message, then the server restarts (same data dir, new port): Bob's
	// client fails over to the new address and syncs what it missed.
	if _, err := restSend(ctx, t, srv, alice, id, "before"); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, b.messages(id, 1), 1, "before")
	srv.Stop()
	b.next(client.EventDisconnected)
	b.stop()

	srv2 := srv.Restart()
	if _, err := restSend(ctx, t, srv2, alice, id, "after"); err != nil {
		t.Fatal(err)
	}
	b2 := start(t, srv2, bob, func(c *client.Config) {
		c.URLs = []string{srv.URL, srv2.URL} // the old address is dead now
		c.Cursors = b.Cursors()
	})
	checkSeqs(t, b2.messages(id, 1), 2, "after")
}

// restSend sends one message with a short-lived client.
func restSend(ctx context.Context, t *testing.T, srv *servertest.Server, acc account, conv, text string) (client.Ack, error) {
	t.Helper()
	c := client.New(client.Config{URLs: []string{srv.URL}, Token: acc.sess.Token, NoSync: true})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(rctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	sctx, scancel := context.WithTimeout(ctx, waitFor)
	defer scancel()
	return c.Send(sctx, conv, text)
}

// deadURL returns a URL on which nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// TestRESTPassesOverUnreachableNodes: register, login and the client's REST
// calls go to the next node of the list when one cannot be reached, and an
// answer from a node (even an error) is final.
func TestRESTPassesOverUnreachableNodes(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	dead := deadURL(t)
	nodes := dead + "," + srv.URL
	u, err := client.Register(ctx, nodes, "failover", "password-failover", "")
	if err != nil || u.Username != "failover" {
		t.Fatalf("register through a dead first node: %+v, %v", u, err)
	}
	if _, err := client.Register(ctx, nodes, "failover", "password-failover", ""); client.StatusOf(err) != 409 {
		t.Fatalf("the second register must reach the live node and get its 409: %v", err)
	}
	s, err := client.Login(ctx, nodes, client.LoginRequest{Username: "failover", Password: "password-failover"})
	if err != nil || s.Token == "" {
		t.Fatalf("login through a dead first node: %+v, %v", s, err)
	}
	c := client.New(client.Config{URLs: []string{dead, srv.URL}, Token: s.Token})
	if me, err := c.Me(ctx); err != nil || me.UserID != u.UserID {
		t.Fatalf("Me with the current URL dead: %+v, %v", me, err)
	}
	if _, err := client.Login(ctx, dead, client.LoginRequest{Username: "failover", Password: "x"}); err == nil || client.StatusOf(err) != 0 {
		t.Fatalf("login with only a dead node: %v", err)
	}
}
