package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

func blockUser(t testing.TB, srv *servertest.Server, who account, other account) {
	t.Helper()
	if st := api(t, srv, "POST", "/api/v1/users/me/blocks", who.Token, map[string]string{"user_id": other.UserID}, nil); st != http.StatusNoContent {
		t.Fatalf("block: status %d, want 204", st)
	}
}

func blockedCode(t testing.TB, st int, e apiError, what string) {
	t.Helper()
	if st != http.StatusForbidden || e.Error.Code != "blocked" {
		t.Fatalf("%s: %d %+v, want 403 blocked", what, st, e)
	}
}

// Finding 6: presence only for users who share a conversation, and
// nothing at all (no error, no frame) for the others.
func TestPresenceOnlyForSharedConversations(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, stranger := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "stranger")
	direct(t, srv, alice, bob)
	dial(t, srv, bob.Token)
	dial(t, srv, stranger.Token)
	s := dial(t, srv, alice.Token)
	s.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{stranger.UserID, "no-such-user", bob.UserID}})
	p := s.expect("presence")
	if p.str("user_id") != bob.UserID || p.str("status") != "online" {
		t.Fatalf("presence %v, want bob online", p)
	}
	s.send(map[string]any{"type": "ping"})
	s.expect("pong") // nothing about the stranger or the unknown id came before
	// A watched stranger's changes never arrive either.
	dial(t, srv, stranger.Token)
	s.quiet(300*time.Millisecond, "presence", "error")
}

// Finding 10: a socket watches at most 1000 users; repeats are free.
func TestPresenceSubscribeCap(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "alice")
	s := dial(t, srv, alice.Token)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("u-%d", i)
	}
	s.send(map[string]any{"type": "presence_subscribe", "user_ids": ids})
	s.send(map[string]any{"type": "presence_subscribe", "user_ids": ids}) // the same again
	s.send(map[string]any{"type": "ping"})
	s.expect("pong") // nothing known, nothing shared: silence, then pong

	// Past the cap of watched users (2 here), the socket is told so.
	small := servertest.Start(t, func(c *server.Config) { c.MaxWatchesPerSocket = 2 })
	me, b, c, d := newAccount(t, small, "me"), newAccount(t, small, "bee"), newAccount(t, small, "cee"), newAccount(t, small, "dee")
	group(t, small, me, "friends", b, c, d)
	w := dial(t, small, me.Token)
	w.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{b.UserID, c.UserID, d.UserID}})
	w.expect("presence")
	w.expect("presence")
	if e := w.expect("error"); e.num("status") != 422 {
		t.Fatalf("a third watch with a cap of 2: %v, want error 422", e)
	}
}

// Blocking (PROTOCOL.md section 11).
func TestBlocking(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, carol := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "carol")
	conv := direct(t, srv, alice, bob)
	grp := group(t, srv, bob, "team", alice, carol)
	sa, sb := dial(t, srv, alice.Token), dial(t, srv, bob.Token)
	sa.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{bob.UserID}})
	sa.expect("presence")
	sb.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{alice.UserID}})
	sb.expect("presence")

	blockUser(t, srv, alice, bob)
	var list struct {
		UserIDs []string `json:"user_ids"`
	}
	if st := api(t, srv, "GET", "/api/v1/users/me/blocks", alice.Token, nil, &list); st != 200 || !slices.Equal(list.UserIDs, []string{bob.UserID}) {
		t.Fatalf("blocks list: %d %v", st, list.UserIDs)
	}
	blockUser(t, srv, alice, bob) // again: still 204

	// No messages in the direct conversation, either way.
	for _, who := range []*sock{sb, sa} {
		who.send(sendText(conv, fmt.Sprintf("blk-%p", who), "hello?"))
		e := who.expect("error", "presence", "typing")
		if e.num("status") != 403 || e.str("code") != "blocked" {
			t.Fatalf("send in a blocked direct conversation: %v, want 403 blocked", e)
		}
	}
	// No new direct conversation, no adding the blocker to a group.
	var e apiError
	st := api(t, srv, "POST", "/api/v1/conversations", bob.Token, map[string]string{"type": "direct", "user_id": alice.UserID}, &e)
	blockedCode(t, st, e, "bob opens a direct conversation with alice")
	st = api(t, srv, "POST", "/api/v1/groups", bob.Token, map[string]any{"name": "trap", "members": []string{alice.UserID}}, &e)
	blockedCode(t, st, e, "bob creates a group with alice")
	other := group(t, srv, bob, "other", carol)
	st = api(t, srv, "POST", "/api/v1/groups/"+other+"/members", bob.Token, map[string]any{"user_ids": []string{alice.UserID}}, &e)
	blockedCode(t, st, e, "bob adds alice to a group")

	// No typing either way, in the group they share too; no presence.
	sb.send(map[string]any{"type": "typing", "conversation_id": grp, "state": "typing"})
	sa.send(map[string]any{"type": "typing", "conversation_id": grp, "state": "typing"})
	sa.send(map[string]any{"type": "presence_subscribe", "user_ids": []string{bob.UserID}})
	dial(t, srv, bob.Token) // bob's second device: no presence change reaches alice anyway
	sa.quiet(500*time.Millisecond, "typing", "presence")
	sb.quiet(100*time.Millisecond, "typing", "presence")

	// Group messages still flow (the clients hide them).
	sb.send(sendText(grp, "grp-1", "in the group"))
	sb.expect("ack", "presence", "typing")

	// Unblock: the direct conversation works again.
	if st := api(t, srv, "DELETE", "/api/v1/users/me/blocks/"+bob.UserID, alice.Token, nil, nil); st != http.StatusNoContent {
		t.Fatalf("unblock: %d", st)
	}
	sb.send(sendText(conv, "after-unblock", "hi again"))
	sb.expect("ack", "presence", "typing", "new_message")

	// Bad requests.
	if st := api(t, srv, "POST", "/api/v1/users/me/blocks", alice.Token, map[string]string{"user_id": "no-such-user"}, nil); st != 404 {
		t.Fatalf("block unknown user: %d, want 404", st)
	}
	if st := api(t, srv, "POST", "/api/v1/users/me/blocks", alice.Token, map[string]string{"user_id": alice.UserID}, nil); st != 422 {
		t.Fatalf("block yourself: %d, want 422", st)
	}
	if st := api(t, srv, "POST", "/api/v1/users/me/blocks", alice.Token, map[string]string{}, nil); st != 400 {
		t.Fatalf("block without user_id: %d, want 400", st)
	}
}

// Reports: members only, 201 with an id.
func TestReports(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, eve := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "eve")
	conv := direct(t, srv, alice, bob)
	sb := dial(t, srv, bob.Token)
	sb.send(sendText(conv, "rep-1", "something nasty"))
	sb.expect("ack")
	var r struct {
		ReportID string `json:"report_id"`
	}
	if st := api(t, srv, "POST", "/api/v1/reports", alice.Token, map[string]any{"conversation_id": conv, "seq": 1, "reason": "harassment"}, &r); st != 201 || r.ReportID == "" {
		t.Fatalf("report: %d %+v, want 201 with report_id", st, r)
	}
	if st := api(t, srv, "POST", "/api/v1/reports", eve.Token, map[string]any{"conversation_id": conv, "seq": 1, "reason": "x"}, nil); st != 403 {
		t.Fatalf("report by a non-member: %d, want 403", st)
	}
	if st := api(t, srv, "POST", "/api/v1/reports", alice.Token, map[string]any{"conversation_id": conv, "seq": 99, "reason": "x"}, nil); st != 404 {
		t.Fatalf("report of a message that does not exist: %d, want 404", st)
	}
	if st := api(t, srv, "POST", "/api/v1/reports", alice.Token, map[string]any{"conversation_id": conv, "reason": "x"}, nil); st != 400 {
		t.Fatalf("report without seq: %d, want 400", st)
	}
}

// Finding 4: push endpoints on private and other special-purpose addresses
// are refused with 422 (the dialer refuses them again for names).
func TestPushEndpointsMustBePublic(t *testing.T) {
	srv := servertest.Start(t)
	bob := newAccount(t, srv, "bob")
	for _, host := range []string{"10.1.2.3", "192.168.1.1", "172.16.5.4", "100.64.0.1", "198.18.0.1", "169.254.169.254",
		"[fd00::1]", "[fc00::5]", "[64:ff9b::a00:1]", "[::ffff:10.0.0.1]", "[fe80::1]", "0.0.0.0", "[::]", "224.0.0.1", "240.0.0.1", "192.0.0.8", "[2002:a00:1::]"} {
		body := map[string]any{"platform": "unifiedpush", "endpoint": "https://" + host + "/up?x=1"}
		var e apiError
		if st := api(t, srv, "POST", "/api/v1/push/subscriptions", bob.Token, body, &e); st != http.StatusUnprocessableEntity {
			t.Errorf("endpoint on %s: status %d, want 422", host, st)
		}
	}
	// A name that resolves to a private address (this machine's own name,
	// where it resolves to one) is refused as well.
	if host, err := os.Hostname(); err == nil {
		if addrs, err := net.DefaultResolver.LookupNetIP(t.Context(), "ip", host); err == nil && len(addrs) > 0 {
			if a := addrs[0].Unmap(); a.IsPrivate() || a.IsLoopback() {
				body := map[string]any{"platform": "unifiedpush", "endpoint": "https://" + host + "/up"}
				if st := api(t, srv, "POST", "/api/v1/push/subscriptions", bob.Token, body, nil); st != http.StatusUnprocessableEntity {
					t.Errorf("endpoint on %s (resolves to %s): status %d, want 422", host, a, st)
				}
			}
		}
	}
	if st := api(t, srv, "POST", "/api/v1/push/subscriptions", bob.Token, map[string]any{"platform": "unifiedpush", "endpoint": "https://8.8.8.8/up"}, nil); st != http.StatusCreated {
		t.Fatalf("endpoint on a public address: %d, want 201", st)
	}
}

// Finding 13: /metrics can require a bearer token; /readyz names only the
// dependency that is down (covered by outage_test with PostgreSQL).
func TestMetricsToken(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MetricsToken = "s3cret-metrics" })
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(""); st != 401 {
		t.Fatalf("/metrics without the token: %d, want 401", st)
	}
	if st := get("Bearer wrong"); st != 401 {
		t.Fatalf("/metrics with a wrong token: %d, want 401", st)
	}
	if st := get("Bearer s3cret-metrics"); st != 200 {
		t.Fatalf("/metrics with the token: %d, want 200", st)
	}
}
