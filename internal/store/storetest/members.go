package storetest

import (
	"maps"
	"slices"

	"github.com/parley-chat/parley/internal/chat"
)

var memberTests = []test{
	{"Member", testMember},
	{"MemberErrors", testMemberErrors},
	{"AddMembersSkipsExisting", testAddMembersSkipsExisting},
	{"AddMembersLimit", testAddMembersLimit},
	{"AddMembersUnknownConversation", testAddMembersUnknownConversation},
	{"RemoveMember", testRemoveMember},
	{"RemoveMemberErrors", testRemoveMemberErrors},
	{"RemoveLastAdminPromotes", testRemoveLastAdminPromotes},
	{"RemoveAdminKeepsOtherAdmins", testRemoveAdminKeepsOtherAdmins},
	{"RemoveEveryone", testRemoveEveryone},
}

func testMember(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	for _, want := range g.Members {
		got, err := f.s.Member(f.ctx, g.ID, want.UserID)
		noErr(t, "Member", err)
		if got != want {
			t.Errorf("Member = %+v, want %+v", got, want)
		}
	}
	f.sendN(g.ID, a, 3)
	_, err := f.s.UpdateWatermarks(f.ctx, []chat.Watermark{{ConversationID: g.ID, UserID: b.ID, DeliveredSeq: 3, ReadSeq: 2}})
	noErr(t, "UpdateWatermarks", err)
	if m := f.member(g.ID, b); m.DeliveredSeq != 3 || m.ReadSeq != 2 {
		t.Errorf("Member watermarks = %d/%d, want 3/2", m.DeliveredSeq, m.ReadSeq)
	}
}

func testMemberErrors(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("g", a, b)
	_, err := f.s.Member(f.ctx, "no-such-conversation", a.ID)
	wantErr(t, "Member(unknown conversation)", err, chat.ErrNotFound)
	_, err = f.s.Member(f.ctx, g.ID, c.ID)
	wantErr(t, "Member(non-member)", err, chat.ErrForbidden)
	_, err = f.s.Member(f.ctx, g.ID, "no-such-user")
	wantErr(t, "Member(unknown user)", err, chat.ErrForbidden)
}

func testAddMembersSkipsExisting(f *fixture) {
	t := f.t
	a, b, c, d := f.user("alice"), f.user("bob"), f.user("carol"), f.user("dave")
	g := f.group("g", a, b)
	f.sendN(g.ID, a, 2)
	f.markRead(g.ID, b, 1)
	before := f.member(g.ID, b)

	at := f.tick()
	add := []chat.Member{
		{UserID: b.ID, Role: chat.RoleAdmin, JoinedAt: at}, // existing: skipped, stays member
		{UserID: c.ID, Role: chat.RoleMember, JoinedAt: at},
		{UserID: c.ID, Role: chat.RoleMember, JoinedAt: at}, // twice in one call
		{UserID: d.ID, Role: chat.RoleMember, JoinedAt: at},
	}
	noErr(t, "AddMembers", f.s.AddMembers(f.ctx, g.ID, add, 4, at))

	got := f.conversation(g.ID)
	if ids, want := memberIDs(got), sorted(userIDs(a, b, c, d)); !slices.Equal(ids, want) {
		t.Fatalf("members = %v, want %v", ids, want)
	}
	if got.UpdatedAt != at {
		t.Errorf("UpdatedAt = %d, want %d", got.UpdatedAt, at)
	}
	if m := f.member(g.ID, b); m != before {
		t.Errorf("existing member changed: %+v, was %+v", m, before)
	}
	if m := f.member(g.ID, c); m.Role != chat.RoleMember || m.JoinedAt != at {
		t.Errorf("new member = %+v, want role member joined at %d", m, at)
	}
	for _, u := range []chat.User{c, d} {
		findConv(t, f.conversations(u), g.ID)
	}
	// Adding only existing members is fine even at the limit.
	noErr(t, "AddMembers(existing only)", f.s.AddMembers(f.ctx, g.ID, add[:1], 4, f.tick()))
}

func testAddMembersLimit(f *fixture) {
	t := f.t
	us := f.users("alice", "bob", "carol", "dave", "erin")
	a, b, c, d, e := us[0], us[1], us[2], us[3], us[4]
	g := f.group("g", a, b, c)
	before := f.conversation(g.ID)

	mem := func(us ...chat.User) []chat.Member {
		out := make([]chat.Member, len(us))
		for i, u := range us {
			out[i] = chat.Member{UserID: u.ID, Role: chat.RoleMember, JoinedAt: f.tick()}
		}
		return out
	}
	// 3 + 2 > 4: refused as a whole.
	wantErr(t, "AddMembers over the limit", f.s.AddMembers(f.ctx, g.ID, mem(d, e), 4, f.tick()), chat.ErrInvalid)
	after := f.conversation(g.ID)
	if !slices.Equal(memberIDs(after), memberIDs(before)) || after.UpdatedAt != before.UpdatedAt {
		t.Errorf("a refused AddMembers changed the group: %+v", after)
	}
	_, err := f.s.Member(f.ctx, g.ID, d.ID)
	wantErr(t, "Member of a refused member", err, chat.ErrForbidden)

	// Existing members do not count twice: 3 + 1 new = 4.
	noErr(t, "AddMembers up to the limit", f.s.AddMembers(f.ctx, g.ID, mem(b, c, d), 4, f.tick()))
	if n := len(f.conversation(g.ID).Members); n != 4 {
		t.Errorf("%d members, want 4", n)
	}
	wantErr(t, "AddMembers one over the limit", f.s.AddMembers(f.ctx, g.ID, mem(e), 4, f.tick()), chat.ErrInvalid)
}

func testAddMembersUnknownConversation(f *fixture) {
	a := f.user("alice")
	err := f.s.AddMembers(f.ctx, "no-such-conversation", []chat.Member{{UserID: a.ID, Role: chat.RoleMember}}, 10, f.tick())
	wantErr(f.t, "AddMembers(unknown conversation)", err, chat.ErrNotFound)
}

func testRemoveMember(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("g", a, b, c)
	f.sendN(g.ID, c, 2)
	at := f.tick()
	noErr(t, "RemoveMember", f.s.RemoveMember(f.ctx, g.ID, c.ID, at))

	got := f.conversation(g.ID)
	if ids, want := memberIDs(got), sorted(userIDs(a, b)); !slices.Equal(ids, want) {
		t.Errorf("members = %v, want %v", ids, want)
	}
	if got.UpdatedAt != at {
		t.Errorf("UpdatedAt = %d, want %d", got.UpdatedAt, at)
	}
	if m := f.member(g.ID, a); m.Role != chat.RoleAdmin {
		t.Errorf("admin lost its role: %+v", m)
	}
	_, err := f.s.Member(f.ctx, g.ID, c.ID)
	wantErr(t, "Member of a removed member", err, chat.ErrForbidden)
	if cs := f.conversations(c); len(cs) != 0 {
		t.Errorf("Conversations of a removed member = %v", convIDs(cs))
	}
	cur, err := f.s.Cursors(f.ctx, c.ID)
	noErr(t, "Cursors", err)
	if len(cur) != 0 {
		t.Errorf("Cursors of a removed member = %v", cur)
	}
	if n, err := f.s.UnreadCount(f.ctx, g.ID, c.ID); err != nil || n != 0 {
		t.Errorf("UnreadCount of a removed member = %d, %v; want 0", n, err)
	}
	res, err := f.s.AppendBatch(f.ctx, []chat.Message{f.msg(g.ID, c, "still here?")})
	noErr(t, "AppendBatch", err)
	wantErr(t, "a removed member posts", res[0].Err, chat.ErrForbidden)
}

func testRemoveMemberErrors(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("g", a, b)
	wantErr(t, "RemoveMember(non-member)", f.s.RemoveMember(f.ctx, g.ID, c.ID, f.tick()), chat.ErrNotFound)
	wantErr(t, "RemoveMember(unknown conversation)", f.s.RemoveMember(f.ctx, "no-such-conversation", a.ID, f.tick()), chat.ErrNotFound)
	noErr(t, "RemoveMember", f.s.RemoveMember(f.ctx, g.ID, b.ID, f.tick()))
	wantErr(t, "RemoveMember twice", f.s.RemoveMember(f.ctx, g.ID, b.ID, f.tick()), chat.ErrNotFound)
}

func testRemoveLastAdminPromotes(f *fixture) {
	t := f.t
	a, b, c, d := f.user("alice"), f.user("bob"), f.user("carol"), f.user("dave")
	// Seniority differs from both the user-id order and the insertion order:
	// carol joined first, then dave, then bob.
	now := f.tick()
	g := chat.Conversation{ID: f.id(), Type: chat.TypeGroup, Name: "g", CreatedAt: now, UpdatedAt: now, Members: []chat.Member{
		{UserID: a.ID, Role: chat.RoleAdmin, JoinedAt: now},
		{UserID: b.ID, Role: chat.RoleMember, JoinedAt: now + 300},
		{UserID: c.ID, Role: chat.RoleMember, JoinedAt: now + 100},
		{UserID: d.ID, Role: chat.RoleMember, JoinedAt: now + 200},
	}}
	noErr(t, "CreateGroup", f.s.CreateGroup(f.ctx, g))

	noErr(t, "RemoveMember(last admin)", f.s.RemoveMember(f.ctx, g.ID, a.ID, f.tick()))
	roles := func() map[string]string {
		out := map[string]string{}
		for _, m := range f.conversation(g.ID).Members {
			out[m.UserID] = m.Role
		}
		return out
	}
	want := map[string]string{b.ID: chat.RoleMember, c.ID: chat.RoleAdmin, d.ID: chat.RoleMember}
	if got := roles(); !maps.Equal(got, want) {
		t.Errorf("roles after the last admin left = %v, want carol (%s) admin: %v", got, c.ID, want)
	}

	// And again: the promoted admin leaves, dave is next.
	noErr(t, "RemoveMember(promoted admin)", f.s.RemoveMember(f.ctx, g.ID, c.ID, f.tick()))
	want = map[string]string{b.ID: chat.RoleMember, d.ID: chat.RoleAdmin}
	if got := roles(); !maps.Equal(got, want) {
		t.Errorf("roles after the second admin left = %v, want %v", got, want)
	}

	// A plain member leaving promotes nobody.
	noErr(t, "RemoveMember(member)", f.s.RemoveMember(f.ctx, g.ID, b.ID, f.tick()))
	want = map[string]string{d.ID: chat.RoleAdmin}
	if got := roles(); !maps.Equal(got, want) {
		t.Errorf("roles after a member left = %v, want %v", got, want)
	}
}

func testRemoveAdminKeepsOtherAdmins(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	now := f.tick()
	g := chat.Conversation{ID: f.id(), Type: chat.TypeGroup, Name: "g", CreatedAt: now, UpdatedAt: now, Members: []chat.Member{
		{UserID: a.ID, Role: chat.RoleAdmin, JoinedAt: now},
		{UserID: b.ID, Role: chat.RoleMember, JoinedAt: now + 1},
		{UserID: c.ID, Role: chat.RoleAdmin, JoinedAt: now + 2},
	}}
	noErr(t, "CreateGroup", f.s.CreateGroup(f.ctx, g))
	noErr(t, "RemoveMember(one of two admins)", f.s.RemoveMember(f.ctx, g.ID, a.ID, f.tick()))
	if m := f.member(g.ID, b); m.Role != chat.RoleMember {
		t.Errorf("bob was promoted although carol is still admin: %+v", m)
	}
	if m := f.member(g.ID, c); m.Role != chat.RoleAdmin {
		t.Errorf("carol lost admin: %+v", m)
	}
}

func testRemoveEveryone(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	noErr(t, "RemoveMember(admin)", f.s.RemoveMember(f.ctx, g.ID, a.ID, f.tick()))
	if m := f.member(g.ID, b); m.Role != chat.RoleAdmin {
		t.Errorf("the only remaining member was not promoted: %+v", m)
	}
	noErr(t, "RemoveMember(last member)", f.s.RemoveMember(f.ctx, g.ID, b.ID, f.tick()))
	got := f.conversation(g.ID)
	if len(got.Members) != 0 {
		t.Errorf("members of an abandoned group = %+v", got.Members)
	}
	res, err := f.s.AppendBatch(f.ctx, []chat.Message{f.msg(g.ID, a, "anyone?")})
	noErr(t, "AppendBatch", err)
	wantErr(t, "posting to an abandoned group", res[0].Err, chat.ErrForbidden)
}
