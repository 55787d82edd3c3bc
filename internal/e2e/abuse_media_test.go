package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// Finding 5: a per-user media quota counting finished and unfinished
// uploads (413 quota_exceeded), and a cap on unfinished resumable uploads.
func TestMediaQuota(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MediaQuota = 1000; c.MaxPendingUploads = 3 })
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	if st, _ := uploadRaw(t, srv, alice.Token, bytes.Repeat([]byte("a"), 600), "text/plain"); st != http.StatusCreated {
		t.Fatalf("first upload within the quota: %d", st)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/media", bytes.NewReader(bytes.Repeat([]byte("b"), 600)))
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e apiError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Error.Code != "quota_exceeded" {
		t.Fatalf("upload past the quota: %d %+v, want 413 quota_exceeded", resp.StatusCode, e)
	}
	// Unfinished uploads count with their declared length.
	if r := tus(t, srv, "POST", "/api/v1/uploads", alice.Token, map[string]string{"Upload-Length": "500"}, nil); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("resumable upload past the quota: %d, want 413", r.StatusCode)
	}
	createUpload(t, srv, alice.Token, 300, "a.txt")
	if st, _ := uploadRaw(t, srv, alice.Token, bytes.Repeat([]byte("c"), 200), "text/plain"); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("upload past the quota with an unfinished upload counted: %d, want 413", st)
	}
	// Parallel creations cannot all pass one check: bob may have 3 unfinished.
	var wg sync.WaitGroup
	codes := make([]int, 30)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = tus(t, srv, "POST", "/api/v1/uploads", bob.Token, map[string]string{"Upload-Length": strconv.Itoa(10)}, nil).StatusCode
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[http.StatusCreated] != 3 || count[http.StatusTooManyRequests] != 27 {
		t.Fatalf("30 parallel resumable uploads with a cap of 3: %v, want 3 x 201, 27 x 429", count)
	}
}

// Finding 8: a stranger cannot drain a user's one-time prekeys (past 100
// claims per hour of one target, bundles come without one), and a device
// keeps at most 1000 unclaimed prekeys.
func TestPrekeyDrainAndCap(t *testing.T) {
	srv := servertest.Start(t)
	victim, stranger := newAccount(t, srv, "victim"), newAccount(t, srv, "stranger")
	putKeys(t, srv, victim, 300)
	with := 0
	for i := 0; i < 150; i++ {
		var b bundles
		if st := api(t, srv, "GET", "/api/v1/keys/"+victim.UserID, stranger.Token, nil, &b); st != 200 || len(b.Devices) != 1 {
			t.Fatalf("claim %d: %d %+v", i, st, b)
		}
		if b.Devices[0].OneTimePrekey != nil {
			with++
		}
	}
	var c struct {
		N int `json:"one_time_prekeys"`
	}
	api(t, srv, "GET", "/api/v1/keys/count", victim.Token, nil, &c)
	if with != 100 || c.N != 200 {
		t.Fatalf("150 claims by a stranger took %d prekeys (%d left of 300); want 100 taken, 200 left", with, c.N)
	}

	owner := newAccount(t, srv, "owner")
	body := keyUpload(t, 500)
	for round := 0; round < 3; round++ {
		otks := body["one_time_prekeys"].([]map[string]any)
		for i := range otks {
			otks[i]["key_id"] = round*500 + i + 1
		}
		if st := api(t, srv, "PUT", "/api/v1/keys", owner.Token, body, nil); st != http.StatusNoContent {
			t.Fatalf("upload %d: %d", round, st)
		}
	}
	api(t, srv, "GET", "/api/v1/keys/count", owner.Token, nil, &c)
	if c.N != 1000 {
		t.Fatalf("after 3 uploads of 500: %d prekeys stored, want the cap of 1000", c.N)
	}
}

// Finding 9: conversation creation is rate limited (opening an existing
// direct conversation is free) and GET /conversations pages by cursor
// (without limit it answers the whole v1 list).
func TestConversationRateAndPaging(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.ConversationRate = 5 })
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	direct(t, srv, alice, bob)
	for i := 0; i < 10; i++ {
		direct(t, srv, alice, bob) // the same one again: free
	}
	for i := 0; i < 4; i++ {
		group(t, srv, alice, "g"+strconv.Itoa(i), bob)
	}
	var e apiError
	if st := api(t, srv, "POST", "/api/v1/groups", alice.Token, map[string]any{"name": "spam", "members": []string{bob.UserID}}, &e); st != 429 {
		t.Fatalf("6th new conversation with a rate of 5: %d, want 429", st)
	}

	type page struct {
		Conversations []struct {
			ID string `json:"conversation_id"`
		} `json:"conversations"`
		Next string `json:"next_cursor"`
	}
	var all page
	api(t, srv, "GET", "/api/v1/conversations", bob.Token, nil, &all)
	if len(all.Conversations) != 5 || all.Next != "" {
		t.Fatalf("the v1 list: %d conversations, next %q; want all 5 and no cursor", len(all.Conversations), all.Next)
	}
	var got []string
	cursor := ""
	for n := 0; n < 10; n++ {
		var p page
		path := "/api/v1/conversations?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if st := api(t, srv, "GET", path, bob.Token, nil, &p); st != 200 {
			t.Fatalf("page: %d", st)
		}
		for _, c := range p.Conversations {
			got = append(got, c.ID)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	want := []string{}
	for _, c := range all.Conversations {
		want = append(want, c.ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	if st := api(t, srv, "GET", "/api/v1/conversations?cursor=garbage", bob.Token, nil, nil); st != 400 {
		t.Fatalf("bad cursor: %d, want 400", st)
	}
}
