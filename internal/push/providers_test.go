package push_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/push"
	"github.com/parley-chat/parley/internal/push/pushtest"
)

func alert(count, badge int64) push.Notification {
	return push.NotificationFor(chat.PushJob{Kind: chat.PushAlert, ConversationID: "01JX4Z8M3Q5V7N2K9B6C1D0E4F", SenderName: "Alice", Count: count, Badge: badge, Seq: 9})
}

func clearNote(badge int64) push.Notification {
	return push.NotificationFor(chat.PushJob{Kind: chat.PushClear, ConversationID: "01JX4Z8M3Q5V7N2K9B6C1D0E4F", Badge: badge, Seq: 9})
}

func wantOutcome(t *testing.T, what string, got push.Outcome, verdict string) push.Outcome {
	t.Helper()
	if got.Verdict != verdict {
		t.Fatalf("%s: %+v, want %s", what, got, verdict)
	}
	return got
}

func TestWebPushIsEncryptedAndSignedAsTheServiceChecks(t *testing.T) {
	wp := pushtest.NewWebPush(t)
	wp.Subject = "mailto:ops@parley.example"
	e := newEnv(t, push.Config{VAPIDSubject: wp.Subject}, wp.Server, false)
	wp.VAPIDKey = e.push.VAPIDPublicKey()
	if raw, err := base64.RawURLEncoding.DecodeString(wp.VAPIDKey); err != nil || len(raw) != 65 || raw[0] != 4 {
		t.Fatalf("VAPID public key %q is not an uncompressed P-256 point", wp.VAPIDKey)
	}
	ua := wp.Subscribe(true)
	sub := chat.PushSubscription{Platform: chat.PlatformWebPush, Endpoint: ua.Endpoint, P256dh: b64(t, ua.P256dh), Auth: b64(t, ua.Auth)}

	wantOutcome(t, "first push", e.push.SendNow(e.ctx, sub, alert(5, 7)), push.OutcomeSent)
	wantOutcome(t, "clear", e.push.SendNow(e.ctx, sub, clearNote(0)), push.OutcomeSent)
	got := wp.Accepted(ua.ID)
	if len(got) != 2 {
		t.Fatalf("accepted %d", len(got))
	}
	n := got[0].Note
	if n.Type != push.TypeMessage || n.Body != "Alice sent you 5 messages" || n.Badge != 7 || n.Count != 5 || n.Title != "Parley" {
		t.Fatalf("decrypted notification %+v", n)
	}
	h := got[0].Header
	if h.Get("Topic") != n.Tag || h.Get("Urgency") != "high" || h.Get("TTL") != "86400" || h.Get("Content-Encoding") != "aes128gcm" {
		t.Fatalf("headers %v", h)
	}
	if c := got[1].Note; c.Type != push.TypeClear || c.Badge != 0 || c.Body != "" || c.Title != "" || got[1].Header.Get("Topic") != n.Tag {
		t.Fatalf("clear %+v", c)
	}
	// One VAPID JWT per origin, reused.
	if a, b := got[0].Header.Get("Authorization"), got[1].Header.Get("Authorization"); a != b {
		t.Fatalf("VAPID token not reused:\n%s\n%s", a, b)
	}

	wp.Script(ua.ID, pushtest.Response{Status: 429, RetryAfter: "17"}, pushtest.Response{Status: 503}, pushtest.Response{Status: 400})
	if o := wantOutcome(t, "429", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeRetry); o.RetryAfter != 17*time.Second {
		t.Fatalf("Retry-After read as %s", o.RetryAfter)
	}
	wantOutcome(t, "503", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeRetry)
	wantOutcome(t, "400", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeFailed)
	wp.Forget(ua.ID)
	wantOutcome(t, "410", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeGone)
}

func TestUnifiedPushPostsToTheDistributorEncryptedOrPlain(t *testing.T) {
	up := pushtest.NewUnifiedPush(t)
	e := newEnv(t, push.Config{}, up.Server, false)
	keyed, plain := up.Subscribe(true), up.Subscribe(false)
	wantOutcome(t, "encrypted", e.push.SendNow(e.ctx, chat.PushSubscription{Platform: chat.PlatformUnifiedPush, Endpoint: keyed.Endpoint,
		P256dh: b64(t, keyed.P256dh), Auth: b64(t, keyed.Auth)}, alert(2, 2)), push.OutcomeSent)
	wantOutcome(t, "plain", e.push.SendNow(e.ctx, chat.PushSubscription{Platform: chat.PlatformUnifiedPush, Endpoint: plain.Endpoint}, alert(3, 3)), push.OutcomeSent)
	if n := up.Accepted(keyed.ID); len(n) != 1 || n[0].Note.Body != "Alice sent you 2 messages" || n[0].Header.Get("Content-Encoding") != "aes128gcm" {
		t.Fatalf("encrypted: %+v", n)
	}
	if n := up.Accepted(plain.ID); len(n) != 1 || n[0].Note.Body != "Alice sent you 3 messages" || n[0].Header.Get("Content-Encoding") != "" {
		t.Fatalf("plain: %+v", n)
	}
}

func TestAPNsOverHTTP2WithACachedProviderToken(t *testing.T) {
	ap := pushtest.NewAPNs(t)
	e := newEnv(t, push.Config{APNs: ap.Config()}, ap.Server, false)
	clk := e.clock
	ap.SetNow(clk.Now) // the receiver judges iat by the same clock as the sender
	tok := pushtest.DeviceToken()
	sub := chat.PushSubscription{Platform: chat.PlatformAPNs, Endpoint: tok}

	wantOutcome(t, "alert", e.push.SendNow(e.ctx, sub, alert(5, 7)), push.OutcomeSent)
	wantOutcome(t, "clear", e.push.SendNow(e.ctx, sub, clearNote(0)), push.OutcomeSent)
	got := ap.Accepted(tok)
	if len(got) != 2 {
		t.Fatalf("accepted %d", len(got))
	}
	h := got[0].Header
	if h.Get("apns-push-type") != "alert" || h.Get("apns-priority") != "10" || h.Get("apns-collapse-id") != got[0].Note.Tag || h.Get("apns-topic") != ap.Topic || h.Get("apns-expiration") == "" {
		t.Fatalf("alert headers %v", h)
	}
	if n := got[0].Note; n.Body != "Alice sent you 5 messages" || n.Badge != 7 || n.Type != push.TypeMessage {
		t.Fatalf("alert %+v", n)
	}
	if n, h := got[1].Note, got[1].Header; n.Type != push.TypeClear || n.Badge != 0 || n.Body != "" || h.Get("apns-priority") != "5" || bytes.Contains(got[1].Raw, []byte(`"alert"`)) {
		t.Fatalf("clear %+v %v %s", n, h, got[1].Raw)
	}
	if n := len(ap.ProviderTokens()); n != 1 {
		t.Fatalf("%d provider tokens for two pushes, want one cached", n)
	}
	// Renewed before its hour runs out.
	clk.Advance(51 * time.Minute)
	wantOutcome(t, "after 51 minutes", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeSent)
	if n := len(ap.ProviderTokens()); n != 2 {
		t.Fatalf("%d provider tokens after 51 minutes, want a renewed one", n)
	}
	// Apple says it expired (clock skew): renewed at once (it is old enough) and resent.
	clk.Advance(25 * time.Minute)
	ap.Script(tok, pushtest.Response{Status: 403, Reason: "ExpiredProviderToken"})
	wantOutcome(t, "expired token", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeSent)
	if n := len(ap.ProviderTokens()); n != 3 {
		t.Fatalf("%d provider tokens, want a third after ExpiredProviderToken", n)
	}

	for _, c := range []struct {
		resp    pushtest.Response
		verdict string
	}{
		{pushtest.Response{Status: 410, Reason: "Unregistered"}, push.OutcomeGone},
		{pushtest.Response{Status: 400, Reason: "BadDeviceToken"}, push.OutcomeGone},
		{pushtest.Response{Status: 429, Reason: "TooManyRequests"}, push.OutcomeRetry},
		{pushtest.Response{Status: 503, Reason: "ServiceUnavailable", RetryAfter: "3"}, push.OutcomeRetry},
		{pushtest.Response{Status: 400, Reason: "PayloadTooLarge"}, push.OutcomeFailed},
	} {
		ap.Script(tok, c.resp)
		o := wantOutcome(t, c.resp.Reason, e.push.SendNow(e.ctx, sub, alert(1, 1)), c.verdict)
		if o.Reason != c.resp.Reason {
			t.Fatalf("reason %q, want %q", o.Reason, c.resp.Reason)
		}
		if c.resp.RetryAfter == "3" && o.RetryAfter != 3*time.Second {
			t.Fatalf("Retry-After %s", o.RetryAfter)
		}
	}
}

func TestAPNsRefusesToSpeakHTTP1(t *testing.T) {
	h1 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("APNs request over HTTP/%d reached the server", r.ProtoMajor)
	}))
	h1.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	h1.StartTLS()
	defer h1.Close()
	ap := pushtest.NewAPNs(t)
	cfg := ap.Config()
	cfg.Endpoint = h1.URL
	e := newEnv(t, push.Config{APNs: cfg}, h1, false)
	wantOutcome(t, "HTTP/1.1 server", e.push.SendNow(e.ctx, chat.PushSubscription{Platform: chat.PlatformAPNs, Endpoint: pushtest.DeviceToken()}, alert(1, 1)), push.OutcomeRetry)
}

func TestFCMWithACachedOAuthToken(t *testing.T) {
	fc := pushtest.NewFCM(t)
	fc.TokenLifetime = 10 * time.Minute
	e := newEnv(t, push.Config{FCM: fc.Config()}, fc.Server, false)
	clk := e.clock
	fc.SetNow(clk.Now)
	sub := chat.PushSubscription{Platform: chat.PlatformFCM, Endpoint: "fcm-token-1"}

	wantOutcome(t, "alert", e.push.SendNow(e.ctx, sub, alert(5, 7)), push.OutcomeSent)
	wantOutcome(t, "clear", e.push.SendNow(e.ctx, sub, clearNote(0)), push.OutcomeSent)
	if n := fc.Exchanges(); n != 1 {
		t.Fatalf("%d token exchanges for two sends, want one", n)
	}
	got := fc.Accepted("fcm-token-1")
	if n := got[0].Note; n.Body != "Alice sent you 5 messages" || n.Badge != 7 || n.Count != 5 || n.Type != push.TypeMessage || n.Tag == "" {
		t.Fatalf("alert %+v\n%s", n, got[0].Raw)
	}
	if n := got[1].Note; n.Type != push.TypeClear || n.Body != "" || bytes.Contains(got[1].Raw, []byte(`"notification":{"title"`)) {
		t.Fatalf("clear %+v\n%s", n, got[1].Raw)
	}
	// Replaced shortly before it expires (10 min lifetime, 5 min margin).
	clk.Advance(6 * time.Minute)
	wantOutcome(t, "after 6 minutes", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeSent)
	if n := fc.Exchanges(); n != 2 {
		t.Fatalf("%d exchanges, want a fresh token after 6 of 10 minutes", n)
	}
	// A token revoked early: one renewal, then the send goes through.
	fc.RevokeTokens()
	wantOutcome(t, "revoked token", e.push.SendNow(e.ctx, sub, alert(1, 1)), push.OutcomeSent)
	if n := fc.Exchanges(); n != 3 {
		t.Fatalf("%d exchanges after a revocation", n)
	}

	for _, c := range []struct {
		resp    pushtest.Response
		verdict string
	}{
		{pushtest.Response{Status: 404, Reason: "UNREGISTERED"}, push.OutcomeGone},
		{pushtest.Response{Status: 403, Reason: "SENDER_ID_MISMATCH"}, push.OutcomeGone},
		{pushtest.Response{Status: 429, Reason: "QUOTA_EXCEEDED", RetryAfter: "30"}, push.OutcomeRetry},
		{pushtest.Response{Status: 503, Reason: "UNAVAILABLE"}, push.OutcomeRetry},
		{pushtest.Response{Status: 400, Reason: "INVALID_ARGUMENT"}, push.OutcomeFailed},
	} {
		fc.Script("fcm-token-1", c.resp)
		o := wantOutcome(t, c.resp.Reason, e.push.SendNow(e.ctx, sub, alert(1, 1)), c.verdict)
		if c.resp.RetryAfter == "30" && o.RetryAfter != 30*time.Second {
			t.Fatalf("Retry-After %s", o.RetryAfter)
		}
	}
}

func TestFCMRefusedCredentialsAreNotRetried(t *testing.T) {
	fc := pushtest.NewFCM(t)
	other := pushtest.NewFCM(t) // a key the token endpoint does not know
	raw, err := os.ReadFile(other.CredentialsFile)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Replace(raw, []byte(other.Server.URL), []byte(fc.Server.URL), 1)
	creds := filepath.Join(t.TempDir(), "wrong.json")
	if err := os.WriteFile(creds, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, push.Config{FCM: push.FCMConfig{CredentialsFile: creds, Endpoint: fc.Server.URL}}, fc.Server, false)
	wantOutcome(t, "wrong key", e.push.SendNow(e.ctx, chat.PushSubscription{Platform: chat.PlatformFCM, Endpoint: "t"}, alert(1, 1)), push.OutcomeFailed)
	if f := fc.TakeFailures(); len(f) != 1 {
		t.Fatalf("the token endpoint should have refused the assertion once: %q", f)
	}
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
