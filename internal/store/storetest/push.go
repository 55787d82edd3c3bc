package storetest

import (
	"bytes"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// RunPushStore is the conformance suite of chat.PushStore, the optional
// push outbox of a Store. open must return stores that implement it.
func RunPushStore(t *testing.T, open func(t *testing.T) chat.Store) {
	runAbility(t, open, pushTests, "chat.PushStore", func(s chat.Store) bool { _, ok := s.(chat.PushStore); return ok })
}

const pushWindow = 30_000 // ms

func (f *fixture) pushes() chat.PushStore { return f.s.(chat.PushStore) }

// subscribe stores a subscription of d on platform with a fresh endpoint.
func (f *fixture) subscribe(d chat.Device, platform string) chat.PushSubscription {
	f.t.Helper()
	sub := chat.PushSubscription{ID: f.id(), UserID: d.UserID, DeviceID: d.ID, Platform: platform,
		Endpoint: "https://push.example/" + f.unique("ep"), CreatedAt: f.tick()}
	if platform == chat.PlatformWebPush {
		sub.P256dh, sub.Auth = bytes.Repeat([]byte{4}, 65), bytes.Repeat([]byte{7}, 16)
	}
	got, err := f.pushes().SavePushSubscription(f.ctx, sub, 10)
	if err != nil {
		f.t.Fatalf("SavePushSubscription: %v", err)
	}
	return got
}

// record stores one event per message for user u, returning how many were recorded.
func (f *fixture) record(u chat.User, msgs ...chat.Message) int {
	f.t.Helper()
	events := make([]chat.PushEvent, len(msgs))
	for i, m := range msgs {
		events[i] = chat.PushEvent{UserID: u.ID, ConversationID: m.ConversationID, SenderID: m.SenderID, Seq: m.Seq, At: m.Timestamp}
	}
	n, err := f.pushes().RecordPushes(f.ctx, events)
	if err != nil {
		f.t.Fatalf("RecordPushes: %v", err)
	}
	return n
}

func (f *fixture) queueDue(now int64) int {
	f.t.Helper()
	n, err := f.pushes().QueueDuePushes(f.ctx, now, pushWindow, 100)
	if err != nil {
		f.t.Fatalf("QueueDuePushes: %v", err)
	}
	return n
}

func (f *fixture) claim(now int64) []chat.PushJob {
	f.t.Helper()
	jobs, err := f.pushes().ClaimPushJobs(f.ctx, now, now+60_000, 100)
	if err != nil {
		f.t.Fatalf("ClaimPushJobs: %v", err)
	}
	return jobs
}

func (f *fixture) finish(rs ...chat.PushJobResult) {
	f.t.Helper()
	if err := f.pushes().FinishPushJobs(f.ctx, rs); err != nil {
		f.t.Fatalf("FinishPushJobs: %v", err)
	}
}

func done(j chat.PushJob) chat.PushJobResult {
	return chat.PushJobResult{SubscriptionID: j.Sub.ID, ConversationID: j.ConversationID, Gen: j.Gen}
}

var pushTests = []test{
	{"SubscriptionsSaveListMoveDelete", func(f *fixture) {
		u, other := f.user("palice"), f.user("pbob")
		phone, laptop, stranger := f.device(u, "phone"), f.device(u, "laptop"), f.device(other, "x")
		web := f.subscribe(phone, chat.PlatformWebPush)
		apns := f.subscribe(laptop, chat.PlatformAPNs)
		got, err := f.pushes().PushSubscriptions(f.ctx, u.ID)
		if err != nil || len(got) != 2 || got[0].ID != web.ID || got[1].ID != apns.ID {
			f.t.Fatalf("PushSubscriptions = %+v, %v", got, err)
		}
		if !bytes.Equal(got[0].P256dh, web.P256dh) || !bytes.Equal(got[0].Auth, web.Auth) || got[0].Endpoint != web.Endpoint ||
			got[0].DeviceID != phone.ID || got[0].Platform != chat.PlatformWebPush {
			f.t.Fatalf("stored %+v, saved %+v", got[0], web)
		}
		// The same device subscribing the same endpoint again keeps the id.
		again := web
		again.ID, again.Auth = f.id(), bytes.Repeat([]byte{9}, 16)
		re, err := f.pushes().SavePushSubscription(f.ctx, again, 10)
		if err != nil || re.ID != web.ID {
			f.t.Fatalf("resubscribe = %+v, %v; want id %s", re, err, web.ID)
		}
		got, _ = f.pushes().PushSubscriptions(f.ctx, u.ID)
		if len(got) != 2 || !bytes.Equal(got[0].Auth, again.Auth) {
			f.t.Fatalf("after resubscribe: %+v", got)
		}
		// Another user's device taking the endpoint moves it there.
		moved := web
		moved.ID, moved.UserID, moved.DeviceID = f.id(), other.ID, stranger.ID
		if m, err := f.pushes().SavePushSubscription(f.ctx, moved, 10); err != nil || m.ID != moved.ID {
			f.t.Fatalf("move = %+v, %v", m, err)
		}
		if got, _ := f.pushes().PushSubscriptions(f.ctx, u.ID); len(got) != 1 || got[0].ID != apns.ID {
			f.t.Fatalf("old owner keeps %+v", got)
		}
		wantErr(f.t, "delete another user's subscription", f.pushes().DeletePushSubscription(f.ctx, u.ID, moved.ID), chat.ErrNotFound)
		noErr(f.t, "delete own", f.pushes().DeletePushSubscription(f.ctx, other.ID, moved.ID))
		wantErr(f.t, "delete twice", f.pushes().DeletePushSubscription(f.ctx, other.ID, moved.ID), chat.ErrNotFound)
		noErr(f.t, "delete device subscriptions", f.pushes().DeleteDevicePushSubscriptions(f.ctx, laptop.ID))
		if got, _ := f.pushes().PushSubscriptions(f.ctx, u.ID); len(got) != 0 {
			f.t.Fatalf("after device delete: %+v", got)
		}
	}},
	{"SubscriptionsPerDeviceAreLimited", func(f *fixture) {
		d := f.device(f.user("plimit"), "phone")
		for range 3 {
			sub := chat.PushSubscription{ID: f.id(), UserID: d.UserID, DeviceID: d.ID, Platform: chat.PlatformFCM, Endpoint: f.unique("tok"), CreatedAt: f.tick()}
			noErr(f.t, "save", func() error { _, err := f.pushes().SavePushSubscription(f.ctx, sub, 3); return err }())
		}
		sub := chat.PushSubscription{ID: f.id(), UserID: d.UserID, DeviceID: d.ID, Platform: chat.PlatformFCM, Endpoint: f.unique("tok"), CreatedAt: f.tick()}
		_, err := f.pushes().SavePushSubscription(f.ctx, sub, 3)
		wantErr(f.t, "fourth subscription", err, chat.ErrInvalid)
	}},
	{"RecordSkipsUsersWithoutSubscriptions", func(f *fixture) {
		a, b := f.user("pnosub"), f.user("psender")
		c := f.direct(a, b)
		if n := f.record(a, f.send(c.ID, b, "hi")...); n != 0 {
			f.t.Fatalf("recorded %d for a user without subscriptions", n)
		}
		if n := f.queueDue(f.tick()); n != 0 {
			f.t.Fatalf("queued %d jobs", n)
		}
	}},
	{"CollapsePerConversationWithinTheWindow", func(f *fixture) {
		bob, alice, carol := f.user("pbob2"), f.user("palice2"), f.user("pcarol2")
		web, apns := f.subscribe(f.device(bob, "phone"), chat.PlatformWebPush), f.subscribe(f.device(bob, "tablet"), chat.PlatformAPNs)
		c := f.direct(alice, bob)
		first := f.send(c.ID, alice, "one")
		if n := f.record(bob, first...); n != 1 {
			f.t.Fatalf("recorded %d", n)
		}
		t0 := f.tick()
		if n := f.queueDue(t0); n != 2 {
			f.t.Fatalf("first message queued %d jobs, want one per subscription", n)
		}
		jobs := f.claim(t0)
		if len(jobs) != 2 {
			f.t.Fatalf("claimed %d jobs", len(jobs))
		}
		for _, j := range jobs {
			if j.Kind != chat.PushAlert || j.Count != 1 || j.Badge != 1 || j.SenderName != alice.DisplayName || j.Seq != 1 ||
				j.ConversationID != c.ID || j.Attempts != 0 || (j.Sub.ID != web.ID && j.Sub.ID != apns.ID) {
				f.t.Fatalf("job %+v", j)
			}
			f.finish(done(j))
		}
		// Four more, the last from carol in a group: collapsed until the window ends.
		f.record(bob, f.send(c.ID, alice, "two", "three", "four")...)
		g := f.group("team", carol, bob)
		f.record(bob, f.send(g.ID, carol, "in the group")...)
		now := f.tick()
		if n := f.queueDue(now); n != 2 {
			f.t.Fatalf("within the window: %d jobs queued, want 2 (the group's first message only)", n)
		}
		for _, j := range f.claim(now) {
			if j.ConversationID != g.ID || j.Count != 1 || j.SenderName != carol.DisplayName || j.Badge != 5 {
				f.t.Fatalf("group job %+v", j)
			}
			f.finish(done(j))
		}
		if n := f.queueDue(t0 + pushWindow - 1); n != 0 {
			f.t.Fatalf("queued %d before the window ended", n)
		}
		if n := f.queueDue(t0 + pushWindow); n != 2 {
			f.t.Fatalf("at the window's end: %d jobs", n)
		}
		for _, j := range f.claim(t0 + pushWindow) {
			if j.ConversationID != c.ID || j.Count != 4 || j.Seq != 4 || j.Badge != 5 {
				f.t.Fatalf("collapsed job %+v, want count 4 up to seq 4, badge 5", j)
			}
		}
		if n := f.queueDue(t0 + 10*pushWindow); n != 0 {
			f.t.Fatalf("nothing new, yet %d jobs queued", n)
		}
	}},
	{"ClaimLeasesAndFinishApplies", func(f *fixture) {
		bob, alice := f.user("pbob3"), f.user("palice3")
		sub := f.subscribe(f.device(bob, "phone"), chat.PlatformFCM)
		c := f.direct(alice, bob)
		f.record(bob, f.send(c.ID, alice, "x")...)
		now := f.tick()
		f.queueDue(now)
		jobs := f.claim(now)
		if len(jobs) != 1 || jobs[0].Sub.ID != sub.ID || jobs[0].Sub.Endpoint != sub.Endpoint {
			f.t.Fatalf("claimed %+v", jobs)
		}
		if again := f.claim(now + 1000); len(again) != 0 {
			f.t.Fatalf("a leased job was claimed again: %+v", again)
		}
		if again := f.claim(now + 60_000); len(again) != 1 {
			f.t.Fatalf("after the lease the job is due again; claimed %d", len(again))
		}
		r := done(jobs[0])
		r.RetryAt = now + 120_000
		f.finish(r)
		if got := f.claim(now + 119_999); len(got) != 0 {
			f.t.Fatalf("claimed before its retry time: %+v", got)
		}
		got := f.claim(now + 120_000)
		if len(got) != 1 || got[0].Attempts != 1 {
			f.t.Fatalf("retry: %+v", got)
		}
		stale := done(got[0])
		stale.Gen--
		f.finish(stale)
		if got := f.claim(now + 200_000); len(got) != 1 {
			f.t.Fatalf("a result of an older generation finished the job: %d left", len(got))
		}
		f.finish(done(got[0]))
		if got := f.claim(now + 10_000_000); len(got) != 0 {
			f.t.Fatalf("finished job still queued: %+v", got)
		}
	}},
	{"NewerNotificationReplacesAClaimedOne", func(f *fixture) {
		bob, alice := f.user("pbob4"), f.user("palice4")
		f.subscribe(f.device(bob, "phone"), chat.PlatformAPNs)
		c := f.direct(alice, bob)
		f.record(bob, f.send(c.ID, alice, "1")...)
		t0 := f.tick()
		f.queueDue(t0)
		old := f.claim(t0)[0]
		f.record(bob, f.send(c.ID, alice, "2")...)
		f.queueDue(t0 + pushWindow)
		f.finish(done(old)) // the old generation's success must not delete the new job
		got := f.claim(t0 + pushWindow)
		if len(got) != 1 || got[0].Gen == old.Gen || got[0].Count != 2 {
			f.t.Fatalf("after replacement: %+v (old gen %d)", got, old.Gen)
		}
	}},
	{"GoneDeletesTheSubscriptionAndItsJobs", func(f *fixture) {
		bob, alice := f.user("pbob5"), f.user("palice5")
		gone := f.subscribe(f.device(bob, "phone"), chat.PlatformWebPush)
		kept := f.subscribe(f.device(bob, "laptop"), chat.PlatformWebPush)
		c1, c2 := f.direct(alice, bob), f.group("g", alice, bob)
		f.record(bob, append(f.send(c1.ID, alice, "a"), f.send(c2.ID, alice, "b")...)...)
		now := f.tick()
		if n := f.queueDue(now); n != 4 {
			f.t.Fatalf("queued %d, want 4", n)
		}
		jobs := f.claim(now)
		for _, j := range jobs {
			if j.Sub.ID == gone.ID && j.ConversationID == c1.ID {
				r := done(j)
				r.Gone = true
				f.finish(r)
			}
		}
		left := f.claim(now + 60_000)
		if len(left) != 2 {
			f.t.Fatalf("after gone: %d jobs left, want the 2 of the kept subscription", len(left))
		}
		for _, j := range left {
			if j.Sub.ID != kept.ID {
				f.t.Fatalf("a job of the gone subscription survived: %+v", j)
			}
		}
		if subs, _ := f.pushes().PushSubscriptions(f.ctx, bob.ID); len(subs) != 1 || subs[0].ID != kept.ID {
			f.t.Fatalf("subscriptions after gone: %+v", subs)
		}
	}},
	{"ReadingClearsWhatWasNotified", func(f *fixture) {
		bob, alice := f.user("pbob6"), f.user("palice6")
		f.subscribe(f.device(bob, "phone"), chat.PlatformAPNs)
		c1, c2 := f.direct(alice, bob), f.group("g", alice, bob)
		f.record(bob, f.send(c1.ID, alice, "1", "2")...)
		t0 := f.tick()
		f.queueDue(t0)
		for _, j := range f.claim(t0) {
			f.finish(done(j))
		}
		f.record(bob, f.send(c2.ID, alice, "not yet notified")...)
		clear := func(w ...chat.Watermark) int {
			n, err := f.pushes().ClearPushes(f.ctx, w, f.tick())
			if err != nil {
				f.t.Fatalf("ClearPushes: %v", err)
			}
			return n
		}
		if n := clear(chat.Watermark{ConversationID: c1.ID, UserID: bob.ID, DeliveredSeq: 2, ReadSeq: 1}); n != 0 {
			f.t.Fatalf("a partial read queued %d clears", n)
		}
		if n := clear(chat.Watermark{ConversationID: c2.ID, UserID: bob.ID, DeliveredSeq: 1, ReadSeq: 1}); n != 0 {
			f.t.Fatalf("reading a conversation never notified queued %d clears", n)
		}
		if n := f.queueDue(t0 + 1); n != 0 {
			f.t.Fatalf("a read conversation was still notified: %d jobs", n)
		}
		// Bob reads c1 on another device: the stored watermark first.
		if _, err := f.s.UpdateWatermarks(f.ctx, []chat.Watermark{{ConversationID: c1.ID, UserID: bob.ID, DeliveredSeq: 2, ReadSeq: 2}, {ConversationID: c2.ID, UserID: bob.ID, DeliveredSeq: 1, ReadSeq: 1}}); err != nil {
			f.t.Fatal(err)
		}
		if n := clear(chat.Watermark{ConversationID: c1.ID, UserID: bob.ID, DeliveredSeq: 2, ReadSeq: 2}); n != 1 {
			f.t.Fatalf("reading everything queued %d clears, want 1", n)
		}
		jobs := f.claim(f.tick())
		if len(jobs) != 1 || jobs[0].Kind != chat.PushClear || jobs[0].Badge != 0 || jobs[0].ConversationID != c1.ID || jobs[0].Count != 0 {
			f.t.Fatalf("clear job %+v", jobs)
		}
		if n := clear(chat.Watermark{ConversationID: c1.ID, UserID: bob.ID, DeliveredSeq: 2, ReadSeq: 2}); n != 0 {
			f.t.Fatalf("a second read queued %d clears", n)
		}
		// The window opened by the last notification still holds after a read.
		f.record(bob, f.send(c1.ID, alice, "3")...)
		if n := f.queueDue(t0 + pushWindow - 1); n != 0 {
			f.t.Fatalf("notified again within the window: %d", n)
		}
		f.queueDue(t0 + pushWindow)
		for _, j := range f.claim(t0 + pushWindow) {
			if j.Kind != chat.PushAlert || j.Count != 1 || j.Badge != 1 {
				f.t.Fatalf("after a read the count starts again: %+v", j)
			}
		}
	}},
	{"UnreadTotalSumsConversationsWithoutOwnMessages", func(f *fixture) {
		bob, alice, carol := f.user("pbob7"), f.user("palice7"), f.user("pcarol7")
		c1, g := f.direct(alice, bob), f.group("g", carol, bob, alice)
		f.send(c1.ID, alice, "1", "2", "3")
		f.send(g.ID, carol, "a", "b")
		f.send(g.ID, bob, "mine")
		total := func(u chat.User) int64 {
			n, err := f.pushes().UnreadTotal(f.ctx, u.ID)
			if err != nil {
				f.t.Fatal(err)
			}
			return n
		}
		if n := total(bob); n != 5 {
			f.t.Fatalf("bob's unread total %d, want 5", n)
		}
		if _, err := f.s.UpdateWatermarks(f.ctx, []chat.Watermark{{ConversationID: c1.ID, UserID: bob.ID, ReadSeq: 2}}); err != nil {
			f.t.Fatal(err)
		}
		if n := total(bob); n != 3 {
			f.t.Fatalf("after reading 2: %d, want 3", n)
		}
		if n := total(f.user("pnobody")); n != 0 {
			f.t.Fatalf("a user without conversations: %d", n)
		}
	}},
}
