package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/metrics"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// countingBus is the in-process bus counting publishes by topic.
type countingBus struct {
	*local.Bus
	mu     sync.Mutex
	counts map[string]int
}

func (b *countingBus) Publish(ctx context.Context, topic string, ev *chat.Event) error {
	b.mu.Lock()
	b.counts[topic]++
	b.mu.Unlock()
	return b.Bus.Publish(ctx, topic, ev)
}

func (b *countingBus) count(topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts[topic]
}

// slowLoads delays whole-conversation loads, so that events queue behind them.
type slowLoads struct {
	chat.Store
	delay time.Duration
}

func (s *slowLoads) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	time.Sleep(s.delay)
	return s.Store.Conversation(ctx, id)
}

// fakeSocket is a registered conn whose writer records the frames.
type fakeSocket struct {
	c      *conn
	mu     sync.Mutex
	frames []map[string]any
	n      atomic.Int64
}

func (s *fakeSocket) record() {
	for {
		fs := s.c.q.take(nil)
		if fs == nil {
			return
		}
		s.mu.Lock()
		for _, f := range fs {
			if f == nil {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(f, &m); err != nil {
				panic(fmt.Sprintf("frame %q: %v", f, err))
			}
			s.frames = append(s.frames, m)
		}
		s.n.Store(int64(len(s.frames)))
		s.mu.Unlock()
	}
}

// ofType returns the frames of one type (and conversation, if not "").
func (s *fakeSocket) ofType(typ, conv string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, f := range s.frames {
		if f["type"] == typ && (conv == "" || f["conversation_id"] == conv) {
			out = append(out, f)
		}
	}
	return out
}

type chanFixture struct {
	t     *testing.T
	store chat.Store
	bus   *countingBus
	svc   *chat.Service
	g     *Gateway
	reg   *prometheus.Registry
	users []chat.Session
}

// newChanFixture runs a gateway on a service that delivers conversations of
// more than directMax members fan-out-on-read, with n registered users.
func newChanFixture(t *testing.T, directMax, n int, wrap func(chat.Store) chat.Store, cfg func(*Config)) *chanFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "chan.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := &chanFixture{t: t, store: st, bus: &countingBus{Bus: local.New(), counts: map[string]int{}}, reg: prometheus.NewRegistry()}
	var store chat.Store = st
	if wrap != nil {
		store = wrap(st)
	}
	f.svc = chat.NewService(chat.Config{FanoutDirectMax: directMax, MaxGroupMembers: 1000},
		chat.Deps{Store: store, Bus: f.bus, Hasher: security.NewBcrypt(4)})
	gc := DefaultConfig()
	gc.PresenceGrace, gc.PresenceWindow = 0, 0
	if cfg != nil {
		cfg(&gc)
	}
	f.g = New(gc, f.svc, metrics.New(f.reg), slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		f.g.chans.close()
		f.svc.Close()
	})
	for i := 0; i < n; i++ {
		f.users = append(f.users, f.login(fmt.Sprintf("user%03d", i), true))
	}
	return f
}

// login registers the user (if register) and logs a new device in.
func (f *chanFixture) login(name string, register bool) chat.Session {
	f.t.Helper()
	ctx := context.Background()
	if register {
		if _, err := f.svc.Register(ctx, name, "password1", ""); err != nil {
			f.t.Fatal(err)
		}
	}
	res, err := f.svc.Login(ctx, name, "password1", "test", "")
	if err != nil {
		f.t.Fatal(err)
	}
	return res.Session
}

// online registers a socket of sess on the node.
func (f *chanFixture) online(sess chat.Session) *fakeSocket {
	f.t.Helper()
	s := &fakeSocket{}
	s.c = &conn{g: f.g, sess: sess, ctx: context.Background()}
	s.c.q = newOutQueue(1<<16, s.record)
	if err := f.g.hub.register(s.c); err != nil {
		f.t.Fatal(err)
	}
	s.c.q.start()
	return s
}

func (f *chanFixture) group(admin chat.Session, members []chat.Session) chat.Conversation {
	f.t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	conv, err := f.svc.CreateGroup(context.Background(), admin, "channel", ids)
	if err != nil {
		f.t.Fatal(err)
	}
	return conv
}

func (f *chanFixture) send(from chat.Session, conv, id string) chat.Message {
	f.t.Helper()
	m, err := f.svc.Send(context.Background(), from, chat.SendRequest{ClientID: id, ConversationID: conv, Content: "hello " + id})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *chanFixture) counter(c prometheus.Counter) int {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		f.t.Fatal(err)
	}
	return int(m.GetCounter().GetValue())
}

// waitMessages waits until the socket holds n new_message frames of conv and
// checks that they are seqs want, in order, each once.
func waitMessages(t *testing.T, who string, s *fakeSocket, conv string, want []int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.ofType("new_message", conv)) < len(want) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // anything extra would show now
	got := s.ofType("new_message", conv)
	seqs := make([]int64, len(got))
	for i, m := range got {
		seqs[i] = int64(m["seq"].(float64))
	}
	if fmt.Sprint(seqs) != fmt.Sprint(want) {
		t.Fatalf("%s got seqs %v of %s, want %v", who, seqs, conv, want)
	}
}

// waitType waits (a little) for n frames of a type and conversation, and
// returns those there are.
func waitType(s *fakeSocket, typ, conv string, n int) []map[string]any {
	deadline := time.Now().Add(5 * time.Second)
	for len(s.ofType(typ, conv)) < n && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	return s.ofType(typ, conv)
}

// waitChange waits (a little) for a conversation_updated frame of one
// change, and returns those of that change there are.
func waitChange(s *fakeSocket, conv, change string) []map[string]any {
	var out []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		out = out[:0]
		for _, f := range s.ofType("conversation_updated", conv) {
			if f["change"] == change {
				out = append(out, f)
			}
		}
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
	}
}

// A channel's messages reach every local device of every member once, in
// seq order, except the sending device, and no non-member's; each costs one
// bus publish. With most members here the node walks the members, with few
// it walks its own users.
func TestChannelForwardsToLocalMembersOnly(t *testing.T) {
	for _, online := range []int{10, 5} {
		t.Run(fmt.Sprintf("online=%d", online), func(t *testing.T) { testForwardsToLocalMembers(t, online) })
	}
}

func testForwardsToLocalMembers(t *testing.T, online int) {
	f := newChanFixture(t, 3, 15, nil, nil)
	members := f.users[:12]
	conv := f.group(members[0], members[1:])
	socks := map[string]*fakeSocket{}
	for i, m := range members[:online] { // the others stay offline
		socks[fmt.Sprint(i)] = f.online(m)
	}
	member1b := f.login("user001", false) // member 1's second device
	socks["1b"] = f.online(member1b)
	var outsiders []*fakeSocket
	for _, u := range f.users[12:] {
		outsiders = append(outsiders, f.online(u))
	}

	const n = 30
	sentBy := map[int64]string{} // seq -> device
	before := f.bus.count(chat.ChannelTopic)
	for i := 0; i < n; i++ {
		from := members[i%5]
		m := f.send(from, conv.ID, fmt.Sprint("m", i))
		sentBy[m.Seq] = from.DeviceID
	}
	if got := f.bus.count(chat.ChannelTopic) - before; got != n {
		t.Fatalf("%d messages cost %d channel publishes, want %d", n, got, n)
	}
	for name, s := range socks {
		var want []int64
		for seq := int64(1); seq <= n; seq++ {
			if sentBy[seq] != s.c.sess.DeviceID {
				want = append(want, seq)
			}
		}
		waitMessages(t, "member device "+name, s, conv.ID, want)
	}
	for i, s := range outsiders {
		if got := s.ofType("new_message", ""); len(got) != 0 {
			t.Fatalf("non-member %d got %d messages", i, len(got))
		}
	}
	if loads := f.counter(f.g.metrics.ChannelLoads); loads != 1 {
		t.Errorf("member set loaded %d times, want once", loads)
	}
}

// A membership change the node never heard of (made behind the service's
// back, so no event was published) is caught by the message's audience: the
// set is loaded again, the new member gets the message and the removed one
// does not.
func TestChannelStaleMemberSetIsReloaded(t *testing.T) {
	f := newChanFixture(t, 3, 8, nil, nil)
	members := f.users[:6]
	conv := f.group(members[0], members[1:])
	socks := make([]*fakeSocket, len(f.users))
	for i, u := range f.users {
		socks[i] = f.online(u)
	}
	f.send(members[0], conv.ID, "before")
	ctx := context.Background()
	// Swap one member for another: the member count stays the same.
	if err := f.store.AddMembers(ctx, conv.ID, []chat.Member{{UserID: f.users[6].UserID, Role: chat.RoleMember}}, 1000, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RemoveMember(ctx, conv.ID, members[2].UserID, 2); err != nil {
		t.Fatal(err)
	}
	f.send(members[0], conv.ID, "after")
	waitMessages(t, "added member", socks[6], conv.ID, []int64{2})
	waitMessages(t, "removed member", socks[2], conv.ID, []int64{1})
	waitMessages(t, "member", socks[3], conv.ID, []int64{1, 2})
	waitMessages(t, "never a member", socks[7], conv.ID, nil)
	if loads := f.counter(f.g.metrics.ChannelLoads); loads != 2 {
		t.Errorf("member set loaded %d times, want 2 (first use, changed audience)", loads)
	}
}

// Membership changes published by the service keep the held set current
// without loads, and conversation_updated reaches the users concerned only
// (every member for a rename).
func TestChannelMembershipChanges(t *testing.T) {
	f := newChanFixture(t, 3, 9, nil, nil)
	members := f.users[:6]
	conv := f.group(members[0], members[1:])
	ctx := context.Background()
	socks := make([]*fakeSocket, 6)
	for i := range socks {
		socks[i] = f.online(f.users[i])
	}
	f.send(members[0], conv.ID, "1") // loads the set

	// Users 6 (offline here) and 7 (online) join.
	late := f.online(f.users[7])
	if _, err := f.svc.AddMembers(ctx, members[0], conv.ID, []string{f.users[6].UserID, f.users[7].UserID}); err != nil {
		t.Fatal(err)
	}
	if got := waitChange(late, conv.ID, chat.ChangeMemberAdded); len(got) != 1 {
		t.Fatalf("the added user got %v, want one member_added", got)
	}
	for i, s := range socks {
		for _, f := range s.ofType("conversation_updated", conv.ID) {
			if f["change"] != chat.ChangeCreated {
				t.Fatalf("member %d was told of a join: %v", i, f)
			}
		}
	}
	// Member 2 leaves.
	if err := f.svc.RemoveMember(ctx, f.users[2], conv.ID, f.users[2].UserID); err != nil {
		t.Fatal(err)
	}
	if got := waitChange(socks[2], conv.ID, chat.ChangeMemberRemoved); len(got) != 1 {
		t.Fatalf("the removed user got %v, want one member_removed", got)
	}
	loads := f.counter(f.g.metrics.ChannelLoads)
	f.send(members[0], conv.ID, "2")
	waitMessages(t, "joined member", late, conv.ID, []int64{2})
	waitMessages(t, "removed member", socks[2], conv.ID, []int64{1})
	waitMessages(t, "member", socks[1], conv.ID, []int64{1, 2})
	// Loads: one for each change with a user here to tell (the frame needs
	// the conversation), none for the message after them.
	if got := f.counter(f.g.metrics.ChannelLoads); got != loads {
		t.Errorf("the message after the changes loaded the set %d times", got-loads)
	}

	// A change concerning nobody here is applied to the set without a load.
	if err := f.svc.RemoveMember(ctx, members[0], conv.ID, f.users[6].UserID); err != nil {
		t.Fatal(err)
	}
	if got := f.counter(f.g.metrics.ChannelLoads); got != loads {
		t.Errorf("a change concerning nobody here loaded the conversation")
	}

	if _, err := f.svc.RenameGroup(ctx, members[0], conv.ID, "new name"); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*fakeSocket{socks[0], socks[1], socks[3], late} {
		got := waitChange(s, conv.ID, chat.ChangeRenamed)
		if len(got) != 1 || got[0]["conversation"].(map[string]any)["name"] != "new name" {
			t.Fatalf("member %d got %v for the rename", i, got)
		}
	}
	for _, f := range socks[2].ofType("conversation_updated", conv.ID) {
		if f["change"] == chat.ChangeRenamed {
			t.Fatalf("the removed member was told of the rename: %v", f)
		}
	}
}

// With member-set loads slow, events queue behind them and every device
// still sees each conversation in seq order, exactly once.
func TestChannelOrderBehindLoads(t *testing.T) {
	f := newChanFixture(t, 3, 10, func(s chat.Store) chat.Store { return &slowLoads{Store: s, delay: 20 * time.Millisecond} },
		func(c *Config) { c.ChannelCacheMembers = 8 }) // two 6-member sets do not fit: loads again and again
	a := f.group(f.users[0], f.users[1:6])
	b := f.group(f.users[4], f.users[5:10])
	socks := make([]*fakeSocket, len(f.users))
	for i, u := range f.users {
		socks[i] = f.online(u)
	}
	const each = 20
	var wg sync.WaitGroup
	for _, sender := range []int{0, 1, 5, 9} {
		wg.Add(1)
		go func(from chat.Session) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				conv := a.ID
				if from.UserID == f.users[5].UserID && i%2 == 0 || from.UserID == f.users[9].UserID {
					conv = b.ID
				}
				p, err := f.svc.Submit(context.Background(), from, chat.SendRequest{ClientID: fmt.Sprint(from.UserID, i), ConversationID: conv, Content: "x"})
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := p.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}(f.users[sender])
	}
	wg.Wait()
	last := func(conv string) int64 {
		c, err := f.store.Conversation(context.Background(), conv)
		if err != nil {
			t.Fatal(err)
		}
		return c.LastSeq
	}
	la, lb := last(a.ID), last(b.ID)
	check := func(i int, conv string, lastSeq int64) {
		t.Helper()
		// A socket sees every seq but its own sends, in order: reconstruct
		// its own from the store.
		msgs, _, err := f.store.Messages(context.Background(), conv, chat.Page{Forward: true, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for _, m := range msgs {
			if m.SenderDeviceID != socks[i].c.sess.DeviceID {
				want = append(want, m.Seq)
			}
		}
		if int64(len(msgs)) != lastSeq {
			t.Fatalf("history of %s has %d messages, last seq %d", conv, len(msgs), lastSeq)
		}
		waitMessages(t, fmt.Sprint("user ", i), socks[i], conv, want)
	}
	for i := 0; i < 6; i++ {
		check(i, a.ID, la)
	}
	for i := 4; i < 10; i++ {
		check(i, b.ID, lb)
	}
	if held := f.g.chans.heldMembers(); held > 8 {
		t.Errorf("holding %d member ids, over the bound of 8", held)
	}
}

// Typing in a channel reaches the other local members' sockets, never the
// typing device's nor a non-member's.
func TestChannelTyping(t *testing.T) {
	f := newChanFixture(t, 3, 6, nil, nil)
	conv := f.group(f.users[0], f.users[1:5])
	socks := make([]*fakeSocket, len(f.users))
	for i, u := range f.users {
		socks[i] = f.online(u)
	}
	if err := f.svc.Typing(context.Background(), f.users[1], conv.ID, chat.TypingStarted); err != nil {
		t.Fatal(err)
	}
	for i, s := range socks {
		want := 1
		if i == 1 || i == 5 {
			want = 0
		}
		if got := waitType(s, "typing", conv.ID, want); len(got) != want {
			t.Fatalf("socket %d got %d typing frames, want %d", i, len(got), want)
		}
	}
}
