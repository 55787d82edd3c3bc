package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

type apiError struct {
	Error struct {
		Status  int    `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestRESTStatusCodes(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, carol := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "carol")
	conv := direct(t, srv, alice, bob)
	grp := group(t, srv, alice, "team", bob)
	tests := []struct {
		name   string
		method string
		path   string
		token  string
		body   any
		want   int
	}{
		{"register taken", "POST", "/api/v1/auth/register", "", map[string]string{"username": alice.Username, "password": "password1"}, 409},
		{"register bad username", "POST", "/api/v1/auth/register", "", map[string]string{"username": "A!", "password": "password1"}, 422},
		{"register short password", "POST", "/api/v1/auth/register", "", map[string]string{"username": "someone", "password": "short"}, 422},
		{"register missing password", "POST", "/api/v1/auth/register", "", map[string]string{"username": "someone"}, 400},
		{"register malformed JSON", "POST", "/api/v1/auth/register", "", `{"username":`, 400},
		{"register wrong type", "POST", "/api/v1/auth/register", "", `{"username":5,"password":"password1"}`, 400},
		{"login wrong password", "POST", "/api/v1/auth/login", "", map[string]string{"username": alice.Username, "password": "nope-nope"}, 401},
		{"login unknown user", "POST", "/api/v1/auth/login", "", map[string]string{"username": "nobody-here", "password": "password1"}, 401},
		{"me without token", "GET", "/api/v1/users/me", "", nil, 401},
		{"me with bad token", "GET", "/api/v1/users/me", "not-a-token", nil, 401},
		{"me", "GET", "/api/v1/users/me", alice.Token, nil, 200},
		{"unknown user", "GET", "/api/v1/users/01NOSUCHUSER", alice.Token, nil, 404},
		{"user", "GET", "/api/v1/users/" + bob.UserID, alice.Token, nil, 200},
		{"find user", "GET", "/api/v1/users?username=" + bob.Username, alice.Token, nil, 200},
		{"direct with self", "POST", "/api/v1/conversations", alice.Token, map[string]string{"type": "direct", "user_id": alice.UserID}, 422},
		{"direct with unknown", "POST", "/api/v1/conversations", alice.Token, map[string]string{"type": "direct", "user_id": "01NOSUCHUSER"}, 404},
		{"direct existing", "POST", "/api/v1/conversations", alice.Token, map[string]string{"type": "direct", "user_id": bob.UserID}, 200},
		{"conversation as non-member", "GET", "/api/v1/conversations/" + conv, carol.Token, nil, 403},
		{"unknown conversation", "GET", "/api/v1/conversations/01NOSUCHCONV", alice.Token, nil, 404},
		{"history as non-member", "GET", "/api/v1/conversations/" + conv + "/messages", carol.Token, nil, 403},
		{"history bad cursor", "GET", "/api/v1/conversations/" + conv + "/messages?before=x", alice.Token, nil, 400},
		{"history both cursors", "GET", "/api/v1/conversations/" + conv + "/messages?before=3&after=1", alice.Token, nil, 400},
		{"group without name", "POST", "/api/v1/groups", alice.Token, map[string]any{"members": []string{bob.UserID}}, 400},
		{"group with unknown member", "POST", "/api/v1/groups", alice.Token, map[string]any{"name": "x", "members": []string{"01NOSUCHUSER"}}, 404},
		{"add members as non-admin", "POST", "/api/v1/groups/" + grp + "/members", bob.Token, map[string]any{"user_ids": []string{carol.UserID}}, 403},
		{"add members as non-member", "POST", "/api/v1/groups/" + grp + "/members", carol.Token, map[string]any{"user_ids": []string{carol.UserID}}, 403},
		{"rename as non-admin", "PATCH", "/api/v1/groups/" + grp, bob.Token, map[string]string{"name": "mine"}, 403},
		{"remove someone as non-admin", "DELETE", "/api/v1/groups/" + grp + "/members/" + alice.UserID, bob.Token, nil, 403},
		{"remove non-member", "DELETE", "/api/v1/groups/" + grp + "/members/" + carol.UserID, alice.Token, nil, 404},
		{"group ops on a direct conversation", "PATCH", "/api/v1/groups/" + conv, alice.Token, map[string]string{"name": "x"}, 404},
		{"unknown endpoint", "GET", "/api/v1/nothing", alice.Token, nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e apiError
			got := api(t, srv, tt.method, tt.path, tt.token, tt.body, &e)
			if got != tt.want {
				t.Fatalf("status %d, want %d (%+v)", got, tt.want, e)
			}
			if got >= 400 && (e.Error.Status != got || e.Error.Code == "" || e.Error.Message == "") {
				t.Fatalf("error body %+v does not carry status, code and message", e)
			}
		})
	}
}

func TestGroupLifecycle(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MaxGroupMembers = 3 })
	alice, bob, carol, dave := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "carol"), newAccount(t, srv, "dave")
	if st := api(t, srv, "POST", "/api/v1/groups", alice.Token, map[string]any{"name": "x", "members": []string{bob.UserID, carol.UserID, dave.UserID}}, nil); st != 422 {
		t.Fatalf("group of 4 with a limit of 3: status %d", st)
	}
	grp := group(t, srv, alice, "trio", bob)
	bs := dial(t, srv, bob.Token)
	var conv struct {
		Name    string `json:"name"`
		Members []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
		} `json:"members"`
	}
	if st := api(t, srv, "POST", "/api/v1/groups/"+grp+"/members", alice.Token, map[string]any{"user_ids": []string{carol.UserID}}, &conv); st != 200 || len(conv.Members) != 3 {
		t.Fatalf("add member: status %d, %+v", st, conv)
	}
	if up := bs.expect("conversation_updated"); up.str("change") != "member_added" || up.str("conversation_id") != grp {
		t.Fatalf("bob was told %v", up)
	}
	if st := api(t, srv, "POST", "/api/v1/groups/"+grp+"/members", alice.Token, map[string]any{"user_ids": []string{dave.UserID}}, nil); st != 422 {
		t.Fatalf("4th member: status %d, want 422", st)
	}
	if st := api(t, srv, "PATCH", "/api/v1/groups/"+grp, alice.Token, map[string]string{"name": "renamed"}, &conv); st != 200 || conv.Name != "renamed" {
		t.Fatalf("rename: %d %+v", st, conv)
	}
	if up := bs.expect("conversation_updated"); up.str("change") != "renamed" {
		t.Fatalf("bob was told %v", up)
	}
	// Alice (the only admin) leaves: the longest-standing member becomes admin.
	if st := api(t, srv, "DELETE", "/api/v1/groups/"+grp+"/members/"+alice.UserID, alice.Token, nil, nil); st != 204 {
		t.Fatalf("leave: %d", st)
	}
	if st := api(t, srv, "GET", "/api/v1/conversations/"+grp, alice.Token, nil, nil); st != 403 {
		t.Fatalf("a member who left reads the group: status %d", st)
	}
	api(t, srv, "GET", "/api/v1/conversations/"+grp, bob.Token, nil, &conv)
	for _, m := range conv.Members {
		if m.UserID == bob.UserID && m.Role != "admin" {
			t.Fatalf("bob not promoted after the last admin left: %+v", conv)
		}
	}
	// Bob, now admin, removes carol; carol can no longer post.
	cs := dial(t, srv, carol.Token)
	if st := api(t, srv, "DELETE", "/api/v1/groups/"+grp+"/members/"+carol.UserID, bob.Token, nil, nil); st != 204 {
		t.Fatalf("remove: %d", st)
	}
	if up := cs.expect("conversation_updated"); up.str("change") != "member_removed" {
		t.Fatalf("carol was told %v", up)
	}
	cs.send(sendText(grp, "late-1", "am I still here?"))
	if e := cs.expect("error"); e.num("status") != 403 || e.str("ref") != "late-1" {
		t.Fatalf("removed member posting: %v", e)
	}
}

func TestFrameErrorsKeepTheSocketOpen(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, carol := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "carol")
	conv := direct(t, srv, alice, bob)
	s := dial(t, srv, carol.Token)
	tests := []struct {
		name   string
		frame  any
		status int64
		ref    string
	}{
		{"not JSON", "{nope", 400, ""},
		{"no type", `{"message_id":"x"}`, 400, "x"},
		{"unknown type", `{"type":"teleport"}`, 400, ""},
		{"send without message_id", map[string]any{"type": "send_message", "conversation_id": conv, "content": "x"}, 400, ""},
		{"send without conversation", map[string]any{"type": "send_message", "message_id": "e1", "content": "x"}, 400, "e1"},
		{"send with a bad content_type", map[string]any{"type": "send_message", "message_id": "e2", "conversation_id": conv, "content": "x", "content_type": "hologram"}, 400, "e2"},
		{"send to a conversation of others", sendText(conv, "e3", "let me in"), 403, "e3"},
		{"send to an unknown conversation", sendText("01NOSUCHCONV", "e4", "x"), 404, "e4"},
		{"send too large", sendText(conv, "e5", strings.Repeat("a", 65537)), 413, "e5"},
		{"status with a bad value", map[string]any{"type": "message_status", "conversation_id": conv, "seq": 1, "status": "seen"}, 400, ""},
		{"typing in a conversation of others", map[string]any{"type": "typing", "conversation_id": conv, "state": "typing"}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.send(tt.frame)
			e := s.expect("error")
			if e.num("status") != tt.status || e.str("ref") != tt.ref || e.str("code") == "" || e.str("message") == "" {
				t.Fatalf("got %v, want status %d ref %q", e, tt.status, tt.ref)
			}
		})
	}
	s.send(`{"type":"ping"}`)
	s.expect("pong")
	// Exactly 64 KiB is allowed.
	a := dial(t, srv, alice.Token)
	a.send(sendText(conv, "max-1", strings.Repeat("b", 65536)))
	if ack := a.expect("ack"); ack.num("seq") != 1 {
		t.Fatalf("64 KiB message: %v", ack)
	}
}

func TestBadTokenRefusedBeforeUpgrade(t *testing.T) {
	srv := servertest.Start(t)
	for _, url := range []string{srv.WSURL, srv.WSURL + "?token=forged"} {
		_, resp, err := websocket.Dial(context.Background(), url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial %s: err=%v resp=%v, want HTTP 401", url, err, resp)
		}
	}
	alice := newAccount(t, srv, "alice")
	ws, _, err := websocket.Dial(context.Background(), srv.WSURL+"?token="+alice.Token, nil)
	if err != nil {
		t.Fatalf("token in the query string refused: %v", err)
	}
	ws.CloseNow()
}

func TestLogoutClosesSocketWith4440(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "alice")
	s := dial(t, srv, alice.Token)
	if st := api(t, srv, "POST", "/api/v1/auth/logout", alice.Token, nil, nil); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	if e := s.expect("error"); e.num("status") != 440 {
		t.Fatalf("got %v, want error 440", e)
	}
	if code := s.closeStatus(5 * time.Second); code != 4440 {
		t.Fatalf("close code %d, want 4440", code)
	}
	if st := api(t, srv, "GET", "/api/v1/users/me", alice.Token, nil, nil); st != 401 {
		t.Fatalf("token still works after logout: %d", st)
	}
}

func TestExpiredTokenClosesSocket(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.TokenTTL = time.Minute })
	alice := newAccount(t, srv, "alice")
	s := dial(t, srv, alice.Token)
	s.quiet(100*time.Millisecond, "error")
	// A one-minute token is too long to wait for here; revoking the device
	// takes the same path (error 440, close 4440).
	if st := api(t, srv, "DELETE", "/api/v1/users/me/devices/"+alice.DeviceID, alice.Token, nil, nil); st != 204 {
		t.Fatalf("revoke device: %d", st)
	}
	s.expect("error")
	if code := s.closeStatus(5 * time.Second); code != 4440 {
		t.Fatalf("close code %d, want 4440", code)
	}
}

func TestSilentSocketIsClosedAfterTwoHeartbeats(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.HeartbeatInterval = 200 * time.Millisecond })
	alice := newAccount(t, srv, "alice")
	talker, silent := dial(t, srv, alice.Token), dial(t, srv, alice.Token)
	if silent.ready.num("heartbeat_interval") != 200 {
		t.Fatalf("heartbeat_interval %v", silent.ready)
	}
	stop := time.After(1200 * time.Millisecond)
pinging:
	for {
		select {
		case <-stop:
			break pinging
		case <-time.After(100 * time.Millisecond):
			talker.send(`{"type":"ping"}`)
		}
	}
	if code := silent.closeStatus(time.Second); code != 4000 {
		t.Fatalf("silent socket closed with %d, want 4000", code)
	}
	select {
	case <-talker.closed:
		t.Fatalf("a pinging socket was closed: %v", talker.err)
	default:
	}
}

func TestSlowConsumerIsClosedWith4008(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.SendQueueLimit = 16 })
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	// Bob's socket never reads: the TCP buffers fill, then his queue.
	ws, _, err := websocket.Dial(context.Background(), srv.WSURL+"?token="+bob.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	a := dial(t, srv, alice.Token)
	big := strings.Repeat("z", 60000)
	closed := false
	for i := 0; i < 400 && !closed; i++ {
		a.send(sendText(conv, "slow-"+time.Now().Format("150405.000000000"), big))
		a.expect("ack")
		closed = metricValue(t, srv, "parley_slow_sockets_closed_total") > 0
	}
	if !closed {
		t.Fatal("a socket that never reads was not closed as slow")
	}
	// Reading now, bob finds what was queued before the overflow, then 4008.
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			if code := websocket.CloseStatus(err); code != 4008 {
				t.Fatalf("slow socket closed with %d (%v), want 4008", code, err)
			}
			break
		}
	}
	// Alice was never stalled: her last send was acked above; and she still gets answers.
	a.send(`{"type":"ping"}`)
	a.expect("pong")
}

// metricValue reads one unlabelled metric from /metrics.
func metricValue(t testing.TB, srv *servertest.Server, name string) float64 {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}
