// Package storetest is the conformance suite of chat.Store. Every Store
// implementation (the embedded SQLite one, PostgreSQL) runs it from its own
// tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) chat.Store { return openTempStore(t) })
//	}
//
// The suite exercises every method and every promise of the chat.Store doc
// comments, checking errors with errors.Is against chat's sentinels. Where
// the doc comments are silent it pins one behaviour so that all backends
// agree; those cases say "pinned" in their names or comments.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// test is one subtest of the suite.
type test struct {
	name string
	run  func(f *fixture)
}

// Run runs the suite. open is called once per subtest, from parallel
// subtests, and must return a new, empty store independent of the others.
// The suite closes each store when its subtest ends and fails the subtest if
// Close fails; cleanup that open registers with t.Cleanup runs after that.
func Run(t *testing.T, open func(t *testing.T) chat.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Accounts", accountTests},
		{"Conversations", conversationTests},
		{"Members", memberTests},
		{"Append", appendTests},
		{"History", historyTests},
		{"Receipts", receiptTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					s := open(t)
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tc.run(newFixture(t, s))
				})
			}
		})
	}
}

// runAbility runs the suite of an optional ability of a Store: each test in
// parallel on a fresh store from open, which must have the ability
// (implements says whether it does; what names it).
func runAbility(t *testing.T, open func(t *testing.T) chat.Store, tests []test, what string, implements func(chat.Store) bool) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if !implements(s) {
				t.Fatalf("%T does not implement %s", s, what)
			}
			tc.run(newFixture(t, s))
		})
	}
}

// fixture is one subtest's store with helpers that make test data. Its clock
// is fake: every tick advances it by one second, so timestamps are distinct
// and ordered.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	s     chat.Store
	ids   *chat.IDGen
	clock atomic.Int64
	seq   atomic.Int64
}

func newFixture(t *testing.T, s chat.Store) *fixture {
	f := &fixture{t: t, ctx: t.Context(), s: s, ids: &chat.IDGen{}}
	f.clock.Store(1_700_000_000_000)
	return f
}

// tick advances the fake clock and returns the new time in ms.
func (f *fixture) tick() int64 { return f.clock.Add(1000) }

// id returns a fresh ULID.
func (f *fixture) id() string { return f.ids.New(time.UnixMilli(f.clock.Load())) }

// unique returns a string unique within the subtest, prefixed by p.
func (f *fixture) unique(p string) string { return fmt.Sprintf("%s-%d", p, f.seq.Add(1)) }

// user creates a user with the given username.
func (f *fixture) user(username string) chat.User {
	f.t.Helper()
	u := chat.User{ID: f.id(), Username: username, DisplayName: "User " + username, CreatedAt: f.tick()}
	if err := f.s.CreateUser(f.ctx, u, []byte("hash of "+username)); err != nil {
		f.t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

// users creates one user per username.
func (f *fixture) users(usernames ...string) []chat.User {
	f.t.Helper()
	out := make([]chat.User, len(usernames))
	for i, n := range usernames {
		out[i] = f.user(n)
	}
	return out
}

// device creates a device of u created now.
func (f *fixture) device(u chat.User, name string) chat.Device {
	f.t.Helper()
	now := f.tick()
	d := chat.Device{ID: f.id(), UserID: u.ID, Name: name, CreatedAt: now, LastSeen: now}
	if err := f.s.CreateDevice(f.ctx, d); err != nil {
		f.t.Fatalf("CreateDevice(%s): %v", name, err)
	}
	return d
}

// group creates a group with admin as its admin and the others as members,
// each joining one tick after the previous one (so arg order is seniority).
func (f *fixture) group(name string, admin chat.User, others ...chat.User) chat.Conversation {
	f.t.Helper()
	now := f.tick()
	c := chat.Conversation{ID: f.id(), Type: chat.TypeGroup, Name: name, CreatedAt: now, UpdatedAt: now}
	c.Members = append(c.Members, chat.Member{UserID: admin.ID, Role: chat.RoleAdmin, JoinedAt: now})
	for i, u := range others {
		c.Members = append(c.Members, chat.Member{UserID: u.ID, Role: chat.RoleMember, JoinedAt: now + int64(i+1)})
	}
	if err := f.s.CreateGroup(f.ctx, c); err != nil {
		f.t.Fatalf("CreateGroup(%s): %v", name, err)
	}
	return c
}

// directProposal is the conversation a caller proposes for a pair.
func (f *fixture) directProposal(a, b chat.User) chat.Conversation {
	now := f.tick()
	return chat.Conversation{ID: f.id(), Type: chat.TypeDirect, CreatedAt: now, UpdatedAt: now, Members: []chat.Member{
		{UserID: a.ID, Role: chat.RoleMember, JoinedAt: now},
		{UserID: b.ID, Role: chat.RoleMember, JoinedAt: now},
	}}
}

// direct returns the direct conversation of a and b, creating it if needed.
func (f *fixture) direct(a, b chat.User) chat.Conversation {
	f.t.Helper()
	c, _, err := f.s.DirectConversation(f.ctx, f.directProposal(a, b))
	if err != nil {
		f.t.Fatalf("DirectConversation: %v", err)
	}
	return c
}

// msg builds (does not store) a message from u with a fresh ClientID.
func (f *fixture) msg(convID string, from chat.User, text string) chat.Message {
	return chat.Message{
		ID:              f.id(),
		ClientID:        f.unique("client"),
		ConversationID:  convID,
		SenderID:        from.ID,
		SenderDeviceID:  "device-of-" + from.Username,
		Content:         text,
		ContentType:     chat.ContentText,
		Timestamp:       f.tick(),
		ClientTimestamp: f.clock.Load() - 7,
	}
}

// appendOK appends msgs in one batch and fails the test on any error, batch
// or per message.
func (f *fixture) appendOK(msgs ...chat.Message) []chat.AppendResult {
	f.t.Helper()
	res, err := f.s.AppendBatch(f.ctx, msgs)
	if err != nil {
		f.t.Fatalf("AppendBatch: %v", err)
	}
	if len(res) != len(msgs) {
		f.t.Fatalf("AppendBatch: %d results for %d messages", len(res), len(msgs))
	}
	for i, r := range res {
		if r.Err != nil {
			f.t.Fatalf("AppendBatch: message %d: %v", i, r.Err)
		}
	}
	return res
}

// send stores one message per text from u, in one batch, and returns them
// as stored.
func (f *fixture) send(convID string, from chat.User, texts ...string) []chat.Message {
	f.t.Helper()
	msgs := make([]chat.Message, len(texts))
	for i, text := range texts {
		msgs[i] = f.msg(convID, from, text)
	}
	res := f.appendOK(msgs...)
	out := make([]chat.Message, len(res))
	for i, r := range res {
		out[i] = r.Message
	}
	return out
}

// sendN stores n messages from u, one batch.
func (f *fixture) sendN(convID string, from chat.User, n int) []chat.Message {
	f.t.Helper()
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("message %d", i+1)
	}
	return f.send(convID, from, texts...)
}

// conversation loads a conversation and fails on error.
func (f *fixture) conversation(id string) chat.Conversation {
	f.t.Helper()
	c, err := f.s.Conversation(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Conversation(%s): %v", id, err)
	}
	return c
}

// member loads a membership and fails on error.
func (f *fixture) member(convID string, u chat.User) chat.Member {
	f.t.Helper()
	m, err := f.s.Member(f.ctx, convID, u.ID)
	if err != nil {
		f.t.Fatalf("Member(%s): %v", u.Username, err)
	}
	return m
}

// conversations lists u's conversations and fails on error.
func (f *fixture) conversations(u chat.User) []chat.Conversation {
	f.t.Helper()
	cs, err := f.s.Conversations(f.ctx, u.ID)
	if err != nil {
		f.t.Fatalf("Conversations(%s): %v", u.Username, err)
	}
	return cs
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// noErr fails on a non-nil error.
func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sorted returns a sorted copy of ss.
func sorted[T cmp.Ordered](ss []T) []T {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}

// userIDs lists the ids of users.
func userIDs(us ...chat.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

// memberIDs lists the user ids of a conversation's members, sorted.
func memberIDs(c chat.Conversation) []string { return sorted(c.MemberIDs()) }

// convIDs lists conversation ids in order.
func convIDs(cs []chat.Conversation) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// seqs lists the seqs of messages in order.
func seqs(ms []chat.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// seqRange returns from, from+step, ... up to and including to.
func seqRange(from, to int64) []int64 {
	var out []int64
	if from <= to {
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
	} else {
		for s := from; s >= to; s-- {
			out = append(out, s)
		}
	}
	return out
}

// findConv returns the conversation with the given id in cs.
func findConv(t *testing.T, cs []chat.Conversation, id string) chat.Conversation {
	t.Helper()
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("conversation %s not listed", id)
	return chat.Conversation{}
}
