package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// mixedState is what the traffic of one iteration saw acknowledged, and
// what it had in flight when the server died.
type mixedState struct {
	mu          sync.Mutex
	acked       map[string]int64 // client id -> seq
	readSeen    int64            // highest read_seq of bob ever observed through the API
	nameAcked   string           // last rename answered 200
	nameFlight  string           // a rename sent and not answered
	carolAcked  bool             // carol's membership after the last answered change
	carolFlight *bool            // a membership change sent and not answered
}

// TestCrashMixedTraffic kills the server at random points of mixed traffic
// (pipelined sends, receipts, group renames and member changes) and checks
// after each restart: the store's integrity; every acked message at its seq,
// gapless; watermarks never behind what was observed stored; the group in
// the state of its last answered change (or of the one in flight).
func TestCrashMixedTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds parleyd and kills it repeatedly")
	}
	iterations := 5
	if v := os.Getenv("PARLEY_CRASH_ITERATIONS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			iterations = n
		}
	}
	proc := newParleydProc(t, buildParleyd(t))
	proc.start()
	srv := proc.srv
	alice, bob, carol := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "carol")
	dm := direct(t, srv, alice, bob)
	grp := group(t, srv, alice, "crash-0", bob)
	st := &mixedState{acked: map[string]int64{}, nameAcked: "crash-0"}
	totals := map[string]int{}

	for it := 1; it <= iterations; it++ {
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		counts := make([]int, 3)
		wg.Add(3)
		go func() { defer wg.Done(); counts[0] = mixedSender(ctx, srv, alice, dm, it, st) }()
		go func() { defer wg.Done(); counts[1] = mixedReceipts(ctx, srv, bob, dm, st) }()
		go func() { defer wg.Done(); counts[2] = mixedGroupChanges(ctx, srv, alice, carol, grp, it, st) }()
		time.Sleep(time.Duration(150+rand.IntN(300)) * time.Millisecond)
		proc.kill()
		stop()
		wg.Wait()
		totals["sends acked"] += counts[0]
		totals["receipts sent"] += counts[1]
		totals["group changes answered"] += counts[2]
		checkStoreIntegrity(t, proc.dataDir)
		proc.start()
		srv = proc.srv
		verifyMixed(t, srv, alice, bob, carol, dm, grp, st, it)
	}
	t.Logf("%d kills: %v", iterations, totals)
}

// mixedSender pipelines sends into the direct conversation and records acks.
func mixedSender(ctx context.Context, srv *servertest.Server, from account, conv string, it int, st *mixedState) int {
	ws, err := rawDial(ctx, srv, from.Token)
	if err != nil {
		return 0
	}
	defer ws.CloseNow()
	go func() {
		for i := 0; ; i++ {
			f := map[string]any{"type": "send_message", "message_id": fmt.Sprintf("mix-%d-%d", it, i), "conversation_id": conv, "content": "mixed"}
			raw, _ := json.Marshal(f)
			if ws.Write(ctx, websocket.MessageText, raw) != nil {
				return
			}
			if i%64 == 63 {
				time.Sleep(time.Millisecond) // stay within the server's in-flight window
			}
		}
	}()
	n := 0
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return n
		}
		var f struct {
			Type      string `json:"type"`
			MessageID string `json:"message_id"`
			Seq       int64  `json:"seq"`
		}
		if json.Unmarshal(data, &f) == nil && f.Type == "ack" {
			st.mu.Lock()
			st.acked[f.MessageID] = f.Seq
			st.mu.Unlock()
			n++
		}
	}
}

// mixedReceipts sends delivered/read receipts and records the read_seq it
// can observe stored through the API.
func mixedReceipts(ctx context.Context, srv *servertest.Server, reader account, conv string, st *mixedState) int {
	ws, err := rawDial(ctx, srv, reader.Token)
	if err != nil {
		return 0
	}
	defer ws.CloseNow()
	n := 0
	for seq := int64(1); ctx.Err() == nil; seq++ {
		for _, status := range []string{"delivered", "read"} {
			raw, _ := json.Marshal(map[string]any{"type": "message_status", "conversation_id": conv, "seq": seq, "status": status})
			if ws.Write(ctx, websocket.MessageText, raw) != nil {
				return n
			}
			n++
		}
		if seq%20 == 0 {
			if d, r, ok := watermarks(ctx, srv, reader, conv); ok && d >= r {
				st.mu.Lock()
				st.readSeen = max(st.readSeen, r)
				st.mu.Unlock()
			}
		}
	}
	return n
}

// mixedGroupChanges renames the group and adds or removes carol, recording
// each answered change and the one in flight.
func mixedGroupChanges(ctx context.Context, srv *servertest.Server, admin, carol account, grp string, it int, st *mixedState) int {
	n := 0
	for i := 0; ctx.Err() == nil; i++ {
		name := fmt.Sprintf("crash-%d-%d", it, i)
		st.mu.Lock()
		st.nameFlight = name
		st.mu.Unlock()
		code := status(ctx, srv, "PATCH", "/api/v1/groups/"+grp, admin.Token, map[string]string{"name": name})
		if code == 0 {
			return n // no answer: the server died with this rename in flight
		}
		if code == 200 {
			st.mu.Lock()
			st.nameAcked, st.nameFlight = name, ""
			st.mu.Unlock()
			n++
		}
		st.mu.Lock()
		want := !st.carolAcked
		st.carolFlight = &want
		st.mu.Unlock()
		if want {
			code = status(ctx, srv, "POST", "/api/v1/groups/"+grp+"/members", admin.Token, map[string]any{"user_ids": []string{carol.UserID}})
		} else {
			code = status(ctx, srv, "DELETE", "/api/v1/groups/"+grp+"/members/"+carol.UserID, admin.Token, nil)
		}
		if code == 0 {
			return n // no answer: the server died with this change in flight
		}
		if code == 200 || code == 204 {
			st.mu.Lock()
			st.carolAcked, st.carolFlight = want, nil
			st.mu.Unlock()
			n++
		}
	}
	return n
}

func verifyMixed(t *testing.T, srv *servertest.Server, alice, bob, carol account, dm, grp string, st *mixedState, it int) {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	var page struct {
		Messages []frame `json:"messages"`
		HasMore  bool    `json:"has_more"`
	}
	stored := map[string]int64{}
	var last int64
	for {
		api(t, srv, "GET", fmt.Sprintf("/api/v1/conversations/%s/messages?after=%d&limit=200", dm, last), alice.Token, nil, &page)
		for _, m := range page.Messages {
			if m.num("seq") != last+1 {
				t.Fatalf("kill %d: seq %d after %d", it, m.num("seq"), last)
			}
			last = m.num("seq")
			stored[m.str("client_message_id")] = last
		}
		if !page.HasMore {
			break
		}
	}
	for id, seq := range st.acked {
		if stored[id] != seq {
			t.Fatalf("kill %d: acked %s (seq %d) stored at %d", it, id, seq, stored[id])
		}
	}
	d, r, ok := watermarks(context.Background(), srv, bob, dm)
	if !ok || r < st.readSeen || d < r || r > last {
		t.Fatalf("kill %d: bob's watermarks delivered=%d read=%d, observed read %d before the kill, last seq %d", it, d, r, st.readSeen, last)
	}
	var g struct {
		Name    string `json:"name"`
		Members []struct {
			UserID string `json:"user_id"`
		} `json:"members"`
	}
	api(t, srv, "GET", "/api/v1/conversations/"+grp, alice.Token, nil, &g)
	if g.Name != st.nameAcked && g.Name != st.nameFlight {
		t.Fatalf("kill %d: group named %q, last answered rename %q, in flight %q", it, g.Name, st.nameAcked, st.nameFlight)
	}
	st.nameAcked, st.nameFlight = g.Name, ""
	hasCarol := false
	for _, m := range g.Members {
		hasCarol = hasCarol || m.UserID == carol.UserID
	}
	if hasCarol != st.carolAcked && (st.carolFlight == nil || hasCarol != *st.carolFlight) {
		t.Fatalf("kill %d: carol member=%v, last answered %v", it, hasCarol, st.carolAcked)
	}
	st.carolAcked, st.carolFlight = hasCarol, nil
}

func rawDial(ctx context.Context, srv *servertest.Server, token string) (*websocket.Conn, error) {
	ws, _, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(4 << 20)
	return ws, nil
}

// watermarks reads a member's delivered and read seq through the API.
func watermarks(ctx context.Context, srv *servertest.Server, who account, conv string) (delivered, read int64, ok bool) {
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/conversations/"+conv, nil)
	req.Header.Set("Authorization", "Bearer "+who.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	var v convView
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return 0, 0, false
	}
	d, r := v.watermarks(who.UserID)
	return d, r, d >= 0
}

// status makes a REST call and returns its status, 0 when it did not answer.
func status(ctx context.Context, srv *servertest.Server, method, path, token string, body any) int {
	var req *http.Request
	if body != nil {
		req, _ = http.NewRequestWithContext(ctx, method, srv.URL+path, jsonBody(body))
	} else {
		req, _ = http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
