package storetest

import (
	"slices"
	"sync"

	"github.com/parley-chat/parley/internal/chat"
)

var conversationTests = []test{
	{"DirectCreateThenReuse", testDirectCreateThenReuse},
	{"DirectPairsAreDistinct", testDirectPairsAreDistinct},
	{"DirectConcurrent", testDirectConcurrent},
	{"DirectInvalid", testDirectInvalid},
	{"UnknownUserIsNotFound", testUnknownUserIsNotFound},
	{"GroupRoundTrip", testGroupRoundTrip},
	{"ConversationNotFound", testConversationNotFound},
	{"ConversationLastMessage", testConversationLastMessage},
	{"ConversationsOrder", testConversationsOrder},
	{"ConversationsUnread", testConversationsUnread},
	{"ConversationsEmpty", testConversationsEmpty},
	{"Cursors", testCursors},
	{"Rename", testRename},
}

func testDirectCreateThenReuse(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	proposal := f.directProposal(a, b)
	c, created, err := f.s.DirectConversation(f.ctx, proposal)
	noErr(t, "DirectConversation", err)
	if !created {
		t.Errorf("first DirectConversation: created = false")
	}
	if c.ID != proposal.ID || c.Type != chat.TypeDirect || c.CreatedAt != proposal.CreatedAt ||
		c.UpdatedAt != proposal.UpdatedAt || c.LastSeq != 0 || c.LastMessage != nil {
		t.Errorf("created conversation = %+v, from %+v", c, proposal)
	}
	if got, want := memberIDs(c), sorted(userIDs(a, b)); !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}
	for _, m := range c.Members {
		if m.Role != chat.RoleMember || m.JoinedAt != proposal.CreatedAt {
			t.Errorf("member %+v: want role member joined at %d", m, proposal.CreatedAt)
		}
	}

	// The same pair in the other order, with another proposed id.
	again, created, err := f.s.DirectConversation(f.ctx, f.directProposal(b, a))
	noErr(t, "DirectConversation again", err)
	if created {
		t.Errorf("second DirectConversation: created = true")
	}
	if again.ID != c.ID {
		t.Errorf("second DirectConversation = %s, want the first one %s", again.ID, c.ID)
	}
	if got, want := memberIDs(again), memberIDs(c); !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}

	// It is stored and listed for both.
	stored := f.conversation(c.ID)
	if stored.Type != chat.TypeDirect || !slices.Equal(memberIDs(stored), memberIDs(c)) {
		t.Errorf("Conversation = %+v", stored)
	}
	for _, u := range []chat.User{a, b} {
		if got := convIDs(f.conversations(u)); !slices.Equal(got, []string{c.ID}) {
			t.Errorf("Conversations(%s) = %v, want [%s]", u.Username, got, c.ID)
		}
	}
}

func testDirectPairsAreDistinct(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	ab, bc, ca := f.direct(a, b), f.direct(b, c), f.direct(c, a)
	if ab.ID == bc.ID || bc.ID == ca.ID || ab.ID == ca.ID {
		t.Fatalf("distinct pairs share a conversation: %s %s %s", ab.ID, bc.ID, ca.ID)
	}
	if got := f.direct(a, c); got.ID != ca.ID {
		t.Errorf("direct(a, c) = %s, want %s", got.ID, ca.ID)
	}
	// A group of the same two users is another conversation.
	g := f.group("pair", a, b)
	if g.ID == ab.ID {
		t.Errorf("a group reused the direct conversation")
	}
	if got := f.direct(b, a); got.ID != ab.ID {
		t.Errorf("direct(b, a) after a group = %s, want %s", got.ID, ab.ID)
	}
}

func testDirectConcurrent(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	const n = 20
	proposals := make([]chat.Conversation, n)
	for i := range proposals {
		if i%2 == 0 {
			proposals[i] = f.directProposal(a, b)
		} else {
			proposals[i] = f.directProposal(b, a)
		}
	}
	type result struct {
		id      string
		created bool
		err     error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c, created, err := f.s.DirectConversation(f.ctx, proposals[i])
			results[i] = result{c.ID, created, err}
		})
	}
	close(start)
	wg.Wait()

	createdCount := 0
	for i, r := range results {
		noErr(t, "concurrent DirectConversation", r.err)
		if r.created {
			createdCount++
		}
		if r.id != results[0].id {
			t.Errorf("call %d got conversation %s, call 0 got %s", i, r.id, results[0].id)
		}
	}
	if createdCount != 1 {
		t.Errorf("%d calls created the conversation, want exactly 1", createdCount)
	}
	if cs := f.conversations(a); len(cs) != 1 || cs[0].ID != results[0].id {
		t.Errorf("Conversations(a) = %v, want only %s", convIDs(cs), results[0].id)
	}
}

func testDirectInvalid(f *fixture) {
	// Pinned: a direct conversation needs exactly two distinct members.
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	self := f.directProposal(a, a)
	_, _, err := f.s.DirectConversation(f.ctx, self)
	wantErr(t, "DirectConversation with oneself", err, chat.ErrInvalid)
	three := f.directProposal(a, b)
	three.Members = append(three.Members, chat.Member{UserID: c.ID, Role: chat.RoleMember})
	_, _, err = f.s.DirectConversation(f.ctx, three)
	wantErr(t, "DirectConversation with three members", err, chat.ErrInvalid)
}

func testUnknownUserIsNotFound(f *fixture) {
	// Pinned: members must be existing users; nothing is stored otherwise.
	t := f.t
	a := f.user("alice")
	ghost := chat.User{ID: "no-such-user", Username: "ghost"}
	_, _, err := f.s.DirectConversation(f.ctx, f.directProposal(a, ghost))
	wantErr(t, "DirectConversation with an unknown user", err, chat.ErrNotFound)

	now := f.tick()
	g := chat.Conversation{ID: f.id(), Type: chat.TypeGroup, Name: "g", CreatedAt: now, UpdatedAt: now, Members: []chat.Member{
		{UserID: a.ID, Role: chat.RoleAdmin, JoinedAt: now},
		{UserID: ghost.ID, Role: chat.RoleMember, JoinedAt: now},
	}}
	wantErr(t, "CreateGroup with an unknown user", f.s.CreateGroup(f.ctx, g), chat.ErrNotFound)
	_, err = f.s.Conversation(f.ctx, g.ID)
	wantErr(t, "Conversation of a refused group", err, chat.ErrNotFound)
	if cs := f.conversations(a); len(cs) != 0 {
		t.Errorf("refused conversations are listed: %v", convIDs(cs))
	}

	kept := f.group("kept", a)
	err = f.s.AddMembers(f.ctx, kept.ID, []chat.Member{{UserID: ghost.ID, Role: chat.RoleMember}}, 10, f.tick())
	wantErr(t, "AddMembers with an unknown user", err, chat.ErrNotFound)
	if got := memberIDs(f.conversation(kept.ID)); !slices.Equal(got, []string{a.ID}) {
		t.Errorf("members after a refused AddMembers = %v", got)
	}
}

func testGroupRoundTrip(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("Book club 📚", a, b, c)
	got := f.conversation(g.ID)
	if got.ID != g.ID || got.Type != chat.TypeGroup || got.Name != g.Name || got.LastSeq != 0 ||
		got.LastMessage != nil || got.CreatedAt != g.CreatedAt || got.UpdatedAt != g.UpdatedAt {
		t.Errorf("Conversation = %+v, want %+v", got, g)
	}
	if len(got.Members) != len(g.Members) {
		t.Fatalf("members = %+v, want %+v", got.Members, g.Members)
	}
	for _, want := range g.Members {
		m, ok := got.Member(want.UserID)
		if !ok || m != want {
			t.Errorf("member %s = %+v, want %+v", want.UserID, m, want)
		}
	}
	for _, u := range []chat.User{a, b, c} {
		findConv(t, f.conversations(u), g.ID)
	}
}

func testConversationNotFound(f *fixture) {
	_, err := f.s.Conversation(f.ctx, "no-such-conversation")
	wantErr(f.t, "Conversation(unknown)", err, chat.ErrNotFound)
}

func testConversationLastMessage(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	f.send(g.ID, a, "one", "two")
	last := f.send(g.ID, b, "three")[0]
	got := f.conversation(g.ID)
	if got.LastSeq != 3 {
		t.Errorf("LastSeq = %d, want 3", got.LastSeq)
	}
	if got.LastMessage == nil || *got.LastMessage != last {
		t.Errorf("LastMessage = %+v, want %+v", got.LastMessage, last)
	}
	if got.UpdatedAt != last.Timestamp {
		t.Errorf("UpdatedAt = %d, want the last message's timestamp %d", got.UpdatedAt, last.Timestamp)
	}
}

func testConversationsOrder(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g1 := f.group("first", a, b)
	g2 := f.group("second", a, b, c)
	d := f.direct(a, c)
	f.group("not alice's", b, c)

	want := func(step string, ids ...string) []chat.Conversation {
		t.Helper()
		cs := f.conversations(a)
		if got := convIDs(cs); !slices.Equal(got, ids) {
			t.Fatalf("%s: Conversations = %v, want %v", step, got, ids)
		}
		for i := 1; i < len(cs); i++ {
			if cs[i-1].UpdatedAt < cs[i].UpdatedAt {
				t.Errorf("%s: not ordered by updated_at desc: %d before %d", step, cs[i-1].UpdatedAt, cs[i].UpdatedAt)
			}
		}
		return cs
	}
	want("created", d.ID, g2.ID, g1.ID)

	m := f.send(g1.ID, b, "hello")[0]
	cs := want("after a message in the oldest", g1.ID, d.ID, g2.ID)
	if cs[0].LastSeq != 1 || cs[0].LastMessage == nil || *cs[0].LastMessage != m {
		t.Errorf("listed LastSeq %d, LastMessage %+v; want 1, %+v", cs[0].LastSeq, cs[0].LastMessage, m)
	}
	if cs[1].LastMessage != nil || cs[2].LastMessage != nil {
		t.Errorf("conversations without messages list a last message")
	}
	if got, want := memberIDs(cs[2]), sorted(userIDs(a, b, c)); !slices.Equal(got, want) {
		t.Errorf("listed members of g2 = %v, want %v", got, want)
	}
	if got, want := memberIDs(cs[1]), sorted(userIDs(a, c)); !slices.Equal(got, want) {
		t.Errorf("listed members of the direct conversation = %v, want %v", got, want)
	}

	noErr(t, "RenameConversation", f.s.RenameConversation(f.ctx, g2.ID, "renamed", f.tick()))
	want("after a rename", g2.ID, g1.ID, d.ID)

	noErr(t, "AddMembers", f.s.AddMembers(f.ctx, g1.ID, []chat.Member{{UserID: c.ID, Role: chat.RoleMember}}, 10, f.tick()))
	want("after AddMembers", g1.ID, g2.ID, d.ID)

	noErr(t, "RemoveMember", f.s.RemoveMember(f.ctx, g2.ID, b.ID, f.tick()))
	want("after RemoveMember", g2.ID, g1.ID, d.ID)

	f.send(d.ID, c, "hi")
	want("after a message in the last one", d.ID, g2.ID, g1.ID)
}

func testConversationsUnread(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("g", a, b)
	other := f.group("other", b, a)

	check := func(step string, u chat.User, want int64) {
		t.Helper()
		listed := findConv(t, f.conversations(u), g.ID)
		if listed.UnreadCount != want {
			t.Errorf("%s: listed UnreadCount for %s = %d, want %d", step, u.Username, listed.UnreadCount, want)
		}
		n, err := f.s.UnreadCount(f.ctx, g.ID, u.ID)
		noErr(t, "UnreadCount", err)
		if n != want {
			t.Errorf("%s: UnreadCount(%s) = %d, want %d", step, u.Username, n, want)
		}
	}
	check("empty", a, 0)

	f.send(g.ID, b, "b1", "b2", "b3") // seq 1-3
	f.send(g.ID, a, "a4", "a5")       // seq 4-5
	f.send(g.ID, b, "b6")             // seq 6
	f.send(other.ID, b, "elsewhere")
	check("nothing read", a, 4) // 6 - 0 - a's own 2
	check("nothing read", b, 2) // 6 - 0 - b's own 4

	f.markRead(g.ID, a, 3)
	check("a read 3", a, 1) // 6 - 3 - own 4, 5
	f.markRead(g.ID, a, 5)
	check("a read 5", a, 1) // 6 - 5 - none of a's own after 5
	f.markRead(g.ID, a, 6)
	check("a read all", a, 0)
	check("b unchanged", b, 2)

	// A non-member has nothing unread.
	n, err := f.s.UnreadCount(f.ctx, g.ID, c.ID)
	noErr(t, "UnreadCount(non-member)", err)
	if n != 0 {
		t.Errorf("UnreadCount(non-member) = %d, want 0", n)
	}
}

// markRead raises u's read watermark of a conversation to seq.
func (f *fixture) markRead(convID string, u chat.User, seq int64) {
	f.t.Helper()
	_, err := f.s.UpdateWatermarks(f.ctx, []chat.Watermark{{ConversationID: convID, UserID: u.ID, ReadSeq: seq}})
	noErr(f.t, "UpdateWatermarks", err)
}

func testConversationsEmpty(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	f.direct(b, f.user("carol"))
	if cs := f.conversations(a); len(cs) != 0 {
		t.Errorf("Conversations of a user without any = %v", convIDs(cs))
	}
	if cs := f.conversations(chat.User{ID: "no-such-user"}); len(cs) != 0 {
		t.Errorf("Conversations of an unknown user = %v", convIDs(cs))
	}
	cur, err := f.s.Cursors(f.ctx, a.ID)
	noErr(t, "Cursors", err)
	if len(cur) != 0 {
		t.Errorf("Cursors of a user without conversations = %v", cur)
	}
}

func testCursors(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("g", a, b)
	d := f.direct(a, c)
	empty := f.group("quiet", c, a)
	f.group("not alice's", b, c)
	f.sendN(g.ID, b, 4)
	f.sendN(d.ID, a, 2)

	cur, err := f.s.Cursors(f.ctx, a.ID)
	noErr(t, "Cursors", err)
	got := map[string]int64{}
	for _, c := range cur {
		got[c.ConversationID] = c.LastSeq
	}
	want := map[string]int64{g.ID: 4, d.ID: 2, empty.ID: 0}
	if len(cur) != len(want) || len(got) != len(want) {
		t.Fatalf("Cursors = %v, want %v", cur, want)
	}
	for id, seq := range want {
		if s, ok := got[id]; !ok || s != seq {
			t.Errorf("cursor of %s = %d (listed %v), want %d", id, s, ok, seq)
		}
	}
}

func testRename(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("old name", a, b)
	at := f.tick()
	noErr(t, "RenameConversation", f.s.RenameConversation(f.ctx, g.ID, "new name ✓", at))
	got := f.conversation(g.ID)
	if got.Name != "new name ✓" || got.UpdatedAt != at {
		t.Errorf("after rename: name %q updated_at %d; want %q %d", got.Name, got.UpdatedAt, "new name ✓", at)
	}
	if got.CreatedAt != g.CreatedAt || !slices.Equal(memberIDs(got), memberIDs(g)) {
		t.Errorf("rename changed more than the name: %+v", got)
	}
	wantErr(t, "RenameConversation(unknown)",
		f.s.RenameConversation(f.ctx, "no-such-conversation", "x", f.tick()), chat.ErrNotFound)
}
