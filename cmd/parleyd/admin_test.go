package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

func post(t *testing.T, url, token string, body any, out any) int {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(raw))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// The operators' side of reports and suspension: "parleyd admin" against
// the data directory of a running server.
func TestAdminReportsAndSuspension(t *testing.T) {
	srv := servertest.Start(t)
	ctx := t.Context()
	type session struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	login := func(name string) session {
		post(t, srv.URL+"/api/v1/auth/register", "", map[string]string{"username": name, "password": "password-" + name}, nil)
		var s session
		if st := post(t, srv.URL+"/api/v1/auth/login", "", map[string]string{"username": name, "password": "password-" + name}, &s); st != 200 {
			t.Fatalf("login %s: %d", name, st)
		}
		return s
	}
	alice, mallory := login("alice"), login("mallory")
	var conv struct {
		ID string `json:"conversation_id"`
	}
	post(t, srv.URL+"/api/v1/conversations", mallory.Token, map[string]string{"type": "direct", "user_id": alice.UserID}, &conv)
	ws, _, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + mallory.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	_, _, _ = ws.Read(ctx) // ready
	frame, _ := json.Marshal(map[string]any{"type": "send_message", "message_id": "m1", "conversation_id": conv.ID, "content": "buy \u202echeap\u202c pills"})
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		t.Fatal(err)
	}
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"ack"`) {
		t.Fatalf("send: %s %v", data, err)
	}
	if st := post(t, srv.URL+"/api/v1/reports", alice.Token, map[string]any{"conversation_id": conv.ID, "seq": 1, "reason": "spam"}, nil); st != 201 {
		t.Fatalf("report: %d", st)
	}

	adm := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"admin", "--data-dir", srv.Config.DataDir}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	code, out := adm("reports")
	if code != 0 || !strings.Contains(out, "by @alice") || !strings.Contains(out, "by @mallory") || !strings.Contains(out, `\u202echeap`) || !strings.Contains(out, "spam") {
		t.Fatalf("admin reports: %d\n%s", code, out)
	}
	id := strings.Fields(out)[1]
	if code, out := adm("resolve", id, "suspended", "the", "sender"); code != 0 {
		t.Fatalf("admin resolve: %d %s", code, out)
	}
	if _, out := adm("reports"); !strings.Contains(out, "no reports") {
		t.Fatalf("open reports after resolving: %s", out)
	}
	if code, out := adm("suspend", "mallory", "spam"); code != 0 {
		t.Fatalf("admin suspend: %d %s", code, out)
	}
	// Her open socket is closed (440) within the service's suspension poll.
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		_, data, err := ws.Read(rctx)
		if err != nil {
			t.Fatalf("the suspended user's socket stayed open: %v", err)
		}
		if strings.Contains(string(data), `"status":440`) {
			break
		}
	}
	// Her token stops at once; her logins get 403 suspended.
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+mallory.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("a suspended user's token: %v %v, want 401", resp.StatusCode, err)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if st := post(t, srv.URL+"/api/v1/auth/login", "", map[string]string{"username": "mallory", "password": "password-mallory"}, &e); st != 403 || e.Error.Code != "suspended" {
		t.Fatalf("login of a suspended user: %d %+v, want 403 suspended", st, e)
	}
	if st := post(t, srv.URL+"/api/v1/auth/login", "", map[string]string{"username": "mallory", "password": "wrong-password"}, nil); st != 401 {
		t.Fatalf("wrong password of a suspended user: %d, want 401 (no oracle)", st)
	}
	if code, _ := adm("unsuspend", "mallory"); code != 0 {
		t.Fatal("unsuspend failed")
	}
	if st := post(t, srv.URL+"/api/v1/auth/login", "", map[string]string{"username": "mallory", "password": "password-mallory"}, nil); st != 200 {
		t.Fatalf("login after unsuspend: %d", st)
	}
	if code, _ := adm("bogus"); code != 2 {
		t.Fatalf("unknown admin command: exit %d, want 2", code)
	}
}

// --registration invite: a single-use invite from "parleyd admin invite".
func TestAdminInvite(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Registration = "invite" })
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	reg := func(name, invite string) int {
		return post(t, srv.URL+"/api/v1/auth/register", "", map[string]string{"username": name, "password": "password-" + name, "invite": invite}, &e)
	}
	if st := reg("walkin", ""); st != 403 || e.Error.Code != "registration_closed" {
		t.Fatalf("register without an invite: %d %+v, want 403 registration_closed", st, e)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"admin", "--data-dir", srv.Config.DataDir, "invite", "1h"}, &out, &errb); code != 0 {
		t.Fatalf("admin invite: %d %s", code, errb.String())
	}
	invite := strings.TrimSpace(out.String())
	if st := reg("x!", invite); st != 422 {
		t.Fatalf("invalid name with an invite: %d, want 422", st)
	}
	if st := reg("guest", invite); st != 201 {
		t.Fatalf("register with the invite (given back after the failed attempt): %d, want 201", st)
	}
	if st := reg("second", invite); st != 403 {
		t.Fatalf("the invite used twice: %d, want 403", st)
	}
}
