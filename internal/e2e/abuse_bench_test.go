package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// BenchmarkLatencyBesideAbuse measures ordinary users' send-to-receive
// latency beside the floods of issue 17, at the default limits and the real
// bcrypt cost: a registration flood, a presence_subscribe flood (1000 ids a
// frame) and a prekey drain. Compare with flood=none:
//
//	go test -run '^$' -bench LatencyBesideAbuse -benchtime 2000x ./internal/e2e
func BenchmarkLatencyBesideAbuse(b *testing.B) {
	for _, flood := range []string{"none", "register", "presence", "prekeys"} {
		b.Run("flood="+flood, func(b *testing.B) { benchBesideAbuse(b, flood) })
	}
}

func benchBesideAbuse(b *testing.B, flood string) {
	srv := servertest.Start(b, func(c *server.Config) {
		d := server.DefaultConfig()
		c.MessageRate, c.RegistrationRate, c.BcryptCost = d.MessageRate, d.RegistrationRate, d.BcryptCost
	})
	users := newOrdinaryUsers(b, srv)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var requests atomic.Int64
	post := func(path, token string, body any) {
		raw, _ := json.Marshal(body)
		method := "POST"
		if body == nil {
			method = "GET"
		}
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewReader(raw))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			requests.Add(1)
		}
	}
	run := func(n int, f func(i int)) {
		for w := 0; w < n; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					f(w*1_000_000 + i)
				}
			}()
		}
	}
	switch flood {
	case "register":
		run(4, func(i int) {
			post("/api/v1/auth/register", "", map[string]string{"username": fmt.Sprintf("flood%d", i), "password": "password-flood"})
		})
	case "presence":
		mallory := newAccount(b, srv, "mallory")
		ids := make([]string, 1000)
		for i := range ids {
			ids[i] = fmt.Sprintf("01JUNKJUNKJUNKJUNKJUNK%04d", i)
		}
		ids[0] = users.bob
		frame, _ := json.Marshal(map[string]any{"type": "presence_subscribe", "user_ids": ids})
		for range 6 {
			floodSocket(ctx, b, &wg, srv.WSURL+"?token="+mallory.Token, func(int) []byte { return frame }, &requests)
		}
	case "prekeys":
		victim, drainer := newAccount(b, srv, "victim"), newAccount(b, srv, "drainer")
		putKeys(b, srv, victim, 500)
		run(4, func(int) { post("/api/v1/keys/"+victim.UserID, drainer.Token, nil) })
	}
	time.Sleep(200 * time.Millisecond) // let the flood start
	users.measure(b)
	stop()
	wg.Wait()
	b.ReportMetric(float64(requests.Load()), "flood-requests")
}
