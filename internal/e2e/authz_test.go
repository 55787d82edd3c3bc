package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/media/mediatest"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// TestAuthorizationMatrix tries every REST endpoint and every WebSocket
// frame as each kind of caller that must be refused, and checks the status
// code of PROTOCOL.md section 7 and that the error body carries nothing but
// the error.
func TestAuthorizationMatrix(t *testing.T) {
	srv := servertest.Start(t)
	admin, member, stranger, removed := newAccount(t, srv, "admin"), newAccount(t, srv, "member"), newAccount(t, srv, "stranger"), newAccount(t, srv, "removed")
	grp := group(t, srv, admin, "secret plans", member, removed)
	dm := direct(t, srv, admin, member)
	media := upload(t, srv, admin.Token, encodePNG(t, mediatest.Quadrants(8, 8)))
	a := dial(t, srv, admin.Token)
	a.send(map[string]any{"type": "send_message", "message_id": "authz-1", "conversation_id": grp, "content": "top secret text", "content_type": "image", "media_id": media.MediaID})
	a.expect("ack")
	if st := api(t, srv, "DELETE", "/api/v1/groups/"+grp+"/members/"+removed.UserID, admin.Token, nil, nil); st != 204 {
		t.Fatalf("removing: %d", st)
	}
	revoked := newAccount(t, srv, "revoked")
	if st := api(t, srv, "POST", "/api/v1/auth/logout", revoked.Token, nil, nil); st != 204 {
		t.Fatalf("logout: %d", st)
	}

	type who struct {
		name  string
		token string
		want  int
	}
	nobody, gone := who{"no token", "", 401}, who{"revoked token", revoked.Token, 401}
	garbage := who{"forged token", "forged-" + strings.Repeat("x", 40), 401}
	notMember := func(want int) who { return who{"non-member", stranger.Token, want} }
	exMember := func(want int) who { return who{"removed member", removed.Token, want} }
	nonAdmin := who{"non-admin", member.Token, 403}
	everyone := func(extra ...who) []who { return append([]who{nobody, gone, garbage}, extra...) }

	tests := []struct {
		method, path string
		body         any
		callers      []who
	}{
		{"POST", "/api/v1/auth/logout", nil, everyone()},
		{"GET", "/api/v1/users/me", nil, everyone()},
		{"DELETE", "/api/v1/users/me/devices/" + admin.DeviceID, nil, everyone(who{"another user", member.Token, 404})},
		{"GET", "/api/v1/users/" + admin.UserID, nil, everyone()},
		{"GET", "/api/v1/users?username=" + admin.Username, nil, everyone()},
		{"POST", "/api/v1/conversations", map[string]string{"type": "direct", "user_id": admin.UserID}, everyone()},
		{"GET", "/api/v1/conversations", nil, everyone()},
		{"GET", "/api/v1/conversations/" + grp, nil, everyone(notMember(403), exMember(403))},
		{"GET", "/api/v1/conversations/" + dm, nil, everyone(notMember(403))},
		{"GET", "/api/v1/conversations/" + grp + "/messages", nil, everyone(notMember(403), exMember(403))},
		{"GET", "/api/v1/conversations/" + grp + "/messages?after=0", nil, everyone(notMember(403), exMember(403))},
		{"GET", "/api/v1/conversations/" + dm + "/messages?before=0", nil, everyone(notMember(403))},
		{"POST", "/api/v1/groups", map[string]any{"name": "x", "members": []string{}}, everyone()},
		{"POST", "/api/v1/groups/" + grp + "/members", map[string]any{"user_ids": []string{stranger.UserID}}, everyone(nonAdmin, notMember(403), exMember(403))},
		{"DELETE", "/api/v1/groups/" + grp + "/members/" + admin.UserID, nil, everyone(nonAdmin, notMember(403), exMember(403))},
		{"PATCH", "/api/v1/groups/" + grp, map[string]string{"name": "mine"}, everyone(nonAdmin, notMember(403), exMember(403))},
		{"PUT", "/api/v1/keys", keyUpload(t, 1), everyone()},
		{"GET", "/api/v1/keys/count", nil, everyone()},
		{"GET", "/api/v1/keys/" + admin.UserID, nil, everyone()},
		{"POST", "/api/v1/media", "bytes", everyone()},
		{"GET", "/api/v1/media/" + media.MediaID, nil, everyone(notMember(403), exMember(403))},
		{"POST", "/api/v1/push/subscriptions", map[string]any{"platform": "webpush"}, everyone()},
		{"DELETE", "/api/v1/push/subscriptions/01NOSUCH", nil, everyone()},
		{"GET", "/api/v1/push/vapid-public-key", nil, everyone()},
		{"GET", "/api/v1/ws", nil, everyone()},
	}
	for _, tt := range tests {
		for _, c := range tt.callers {
			t.Run(fmt.Sprintf("%s %s as %s", tt.method, tt.path, c.name), func(t *testing.T) {
				got, raw := rawCall(t, srv, tt.method, tt.path, c.token, tt.body)
				if got != c.want {
					t.Fatalf("status %d, want %d: %s", got, c.want, raw)
				}
				checkBareError(t, raw, got)
			})
		}
	}

	// Frames about the group from people who are not (or no longer) in it.
	frames := []map[string]any{
		sendText(grp, "authz-2", "let me in"),
		{"type": "typing", "conversation_id": grp, "state": "typing"},
		{"type": "message_status", "conversation_id": grp, "seq": 1, "status": "read"},
	}
	for _, acct := range []account{stranger, removed} {
		s := dial(t, srv, acct.Token)
		for _, f := range frames {
			s.send(f)
			e := s.expect("error", "conversation_updated")
			if e.num("status") != 403 {
				t.Fatalf("%s sending %v: %v", acct.Username, f["type"], e)
			}
			raw, _ := json.Marshal(e)
			if strings.Contains(string(raw), "top secret") || strings.Contains(string(raw), "secret plans") {
				t.Fatalf("error frame leaks data: %s", raw)
			}
		}
		// A sync lists only the conversations the caller is still in.
		s.send(map[string]any{"type": "sync", "cursors": map[string]int64{grp: 0}})
		done := s.expect("sync_complete", "new_message")
		if convs, _ := done["conversations"].(map[string]any); convs[grp] != nil {
			t.Fatalf("%s's sync lists the group: %v", acct.Username, done)
		}
	}
}

func rawCall(t *testing.T, srv *servertest.Server, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		rd = jsonBody(b)
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
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// checkBareError checks that an error body is exactly {"error":{status,code,message}}
// and mentions none of the protected content.
func checkBareError(t *testing.T, raw []byte, status int) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || len(top) != 1 || top["error"] == nil {
		t.Fatalf("error body is not {\"error\":...}: %s", raw)
	}
	var e map[string]any
	_ = json.Unmarshal(top["error"], &e)
	if len(e) != 3 || e["status"] != float64(status) || e["code"] == "" || e["message"] == "" {
		t.Fatalf("error object %s", top["error"])
	}
	for _, secret := range []string{"top secret", "secret plans", "members", "content"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("error body leaks %q: %s", secret, raw)
		}
	}
}
