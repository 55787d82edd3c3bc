package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// The helpers in this file speak the wire protocol directly (no SDK), so the
// tests check exactly what PROTOCOL.md promises.

// frame is a decoded server frame.
type frame map[string]any

func (f frame) str(k string) string {
	s, _ := f[k].(string)
	return s
}

func (f frame) num(k string) int64 {
	n, _ := f[k].(float64)
	return int64(n)
}

// account is a registered user with one logged-in device.
type account struct {
	Username string
	UserID   string
	DeviceID string
	Token    string
}

var userSeq atomic.Int64

// api calls the REST API and decodes the JSON answer into out (if non-nil).
func api(t testing.TB, srv *servertest.Server, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			raw, _ := json.Marshal(b)
			rd = bytes.NewReader(raw)
		}
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: status %d, undecodable body %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// newAccount registers a fresh user and logs one device in.
func newAccount(t testing.TB, srv *servertest.Server, prefix string) account {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, userSeq.Add(1))
	var u struct {
		UserID string `json:"user_id"`
	}
	if st := api(t, srv, "POST", "/api/v1/auth/register", "", map[string]string{"username": name, "password": "password-" + name}, &u); st != http.StatusCreated {
		t.Fatalf("register %s: status %d", name, st)
	}
	a := account{Username: name, UserID: u.UserID}
	a.login(t, srv)
	return a
}

// login adds a device for the account, replacing DeviceID and Token.
func (a *account) login(t testing.TB, srv *servertest.Server) {
	t.Helper()
	var l struct {
		Token    string `json:"token"`
		DeviceID string `json:"device_id"`
		UserID   string `json:"user_id"`
	}
	if st := api(t, srv, "POST", "/api/v1/auth/login", "", map[string]string{"username": a.Username, "password": "password-" + a.Username}, &l); st != http.StatusOK {
		t.Fatalf("login %s: status %d", a.Username, st)
	}
	if l.UserID != a.UserID || l.Token == "" || l.DeviceID == "" {
		t.Fatalf("login answer incomplete: %+v", l)
	}
	a.Token, a.DeviceID = l.Token, l.DeviceID
}

func direct(t testing.TB, srv *servertest.Server, a, b account) string {
	t.Helper()
	var c struct {
		ConversationID string `json:"conversation_id"`
	}
	st := api(t, srv, "POST", "/api/v1/conversations", a.Token, map[string]string{"type": "direct", "user_id": b.UserID}, &c)
	if st != http.StatusOK && st != http.StatusCreated {
		t.Fatalf("direct conversation: status %d", st)
	}
	return c.ConversationID
}

func group(t testing.TB, srv *servertest.Server, admin account, name string, members ...account) string {
	t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	var c struct {
		ConversationID string `json:"conversation_id"`
	}
	if st := api(t, srv, "POST", "/api/v1/groups", admin.Token, map[string]any{"name": name, "members": ids}, &c); st != http.StatusCreated {
		t.Fatalf("create group: status %d", st)
	}
	return c.ConversationID
}

// sock is a raw WebSocket client that reads frames into a channel.
type sock struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan frame
	closed chan struct{}
	err    error // why reading stopped; valid after closed
	ready  frame
}

func dial(t testing.TB, srv *servertest.Server, token string) *sock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(4 << 20)
	s := &sock{t: t, ws: ws, frames: make(chan frame, 100000), closed: make(chan struct{})}
	go s.readLoop()
	t.Cleanup(func() { _ = ws.CloseNow() })
	s.ready = s.expect("ready")
	return s
}

func (s *sock) readLoop() {
	defer close(s.closed)
	for {
		_, data, err := s.ws.Read(context.Background())
		if err != nil {
			s.err = err
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			s.err = fmt.Errorf("server sent invalid JSON %q: %w", data, err)
			return
		}
		s.frames <- f
	}
}

func (s *sock) send(v any) {
	s.t.Helper()
	raw, ok := v.([]byte)
	if !ok {
		if str, isStr := v.(string); isStr {
			raw = []byte(str)
		} else {
			raw, _ = json.Marshal(v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageText, raw); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing the test after the timeout.
func (s *sock) next(timeout time.Duration) frame {
	s.t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(timeout):
		s.t.Fatalf("no frame within %s", timeout)
	case <-s.closed:
		select {
		case f := <-s.frames:
			return f
		default:
		}
		s.t.Fatalf("socket closed while waiting for a frame: %v", s.err)
	}
	return nil
}

// expect returns the next frame of type typ, failing on any other type
// except those in skip.
func (s *sock) expect(typ string, skip ...string) frame {
	s.t.Helper()
	for {
		f := s.next(10 * time.Second)
		if f.str("type") == typ {
			return f
		}
		skipped := false
		for _, k := range skip {
			skipped = skipped || f.str("type") == k
		}
		if !skipped {
			s.t.Fatalf("got frame %v, want type %q", f, typ)
		}
	}
}

// quiet asserts that no frame of the given types arrives within d.
func (s *sock) quiet(d time.Duration, types ...string) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f := <-s.frames:
			for _, typ := range types {
				if f.str("type") == typ {
					s.t.Fatalf("unexpected frame %v", f)
				}
			}
		case <-deadline:
			return
		}
	}
}

// closeStatus waits for the server to close the socket and returns the code.
func (s *sock) closeStatus(timeout time.Duration) websocket.StatusCode {
	s.t.Helper()
	select {
	case <-s.closed:
		return websocket.CloseStatus(s.err)
	case <-time.After(timeout):
		s.t.Fatalf("socket still open after %s", timeout)
	}
	return 0
}

func sendText(conv, clientID, text string) map[string]any {
	return map[string]any{"type": "send_message", "message_id": clientID, "conversation_id": conv, "content": text}
}

func jsonBody(v any) io.Reader {
	raw, _ := json.Marshal(v)
	return bytes.NewReader(raw)
}
