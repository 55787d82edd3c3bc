package e2e

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

func TestWebSocketOriginCheck(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.AllowedOrigins = []string{"chat.example.org"} })
	alice := newAccount(t, srv, "alice")
	host := strings.TrimPrefix(srv.URL, "http://")
	for origin, ok := range map[string]bool{
		"":                         true, // native clients send none
		"http://" + host:           true, // same origin
		"https://chat.example.org": true, // allow-listed
		"https://evil.example.com": false,
		"null":                     false,
	} {
		h := http.Header{"Authorization": {"Bearer " + alice.Token}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, resp, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{HTTPHeader: h})
		cancel()
		if ok && err != nil {
			t.Fatalf("origin %q refused: %v", origin, err)
		}
		if !ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Fatalf("origin %q: err=%v resp=%v, want 403", origin, err, resp)
		}
		if ws != nil {
			ws.CloseNow()
		}
	}
}

func TestWebClientSecurityHeaders(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Fatalf("CSP allows inline or eval: %q", csp)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if got := resp.Header.Get(h); got != want {
			t.Fatalf("%s = %q, want %q", h, got, want)
		}
	}
}

// TestSlowHeadersAreCutOff: a client that trickles its request headers
// (slowloris) is disconnected by the header timeout, and others are served
// meanwhile.
func TestSlowHeadersAreCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 10 s header timeout")
	}
	srv := servertest.Start(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	closed := make(chan time.Duration, 1)
	go func() {
		buf := bufio.NewReader(c)
		for {
			if _, err := buf.ReadByte(); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case d := <-closed:
			if d > 20*time.Second {
				t.Fatalf("slow client held its connection %s", d)
			}
			return
		case <-tick.C:
			_, _ = c.Write([]byte("X-Slow: 1\r\n")) // one header a second, never the end
			if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
				t.Fatalf("another client not served while one trickles: %v", err)
			} else {
				resp.Body.Close()
			}
		case <-time.After(30 * time.Second):
			t.Fatal("slow client never cut off")
		}
	}
}
