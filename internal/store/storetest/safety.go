package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// RunSafetyStore is the conformance suite of chat.SafetyStore: blocks,
// reports and suspensions. open must return stores that implement it.
func RunSafetyStore(t *testing.T, open func(t *testing.T) chat.Store) {
	runAbility(t, open, safetyTests, "chat.SafetyStore", func(s chat.Store) bool { _, ok := s.(chat.SafetyStore); return ok })
}

func (f *fixture) safety() chat.SafetyStore { return f.s.(chat.SafetyStore) }

func sortedIDs(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

var safetyTests = []test{
	{"BlockUnblockList", func(f *fixture) {
		us := f.users("alice", "bob", "carol")
		a, b, c := us[0], us[1], us[2]
		st := f.safety()
		for _, x := range []chat.User{c, b, b} { // blocking twice changes nothing
			if err := st.Block(f.ctx, a.ID, x.ID, f.tick()); err != nil {
				f.t.Fatalf("Block: %v", err)
			}
		}
		got, err := st.Blocks(f.ctx, a.ID)
		if err != nil || !slices.Equal(got, []string{c.ID, b.ID}) {
			f.t.Fatalf("Blocks = %v, %v; want [carol bob] oldest first", got, err)
		}
		if got, _ := st.Blocks(f.ctx, b.ID); len(got) != 0 {
			f.t.Fatalf("bob blocks %v, want nobody (blocks are one-way records)", got)
		}
		if err := st.Unblock(f.ctx, a.ID, c.ID); err != nil {
			f.t.Fatalf("Unblock: %v", err)
		}
		if err := st.Unblock(f.ctx, a.ID, c.ID); err != nil {
			f.t.Fatalf("Unblock of a missing block: %v", err)
		}
		if got, _ := st.Blocks(f.ctx, a.ID); !slices.Equal(got, []string{b.ID}) {
			f.t.Fatalf("after unblock: %v", got)
		}
		if err := st.Block(f.ctx, a.ID, "no-such-user", f.tick()); !errors.Is(err, chat.ErrNotFound) {
			f.t.Fatalf("Block of an unknown user: %v, want ErrNotFound", err)
		}
	}},
	{"BlockedAmongEitherWay", func(f *fixture) {
		us := f.users("alice", "bob", "carol", "dave")
		a, b, c, d := us[0], us[1], us[2], us[3]
		st := f.safety()
		_ = st.Block(f.ctx, a.ID, b.ID, f.tick())
		_ = st.Block(f.ctx, c.ID, a.ID, f.tick())
		_ = st.Block(f.ctx, b.ID, d.ID, f.tick()) // not about alice
		got, err := st.BlockedAmong(f.ctx, a.ID, []string{b.ID, c.ID, d.ID, "unknown"})
		if err != nil || !slices.Equal(sortedIDs(got), sortedIDs([]string{b.ID, c.ID})) {
			f.t.Fatalf("BlockedAmong(alice) = %v, %v; want bob (blocked by her) and carol (blocks her)", got, err)
		}
		if got, _ := st.BlockedAmong(f.ctx, a.ID, nil); len(got) != 0 {
			f.t.Fatalf("BlockedAmong of nobody = %v", got)
		}
		got, err = st.BlockersAmong(f.ctx, a.ID, []string{b.ID, c.ID, d.ID})
		if err != nil || !slices.Equal(got, []string{c.ID}) {
			f.t.Fatalf("BlockersAmong(alice) = %v, %v; want carol only", got, err)
		}
	}},
	{"DirectBlocked", func(f *fixture) {
		us := f.users("alice", "bob", "carol")
		a, b, c := us[0], us[1], us[2]
		ab, ac := f.direct(a, b), f.direct(a, c)
		g := f.group("team", a, b)
		st := f.safety()
		_ = st.Block(f.ctx, b.ID, a.ID, f.tick())
		for _, tc := range []struct {
			conv string
			want bool
		}{{ab.ID, true}, {ac.ID, false}, {g.ID, false}, {"unknown", false}} {
			if got, err := st.DirectBlocked(f.ctx, tc.conv); got != tc.want || err != nil {
				f.t.Fatalf("DirectBlocked(%s) = %v, %v; want %v", tc.conv, got, err, tc.want)
			}
		}
	}},
	{"SharingWith", func(f *fixture) {
		us := f.users("alice", "bob", "carol", "dave", "erin")
		a, b, c, d, e := us[0], us[1], us[2], us[3], us[4]
		f.direct(a, b)
		g := f.group("team", c, a, d)
		if err := f.s.RemoveMember(f.ctx, g.ID, d.ID, f.tick()); err != nil {
			f.t.Fatal(err)
		}
		got, err := f.safety().SharingWith(f.ctx, a.ID, []string{b.ID, c.ID, d.ID, e.ID, "unknown"})
		if err != nil || !slices.Equal(sortedIDs(got), sortedIDs([]string{b.ID, c.ID})) {
			f.t.Fatalf("SharingWith(alice) = %v, %v; want bob and carol (dave left, erin shares nothing)", got, err)
		}
	}},
	{"MediaBytes", func(f *fixture) {
		us := f.users("alice", "bob")
		ms, ok := f.s.(chat.MediaStore)
		if !ok {
			f.t.Skip("the store keeps no media catalogue")
		}
		for i, size := range []int64{100, 250} {
			m := chat.Media{ID: f.id(), UploaderID: us[0].ID, ContentType: "text/plain", Size: size, BlobKey: f.unique("blob"), CreatedAt: f.tick()}
			if err := ms.CreateMedia(f.ctx, m); err != nil {
				f.t.Fatalf("CreateMedia %d: %v", i, err)
			}
		}
		if n, err := f.safety().MediaBytes(f.ctx, us[0].ID); n != 350 || err != nil {
			f.t.Fatalf("MediaBytes(alice) = %d, %v; want 350", n, err)
		}
		if n, err := f.safety().MediaBytes(f.ctx, us[1].ID); n != 0 || err != nil {
			f.t.Fatalf("MediaBytes(bob) = %d, %v; want 0", n, err)
		}
	}},
	{"KeyBundlesClaimNothing", func(f *fixture) {
		u := f.user("alice")
		if _, ok := f.s.(chat.KeyStore); !ok {
			f.t.Skip("the store has no key directory")
		}
		phone, laptop := f.device(u, "phone"), f.device(u, "laptop")
		f.putKeys(deviceKeys(phone, 10, 1, 2))
		f.putKeys(deviceKeys(laptop, 20, 1, 1))
		got, err := f.safety().KeyBundles(f.ctx, u.ID)
		if err != nil || len(got) != 2 {
			f.t.Fatalf("KeyBundles = %d bundles, %v; want 2", len(got), err)
		}
		for _, b := range got {
			if b.OneTimePreKey != nil || len(b.IdentityKey) == 0 || len(b.SignedPreKey.Signature) == 0 {
				f.t.Fatalf("bundle %+v: want identity and signed prekey, no one-time prekey", b)
			}
		}
		if n, _ := f.keys().PrekeyCount(f.ctx, phone.ID); n != 2 {
			f.t.Fatalf("KeyBundles claimed prekeys: %d left of 2", n)
		}
	}},
	{"InvitesAreSingleUse", func(f *fixture) {
		st := f.safety()
		now := f.tick()
		if err := st.CreateInvite(f.ctx, "h1", now, now+1000); err != nil {
			f.t.Fatalf("CreateInvite: %v", err)
		}
		if err := st.CreateInvite(f.ctx, "h2", now, now+1000); err != nil {
			f.t.Fatal(err)
		}
		if err := st.CreateInvite(f.ctx, "h1", now, now+1000); !errors.Is(err, chat.ErrConflict) {
			f.t.Fatalf("CreateInvite with a taken hash: %v, want ErrConflict", err)
		}
		if ok, err := st.UseInvite(f.ctx, "h1", now+1); !ok || err != nil {
			f.t.Fatalf("UseInvite = %v, %v; want true", ok, err)
		}
		if ok, _ := st.UseInvite(f.ctx, "h1", now+1); ok {
			f.t.Fatal("an invitation was used twice")
		}
		if ok, _ := st.UseInvite(f.ctx, "h2", now+1000); ok {
			f.t.Fatal("an expired invitation was used")
		}
		if ok, _ := st.UseInvite(f.ctx, "unknown", now); ok {
			f.t.Fatal("an unknown invitation was used")
		}
	}},
	{"Reports", func(f *fixture) {
		us := f.users("alice", "bob")
		c := f.direct(us[0], us[1])
		st := f.safety()
		r1 := chat.Report{ID: f.id(), ReporterID: us[0].ID, ConversationID: c.ID, Seq: 1, Reason: "spam", CreatedAt: f.tick()}
		r2 := chat.Report{ID: f.id(), ReporterID: us[1].ID, ConversationID: c.ID, Seq: 2, Reason: "abuse", CreatedAt: f.tick()}
		for _, r := range []chat.Report{r1, r2} {
			if err := st.CreateReport(f.ctx, r); err != nil {
				f.t.Fatalf("CreateReport: %v", err)
			}
		}
		if err := st.CreateReport(f.ctx, r1); !errors.Is(err, chat.ErrConflict) {
			f.t.Fatalf("CreateReport with a taken id: %v, want ErrConflict", err)
		}
		got, err := st.Reports(f.ctx, false, 10)
		if err != nil || len(got) != 2 || got[0] != r1 || got[1] != r2 {
			f.t.Fatalf("Reports = %+v, %v", got, err)
		}
		at := f.tick()
		if err := st.ResolveReport(f.ctx, r1.ID, "warned", at); err != nil {
			f.t.Fatalf("ResolveReport: %v", err)
		}
		if err := st.ResolveReport(f.ctx, "nope", "x", at); !errors.Is(err, chat.ErrNotFound) {
			f.t.Fatalf("ResolveReport of an unknown id: %v", err)
		}
		if got, _ := st.Reports(f.ctx, false, 10); len(got) != 1 || got[0].ID != r2.ID {
			f.t.Fatalf("open reports after resolving one: %+v", got)
		}
		all, _ := st.Reports(f.ctx, true, 10)
		if len(all) != 2 || all[0].ResolvedAt != at || all[0].Resolution != "warned" {
			f.t.Fatalf("all reports: %+v", all)
		}
		if lim, _ := st.Reports(f.ctx, true, 1); len(lim) != 1 {
			f.t.Fatalf("limit 1 gave %d", len(lim))
		}
	}},
	{"SuspendDeletesSessions", func(f *fixture) {
		us := f.users("alice", "bob")
		a, b := us[0], us[1]
		da, db := f.device(a, "phone"), f.device(b, "phone")
		exp := f.tick() + 1_000_000
		for _, s := range []chat.Session{{TokenHash: "ha", UserID: a.ID, DeviceID: da.ID, ExpiresAt: exp}, {TokenHash: "hb", UserID: b.ID, DeviceID: db.ID, ExpiresAt: exp}} {
			if err := f.s.CreateSession(f.ctx, s); err != nil {
				f.t.Fatal(err)
			}
		}
		st := f.safety()
		if err := st.Suspend(f.ctx, a.ID, "spam", f.tick()); err != nil {
			f.t.Fatalf("Suspend: %v", err)
		}
		if ok, err := st.Suspended(f.ctx, a.ID); !ok || err != nil {
			f.t.Fatalf("Suspended(alice) = %v, %v", ok, err)
		}
		if ok, _ := st.Suspended(f.ctx, b.ID); ok {
			f.t.Fatal("bob suspended too")
		}
		if got, err := st.SuspendedSince(f.ctx, 0); err != nil || !slices.Equal(got, []string{a.ID}) {
			f.t.Fatalf("SuspendedSince(0) = %v, %v; want alice", got, err)
		}
		if got, _ := st.SuspendedSince(f.ctx, f.tick()); len(got) != 0 {
			f.t.Fatalf("SuspendedSince(later) = %v, want none", got)
		}
		if _, err := f.s.Session(f.ctx, "ha"); !errors.Is(err, chat.ErrNotFound) {
			f.t.Fatalf("alice's session after suspension: %v, want ErrNotFound", err)
		}
		if _, err := f.s.Session(f.ctx, "hb"); err != nil {
			f.t.Fatalf("bob's session: %v", err)
		}
		if err := st.Suspend(f.ctx, "no-such-user", "x", f.tick()); !errors.Is(err, chat.ErrNotFound) {
			f.t.Fatalf("Suspend of an unknown user: %v", err)
		}
		if err := st.Unsuspend(f.ctx, a.ID); err != nil {
			f.t.Fatal(err)
		}
		if ok, _ := st.Suspended(f.ctx, a.ID); ok {
			f.t.Fatal("still suspended after Unsuspend")
		}
	}},
}
