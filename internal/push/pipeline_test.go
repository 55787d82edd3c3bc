package push_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
	"github.com/parley-chat/parley/internal/push"
	"github.com/parley-chat/parley/internal/push/pushtest"
)

const window = 30 * time.Second

// secret is message text that must never reach a push service.
const secret = "the launch code is 0000"

func TestFiveMessagesCollapseIntoOneNotificationPerWindow(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{Window: window}, wp.Server, true)
	alice, _, phone, conv := e.pair(wp)

	e.send(alice, conv, secret, secret, secret, secret, secret)
	first := wp.Wait(t, phone.ID, 1, 10*time.Second)[0].Note
	settle()
	if n := len(wp.Accepted(phone.ID)); n != 1 {
		t.Fatalf("%d notifications within the window, want 1", n)
	}
	if first.Count < 5 {
		e.clock.Advance(window)
		last := wp.Wait(t, phone.ID, 2, 10*time.Second)[1].Note
		if last.Count != 5 || last.Body != "Alice sent you 5 messages" || last.Badge != 5 || last.Tag != first.Tag {
			t.Fatalf("after the window: %+v (first %+v)", last, first)
		}
	} else if first.Body != "Alice sent you 5 messages" {
		t.Fatalf("collapsed at once: %+v", first)
	}
	e.clock.Advance(10 * window)
	settle()
	for _, r := range wp.Accepted(phone.ID) {
		if bytes.Contains(r.Raw, []byte(secret)) || strings.Contains(r.Note.Body, "launch") {
			t.Fatalf("a notification carries the message text: %s", r.Raw)
		}
	}
	if n := len(wp.Accepted(phone.ID)); n > 2 {
		t.Fatalf("%d notifications for 5 messages", n)
	}
}

func TestWindowIsPerConversation(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{Window: window}, wp.Server, true)
	alice, carol, bob := e.user("Alice"), e.user("Carol"), e.user("Bob")
	phone := wp.Subscribe(true)
	e.subscribe(bob, phone, chat.PlatformWebPush)
	withAlice, withCarol := e.direct(alice, bob), e.direct(carol, bob)

	e.send(alice, withAlice, "1")
	wp.Wait(t, phone.ID, 1, 10*time.Second)
	e.clock.Advance(window / 2)
	e.send(alice, withAlice, "2")
	e.send(carol, withCarol, "hello")
	got := wp.Wait(t, phone.ID, 2, 10*time.Second)
	if got[1].Note.ConversationID != withCarol || got[1].Note.Body != "Carol sent you a message" || got[1].Note.Badge != 3 {
		t.Fatalf("another conversation is not held by the first one's window: %+v", got[1].Note)
	}
	settle()
	if n := len(wp.Accepted(phone.ID)); n != 2 {
		t.Fatalf("the second message of a conversation went out inside its window (%d notifications)", n)
	}
	e.clock.Advance(window / 2)
	got = wp.Wait(t, phone.ID, 3, 10*time.Second)
	if n := got[2].Note; n.ConversationID != withAlice || n.Count != 2 {
		t.Fatalf("at the window's end: %+v", n)
	}
}

func TestNoPushWhileAnyDeviceIsOnline(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{Window: window}, wp.Server, true)
	alice, bob, phone, conv := e.pair(wp)

	e.presence.set(bob, true) // one of bob's devices has a socket
	e.send(alice, conv, "you are here")
	settle()
	if n := len(wp.Attempts(phone.ID)); n != 0 || e.metrics.recorded.Load() != 0 {
		t.Fatalf("an online user was pushed (%d) or recorded (%d)", n, e.metrics.recorded.Load())
	}
	e.presence.set(bob, false)
	e.send(alice, conv, "now you are not")
	if n := wp.Wait(t, phone.ID, 1, 10*time.Second)[0].Note; n.Count != 1 || n.Badge != 2 {
		t.Fatalf("offline push %+v", n)
	}
}

func TestJobForAUserWhoCameOnlineIsSkipped(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{Window: window}, wp.Server, true)
	alice, bob, phone, conv := e.pair(wp)
	e.send(alice, conv, "1")
	wp.Wait(t, phone.ID, 1, 10*time.Second)
	e.send(alice, conv, "2") // recorded while bob is away, held by the window
	eventually(t, "the second message to be recorded", func() bool { return e.metrics.recorded.Load() == 2 })
	e.presence.set(bob, true) // back before the window ends
	e.clock.Advance(window)
	eventually(t, "the job to be skipped", func() bool { return e.metrics.count("webpush/skipped") == 1 })
	if n := len(wp.Attempts(phone.ID)); n != 1 {
		t.Fatalf("pushed %d times, want once (before bob came back)", n)
	}
}

func TestReadingElsewhereSendsAClearToOfflineDevices(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	ap := pushtest.NewAPNs(t)
	e := newEnv(t, push.Config{Window: window, APNs: ap.Config()}, wp.Server, true)
	alice, bob := e.user("Alice"), e.user("Bob")
	conv := e.direct(alice, bob)
	phoneTok := pushtest.DeviceToken()
	if _, err := e.push.Subscribe(e.ctx, bob, proto.PushSubscribeRequest{Platform: chat.PlatformAPNs, Token: phoneTok}); err != nil {
		t.Fatal(err)
	}
	desktop := e.device(usernameOf(t, e, bob), "Bob")
	browser := wp.Subscribe(true)
	e.subscribe(desktop, browser, chat.PlatformWebPush)

	seq := e.send(alice, conv, "a", "b")
	ap.Wait(t, phoneTok, 1, 10*time.Second)
	wp.Wait(t, browser.ID, 1, 10*time.Second)

	// Bob opens the desktop and reads everything there.
	e.presence.set(desktop, true)
	if err := e.chat.MarkStatus(e.ctx, desktop, conv, seq, chat.StatusRead); err != nil {
		t.Fatal(err)
	}
	got := ap.Wait(t, phoneTok, 2, 10*time.Second)
	if c := got[len(got)-1]; c.Note.Type != push.TypeClear || c.Note.Badge != 0 || c.Note.Body != "" || c.Header.Get("apns-priority") != "5" {
		t.Fatalf("clear push %+v %v", c.Note, c.Header)
	}
	eventually(t, "the online desktop's clear to be skipped", func() bool { return e.metrics.count("webpush/skipped") == 1 })
	if n := len(wp.Accepted(browser.ID)); n != 1 {
		t.Fatalf("the device that read got %d pushes, want only the first", n)
	}
}

func TestGoneSubscriptionIsDeleted(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{Window: window}, wp.Server, true)
	alice, bob, gone, conv := e.pair(wp)
	kept := wp.Subscribe(true)
	e.subscribe(bob, kept, chat.PlatformWebPush)
	wp.Forget(gone.ID)
	e.send(alice, conv, "x")
	wp.Wait(t, kept.ID, 1, 10*time.Second)
	eventually(t, "the gone subscription to be deleted", func() bool {
		subs, err := e.store.PushSubscriptions(e.ctx, bob.UserID)
		return err == nil && len(subs) == 1 && subs[0].Endpoint == kept.Endpoint
	})
	// The outcome is counted after it is stored: wait for the count too.
	eventually(t, "the gone outcome to be counted", func() bool { return e.metrics.count("webpush/gone") == 1 })
	if n := e.metrics.count("webpush/gone"); n != 1 {
		t.Fatalf("%d gone outcomes, want 1: %v", n, e.metrics)
	}
}

func TestRetriesBackOffAndHonourRetryAfter(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{Window: window}, wp.Server, true)
	alice, _, phone, conv := e.pair(wp)
	wp.Script(phone.ID, pushtest.Response{Status: 429, RetryAfter: "5"}, pushtest.Response{Status: 503})
	e.send(alice, conv, "x")

	outcomes := func(retries, sent int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d retries and %d sent", retries, sent), func() bool {
			return e.metrics.count("webpush/retry") == retries && e.metrics.count("webpush/sent") == sent
		})
		if n := len(wp.Attempts(phone.ID)); n != retries+sent {
			t.Fatalf("%d attempts, want %d", n, retries+sent)
		}
	}
	outcomes(1, 0) // 429, Retry-After 5 s: more than the first backoff (at most 1 s)
	e.clock.Advance(4900 * time.Millisecond)
	settle()
	outcomes(1, 0) // not before Retry-After
	e.clock.Advance(100 * time.Millisecond)
	outcomes(2, 0) // 503 without Retry-After: the second backoff, 1 to 2 s
	e.clock.Advance(2 * time.Second)
	outcomes(2, 1)
	if n := wp.Accepted(phone.ID)[0].Note; n.Count != 1 || n.Body != "Alice sent you a message" {
		t.Fatalf("delivered %+v", n)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{Window: window, MaxAttempts: 2}, wp.Server, true)
	alice, bob, phone, conv := e.pair(wp)
	wp.Script(phone.ID, pushtest.Response{Status: 500}, pushtest.Response{Status: 500})
	e.send(alice, conv, "x")
	eventually(t, "a first attempt", func() bool { return e.metrics.count("webpush/retry") == 1 })
	e.clock.Advance(time.Minute)
	eventually(t, "the job to be given up", func() bool { return e.metrics.count("webpush/failed") == 1 })
	e.clock.Advance(time.Hour)
	settle()
	if n := len(wp.Attempts(phone.ID)); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	if subs, _ := e.store.PushSubscriptions(e.ctx, bob.UserID); len(subs) != 1 {
		t.Fatal("giving up on a notification deleted the subscription")
	}
}

func TestAFullHandOffQueueDropsAndCounts(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{QueueSize: 1}, wp.Server, false) // nobody drains it
	e.push.Committed(nil)
	e.push.Committed(nil)
	e.push.WatermarksMoved(nil)
	if n := e.metrics.dropped.Load(); n != 1 {
		t.Fatalf("dropped %d, want 1 (the second batch)", n)
	}
}

func TestSubscribeValidates(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	e := newEnv(t, push.Config{}, wp.Server, false)
	bob := e.user("Bob")
	ua := wp.Subscribe(true)
	keys := &proto.PushKeys{P256dh: ua.P256dh, Auth: ua.Auth}
	for _, c := range []struct {
		name string
		req  proto.PushSubscribeRequest
		want error
	}{
		{"no platform", proto.PushSubscribeRequest{}, chat.ErrBadRequest},
		{"unknown platform", proto.PushSubscribeRequest{Platform: "pager"}, chat.ErrInvalid},
		{"apns not configured", proto.PushSubscribeRequest{Platform: "apns", Token: pushtest.DeviceToken()}, chat.ErrInvalid},
		{"fcm not configured", proto.PushSubscribeRequest{Platform: "fcm", Token: "x"}, chat.ErrInvalid},
		{"webpush without endpoint", proto.PushSubscribeRequest{Platform: "webpush", Keys: keys}, chat.ErrBadRequest},
		{"webpush without keys", proto.PushSubscribeRequest{Platform: "webpush", Endpoint: ua.Endpoint}, chat.ErrBadRequest},
		{"key not base64", proto.PushSubscribeRequest{Platform: "webpush", Endpoint: ua.Endpoint, Keys: &proto.PushKeys{P256dh: "***", Auth: ua.Auth}}, chat.ErrBadRequest},
		{"p256dh not a point", proto.PushSubscribeRequest{Platform: "webpush", Endpoint: ua.Endpoint, Keys: &proto.PushKeys{P256dh: strings.Repeat("A", 87), Auth: ua.Auth}}, chat.ErrInvalid},
		{"auth too short", proto.PushSubscribeRequest{Platform: "webpush", Endpoint: ua.Endpoint, Keys: &proto.PushKeys{P256dh: ua.P256dh, Auth: "AAAA"}}, chat.ErrInvalid},
		{"relative endpoint", proto.PushSubscribeRequest{Platform: "webpush", Endpoint: "/push/1", Keys: keys}, chat.ErrInvalid},
		{"http to a public host", proto.PushSubscribeRequest{Platform: "webpush", Endpoint: "http://push.example/1", Keys: keys}, chat.ErrInvalid},
		{"cloud metadata", proto.PushSubscribeRequest{Platform: "unifiedpush", Endpoint: "https://169.254.169.254/latest"}, chat.ErrInvalid},
		{"unspecified", proto.PushSubscribeRequest{Platform: "unifiedpush", Endpoint: "https://[::]/x"}, chat.ErrInvalid},
		{"credentials in URL", proto.PushSubscribeRequest{Platform: "unifiedpush", Endpoint: "https://u:p@push.example/x"}, chat.ErrInvalid},
		{"webpush", proto.PushSubscribeRequest{Platform: "webpush", Endpoint: ua.Endpoint, Keys: keys}, nil},
		{"unifiedpush without keys", proto.PushSubscribeRequest{Platform: "unifiedpush", Endpoint: "https://ntfy.example/upABC"}, nil},
	} {
		_, err := e.push.Subscribe(e.ctx, bob, c.req)
		if (c.want == nil && err != nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Without the test option, loopback endpoints are refused.
	strict, err := push.New(push.Config{VAPIDKeyFile: t.TempDir() + "/v.key"}, push.Deps{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	for _, ep := range []string{ua.Endpoint, "https://localhost/x", "http://127.0.0.1/x"} {
		if _, err := strict.Subscribe(e.ctx, bob, proto.PushSubscribeRequest{Platform: "webpush", Endpoint: ep, Keys: keys}); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("loopback endpoint %s: %v", ep, err)
		}
	}
	if p := strict.Platforms(); len(p) != 2 || p[0] != "webpush" || p[1] != "unifiedpush" {
		t.Errorf("an unconfigured server offers %v", p)
	}
}

func usernameOf(t *testing.T, e *env, sess chat.Session) string {
	t.Helper()
	u, err := e.chat.User(e.ctx, sess.UserID)
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}
