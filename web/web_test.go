package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The service worker must be served as JavaScript from the root (its scope
// is then the whole app), under the app's CSP, and revalidated on every
// update check.
func TestServiceWorkerHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/sw.js", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /sw.js: %d", rec.Code)
	}
	h := rec.Header()
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q, want text/javascript", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q lacks script-src 'self'", csp)
	}
	if !strings.Contains(rec.Body.String(), "addEventListener('push'") {
		t.Error("/sw.js has no push handler")
	}

	rec = httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/js/main.js", nil))
	if cc := rec.Header().Get("Cache-Control"); cc != "" {
		t.Errorf("/js/main.js Cache-Control %q: only the service worker is marked", cc)
	}
}
