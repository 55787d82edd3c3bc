package chat_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

func TestAudience(t *testing.T) {
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("01JDQ80AZ3C5E7G9J1K3M5P%03d", i)
	}
	a := chat.AudienceOf(ids)
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	if b := chat.AudienceOf(rev); a != b {
		t.Fatalf("order changed the audience: %v vs %v", a, b)
	}
	// Kept up to date one id at a time, it equals the recomputed one.
	inc := chat.AudienceOf(ids[:10])
	for _, id := range ids[10:] {
		inc.Add(id)
	}
	if inc != a {
		t.Fatalf("incremental %v, recomputed %v", inc, a)
	}
	inc.Remove(ids[3])
	if want := chat.AudienceOf(slices.Delete(slices.Clone(ids), 3, 4)); inc != want {
		t.Fatalf("after remove %v, want %v", inc, want)
	}
	// Same size, one member swapped: a different audience.
	swapped := slices.Clone(ids)
	swapped[7] = "01JDQ80AZ3C5E7G9J1K3M5PXYZ"
	if b := chat.AudienceOf(swapped); b == a || b.Count != a.Count {
		t.Fatalf("a swapped member kept the audience: %v", b)
	}
	// Ids differing in one byte, or only in length, hash apart.
	seen := map[uint64]string{}
	for _, id := range []string{"", "a", "b", "ab", "ba", "abcdefgh", "abcdefgi", "abcdefgh\x00", "bbcdefgh"} {
		h := chat.AudienceOf([]string{id}).Sum
		if other, dup := seen[h]; dup {
			t.Fatalf("%q and %q hash alike", id, other)
		}
		seen[h] = id
	}
}

// published is one call of Bus.Publish.
type published struct {
	topic string
	ev    *chat.Event
}

// recordingBus is the in-process bus, remembering every publish.
type recordingBus struct {
	*local.Bus
	mu  sync.Mutex
	log []published
}

func (b *recordingBus) Publish(ctx context.Context, topic string, ev *chat.Event) error {
	b.mu.Lock()
	b.log = append(b.log, published{topic, ev})
	b.mu.Unlock()
	return b.Bus.Publish(ctx, topic, ev)
}

// take returns and forgets what was published so far.
func (b *recordingBus) take() []published {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.log
	b.log = nil
	return out
}

// waitKind waits until at least n events of kind were published, and
// returns (and forgets) everything published.
func (b *recordingBus) waitKind(t *testing.T, kind chat.EventKind, n int) []published {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got []published
	for {
		got = append(got, b.take()...)
		k := 0
		for _, p := range got {
			if p.ev.Kind == kind {
				k++
			}
		}
		if k >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events of kind %d published, want %d: %v", k, kind, n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// convLoads counts whole-conversation loads reaching the store.
type convLoads struct {
	chat.Store
	n atomic.Int64
}

func (c *convLoads) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	c.n.Add(1)
	return c.Store.Conversation(ctx, id)
}

// fanoutMetrics counts Metrics.Fanout by route.
type fanoutMetrics struct {
	mu                  sync.Mutex
	publishes, messages map[string]int
}

func (m *fanoutMetrics) CommitBatch(int, time.Duration, error) {}
func (m *fanoutMetrics) Published(int, int)                    {}
func (m *fanoutMetrics) Fanout(route string, message bool, publishes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publishes[route] += publishes
	if message {
		m.messages[route]++
	}
}

// committedLog is an Observer keeping the committed results.
type committedLog struct {
	mu      sync.Mutex
	results []chat.AppendResult
}

func (o *committedLog) Committed(r []chat.AppendResult) {
	o.mu.Lock()
	o.results = append(o.results, r...)
	o.mu.Unlock()
}
func (o *committedLog) WatermarksMoved([]chat.Watermark) {}

type fanoutFixture struct {
	svc      *chat.Service
	bus      *recordingBus
	store    *convLoads
	metrics  *fanoutMetrics
	observed *committedLog
	users    []chat.Session
}

// newFanoutFixture starts a service delivering conversations of more than
// directMax members fan-out-on-read, with n registered users.
func newFanoutFixture(t *testing.T, directMax, n int) *fanoutFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fanout.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := &fanoutFixture{
		bus:      &recordingBus{Bus: local.New()},
		store:    &convLoads{Store: st},
		metrics:  &fanoutMetrics{publishes: map[string]int{}, messages: map[string]int{}},
		observed: &committedLog{},
	}
	f.svc = chat.NewService(chat.Config{FanoutDirectMax: directMax, MaxGroupMembers: 1000},
		chat.Deps{Store: f.store, Bus: f.bus, Hasher: security.NewBcrypt(4), Metrics: f.metrics, Observer: f.observed})
	t.Cleanup(f.svc.Close)
	for i := 0; i < n; i++ {
		u, err := f.svc.Register(ctx, fmt.Sprintf("user%03d", i), "password1", "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.Login(ctx, u.Username, "password1", "test", "")
		if err != nil {
			t.Fatal(err)
		}
		f.users = append(f.users, res.Session)
	}
	return f
}

// group creates a group of users[0] (admin) and users[1:n].
func (f *fanoutFixture) group(t *testing.T, n int) chat.Conversation {
	t.Helper()
	ids := make([]string, 0, n-1)
	for _, u := range f.users[1:n] {
		ids = append(ids, u.UserID)
	}
	conv, err := f.svc.CreateGroup(context.Background(), f.users[0], "g", ids)
	if err != nil {
		t.Fatal(err)
	}
	return conv
}

func (f *fanoutFixture) send(t *testing.T, from chat.Session, conv, text string) chat.Message {
	t.Helper()
	m, err := f.svc.Send(context.Background(), from, chat.SendRequest{ClientID: text, ConversationID: conv, Content: text})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ofKind(ps []published, kind chat.EventKind) []published {
	var out []published
	for _, p := range ps {
		if p.ev.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

func memberIDs(ss []chat.Session) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.UserID
	}
	return ids
}

// A conversation up to the threshold gets one publish per member on user
// topics; a larger one exactly one publish per message on the channel topic,
// carrying the audience of the members at commit, and its recipients (for
// push) stay every member.
func TestMessagesRouteByThreshold(t *testing.T) {
	f := newFanoutFixture(t, 3, 5)
	small, large := f.group(t, 3), f.group(t, 5)
	f.bus.take()

	f.send(t, f.users[1], small.ID, "s1")
	ps := ofKind(f.bus.take(), chat.EventMessage)
	var topics []string
	for _, p := range ps {
		topics = append(topics, p.topic)
	}
	want := []string{chat.UserTopic(f.users[0].UserID), chat.UserTopic(f.users[1].UserID), chat.UserTopic(f.users[2].UserID)}
	if !slices.Equal(sortedStrings(topics), sortedStrings(want)) {
		t.Fatalf("small group published on %v, want %v", topics, want)
	}

	const n = 7
	for i := 0; i < n; i++ {
		f.send(t, f.users[1+i%4], large.ID, fmt.Sprintf("l%d", i))
	}
	ps = ofKind(f.bus.take(), chat.EventMessage)
	if len(ps) != n {
		t.Fatalf("%d messages to a 5-member channel cost %d publishes, want %d", n, len(ps), n)
	}
	wantAud := chat.AudienceOf(memberIDs(f.users[:5]))
	for i, p := range ps {
		if p.topic != chat.ChannelTopic {
			t.Fatalf("channel message published on %q", p.topic)
		}
		if p.ev.Audience == nil || *p.ev.Audience != wantAud {
			t.Fatalf("message %d audience %v, want %v", i, p.ev.Audience, wantAud)
		}
		if p.ev.Message.Seq != int64(i+1) || p.ev.ExceptDevice != p.ev.Message.SenderDeviceID {
			t.Fatalf("message %d: seq %d, except %q", i, p.ev.Message.Seq, p.ev.ExceptDevice)
		}
	}
	f.metrics.mu.Lock()
	if got := f.metrics.messages[chat.RouteChannel]; got != n {
		t.Errorf("channel messages counted %d, want %d", got, n)
	}
	if got := f.metrics.messages[chat.RouteDirect]; got != 1 {
		t.Errorf("direct messages counted %d, want 1", got)
	}
	f.metrics.mu.Unlock()

	// Push still learns every recipient of a channel message.
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.observed.mu.Lock()
		got := len(f.observed.results)
		var last chat.AppendResult
		if got > 0 {
			last = f.observed.results[got-1]
		}
		f.observed.mu.Unlock()
		if got == n+1 {
			if !slices.Equal(sortedStrings(last.Recipients), sortedStrings(memberIDs(f.users[:5]))) {
				t.Fatalf("channel message recipients %v", last.Recipients)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer saw %d results, want %d", got, n+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// A receipt in a channel reaches the member's own other devices only; in a
// group, every member.
func TestChannelReceiptsOnlyToOwnDevices(t *testing.T) {
	f := newFanoutFixture(t, 3, 5)
	small, large := f.group(t, 3), f.group(t, 5)
	f.send(t, f.users[0], small.ID, "s")
	f.send(t, f.users[0], large.ID, "l")
	f.bus.take()
	ctx := context.Background()

	reader := f.users[2]
	if err := f.svc.MarkStatus(ctx, reader, large.ID, 1, chat.StatusRead); err != nil {
		t.Fatal(err)
	}
	ps := ofKind(f.bus.waitKind(t, chat.EventStatus, 1), chat.EventStatus)
	if len(ps) != 1 || ps[0].topic != chat.UserTopic(reader.UserID) || ps[0].ev.ExceptDevice != reader.DeviceID {
		t.Fatalf("a channel receipt was published as %+v, want once on the reader's own topic", ps)
	}
	if s := ps[0].ev.Status; s.UserID != reader.UserID || s.Seq != 1 || s.Status != chat.StatusRead {
		t.Fatalf("status %+v", s)
	}

	if err := f.svc.MarkStatus(ctx, reader, small.ID, 1, chat.StatusRead); err != nil {
		t.Fatal(err)
	}
	ps = ofKind(f.bus.waitKind(t, chat.EventStatus, 3), chat.EventStatus)
	if len(ps) != 3 {
		t.Fatalf("a group receipt was published %d times, want 3 (every member)", len(ps))
	}
}

// Typing in a channel is one publish on the channel topic, and once the node
// knows the conversation is a channel it does not load its members for it.
func TestChannelTypingOnePublish(t *testing.T) {
	f := newFanoutFixture(t, 3, 5)
	large := f.group(t, 5)
	ctx := context.Background()
	f.bus.take()
	if err := f.svc.Typing(ctx, f.users[3], large.ID, chat.TypingStarted); err != nil {
		t.Fatal(err)
	}
	loads := f.store.n.Load()
	if err := f.svc.Typing(ctx, f.users[3], large.ID, chat.TypingStopped); err != nil {
		t.Fatal(err)
	}
	if got := f.store.n.Load() - loads; got != 0 {
		t.Errorf("typing in a known channel loaded the conversation %d times", got)
	}
	ps := f.bus.take()
	if len(ps) != 2 {
		t.Fatalf("two typing frames cost %d publishes, want 2", len(ps))
	}
	for _, p := range ps {
		if p.topic != chat.ChannelTopic || p.ev.Kind != chat.EventTyping || p.ev.ExceptDevice != f.users[3].DeviceID {
			t.Fatalf("typing published as %+v", p)
		}
	}
	// Still only for members.
	outsider := newSessionOutside(t, f)
	if err := f.svc.Typing(ctx, outsider, large.ID, chat.TypingStarted); err == nil {
		t.Fatal("a non-member's typing was accepted")
	}
}

func newSessionOutside(t *testing.T, f *fanoutFixture) chat.Session {
	t.Helper()
	ctx := context.Background()
	u, err := f.svc.Register(ctx, "outsider", "password1", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Login(ctx, u.Username, "password1", "test", "")
	if err != nil {
		t.Fatal(err)
	}
	return res.Session
}

// Changes of a channel's membership are one MembersChange on the channel
// topic, carrying the users concerned and the audience after the change; a
// group growing past the threshold switches over.
func TestChannelMembershipChanges(t *testing.T) {
	f := newFanoutFixture(t, 3, 6)
	ctx := context.Background()
	conv := f.group(t, 3) // a group: conversation_updated to each member
	if ps := ofKind(f.bus.take(), chat.EventConversation); len(ps) != 3 {
		t.Fatalf("creating a 3-member group published %d conversation events, want 3", len(ps))
	}

	check := func(what, change string, users []string, members []chat.Session, lastSeq int64) {
		t.Helper()
		ps := f.bus.take()
		if len(ps) != 1 || ps[0].topic != chat.ChannelTopic || ps[0].ev.Kind != chat.EventMembers {
			t.Fatalf("%s published %+v, want one MembersChange on the channel topic", what, ps)
		}
		ev := ps[0].ev
		if mc := ev.Members; mc.ConversationID != conv.ID || mc.Change != change || !slices.Equal(mc.Users, users) || mc.LastSeq != lastSeq {
			t.Fatalf("%s: change %+v", what, mc)
		}
		if want := chat.AudienceOf(memberIDs(members)); ev.Audience == nil || *ev.Audience != want {
			t.Fatalf("%s: audience %v, want %v", what, ev.Audience, want)
		}
	}
	if _, err := f.svc.AddMembers(ctx, f.users[0], conv.ID, []string{f.users[3].UserID, f.users[4].UserID}); err != nil {
		t.Fatal(err)
	}
	check("adding two", chat.ChangeMemberAdded, []string{f.users[3].UserID, f.users[4].UserID}, f.users[:5], 0)
	f.send(t, f.users[0], conv.ID, "hello")
	f.bus.take()
	if err := f.svc.RemoveMember(ctx, f.users[0], conv.ID, f.users[2].UserID); err != nil {
		t.Fatal(err)
	}
	check("removing one", chat.ChangeMemberRemoved, []string{f.users[2].UserID}, []chat.Session{f.users[0], f.users[1], f.users[3], f.users[4]}, 1)
	if _, err := f.svc.RenameGroup(ctx, f.users[0], conv.ID, "renamed"); err != nil {
		t.Fatal(err)
	}
	check("renaming", chat.ChangeRenamed, nil, []chat.Session{f.users[0], f.users[1], f.users[3], f.users[4]}, 1)

	// Back to the threshold: direct again, the removed member told too.
	if err := f.svc.RemoveMember(ctx, f.users[0], conv.ID, f.users[4].UserID); err != nil {
		t.Fatal(err)
	}
	ps := ofKind(f.bus.take(), chat.EventConversation)
	if len(ps) != 4 {
		t.Fatalf("shrinking to 3 members published %d conversation events, want 4 (3 members and the removed one)", len(ps))
	}
}
