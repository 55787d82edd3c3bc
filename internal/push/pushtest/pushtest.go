// Package pushtest runs local stand-ins for the push services that check
// what the real ones check, for tests of package push and end-to-end tests:
//
//   - WebPush: an HTTPS (HTTP/2) push service that verifies the RFC 8292
//     VAPID JWT (ES256 signature with the key in k=, aud = its origin, exp
//     within 24 h, sub mailto:/https:) and decrypts the RFC 8291 aes128gcm
//     body with the subscription's private key and auth secret; in
//     UnifiedPush mode it checks no VAPID and accepts plaintext too.
//   - APNs: an HTTP/2-only provider API that verifies the ES256 provider
//     token (kid, iss, a fresh iat) and the apns-* headers.
//   - FCM: the OAuth2 token endpoint (verifying the RS256 service-account
//     assertion and its claims) and the HTTP v1 send endpoint (checking the
//     bearer token and the message).
//
// Each records what it accepted, normalized to a push.Notification, and can
// be scripted to answer errors (410, 429 with Retry-After, 503, ...) for a
// given target. A failed check answers the error the service would and is
// reported as a test error when the test ends.
package pushtest

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/push"
)

// Received is one request a receiver got.
type Received struct {
	Target string            // subscription id, device token or registration token
	Status int               // what the receiver answered
	Note   push.Notification // the notification as the app sees it (accepted requests)
	Raw    []byte            // the decrypted payload (Web Push) or the JSON body
	Header http.Header
	At     time.Time
}

// Response is a scripted answer.
type Response struct {
	Status     int
	RetryAfter string // Retry-After header value
	Reason     string // APNs reason or FCM errorCode
	// Hold, if set, runs once the request passed the checks and before it
	// is answered (Web Push and UnifiedPush): a test blocks in it to hold a
	// send in flight. Status 0 then answers as if unscripted.
	Hold func()
}

// recorder is what every receiver shares: the requests, the script and the
// failed checks.
type recorder struct {
	t      testing.TB
	mu     sync.Mutex
	got    []Received
	script map[string][]Response
	errs   []string
	now    func() time.Time
	ok     int // accepted requests
}

func newRecorder(t testing.TB) *recorder {
	r := &recorder{t: t, script: map[string][]Response{}, now: time.Now}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.errs {
			t.Errorf("push receiver: %s", e)
		}
	})
	return r
}

// failf records a failed check.
func (r *recorder) failf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// TakeFailures returns the failed checks so far and forgets them: for a
// test that provokes one on purpose.
func (r *recorder) TakeFailures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.errs
	r.errs = nil
	return errs
}

// Script queues answers for target, given before it is accepted again.
func (r *recorder) Script(target string, rs ...Response) {
	r.mu.Lock()
	r.script[target] = append(r.script[target], rs...)
	r.mu.Unlock()
}

// scripted pops the next scripted answer for target.
func (r *recorder) scripted(target string) (Response, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.script[target]
	if len(q) == 0 {
		return Response{}, false
	}
	r.script[target] = q[1:]
	return q[0], true
}

func (r *recorder) add(rec Received) {
	rec.At = time.Now()
	r.mu.Lock()
	r.got = append(r.got, rec)
	if rec.Status >= 200 && rec.Status < 300 {
		r.ok++
	}
	r.mu.Unlock()
}

// AcceptedCount counts the notifications accepted for every target.
func (r *recorder) AcceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok
}

// SetNow replaces the clock the checks use (iat, exp freshness).
func (r *recorder) SetNow(now func() time.Time) {
	r.mu.Lock()
	r.now = now
	r.mu.Unlock()
}

func (r *recorder) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now()
}

// Attempts lists every request for target ("" : all), accepted or not.
func (r *recorder) Attempts(target string) []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Received
	for _, g := range r.got {
		if target == "" || g.Target == target {
			out = append(out, g)
		}
	}
	return out
}

// Accepted lists the notifications accepted for target ("" : all).
func (r *recorder) Accepted(target string) []Received {
	var out []Received
	for _, g := range r.Attempts(target) {
		if g.Status >= 200 && g.Status < 300 {
			out = append(out, g)
		}
	}
	return out
}

// Wait returns once n notifications were accepted for target, failing the
// test after timeout.
func (r *recorder) Wait(t testing.TB, target string, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.Accepted(target)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("push receiver: %d notifications for %q within %s, want %d (attempts: %d)", len(got), target, timeout, n, len(r.Attempts(target)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startTLS serves h over HTTPS on 127.0.0.1, with HTTP/2 when h2 is set.
func startTLS(t testing.TB, h http.Handler, h2 bool) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// WriteCAFile writes the certificate of a receiver's server (every
// httptest TLS server shares it) to a PEM file for --push-ca-file.
func WriteCAFile(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "push-ca.pem")
	raw := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
