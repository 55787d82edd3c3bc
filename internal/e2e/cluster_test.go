package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
	"github.com/parley-chat/parley/internal/testskip"
)

// cluster is several parleyd nodes on one PostgreSQL schema and one NATS server.
type cluster struct {
	nodes []*servertest.Server
	nats  *natsserver.Server
}

// startCluster needs PARLEY_TEST_POSTGRES (CI sets it) and skips without it.
// opts adjust every node's configuration.
func startCluster(t *testing.T, n int, opts ...func(*server.Config)) *cluster {
	t.Helper()
	return startClusterWith(t, n, func(_ int, cfg *server.Config) {
		for _, o := range opts {
			o(cfg)
		}
	})
}

// startClusterWith is startCluster with opt adjusting node i's configuration.
func startClusterWith(t *testing.T, n int, opt func(i int, cfg *server.Config)) *cluster {
	t.Helper()
	pgURL := os.Getenv("PARLEY_TEST_POSTGRES")
	if pgURL == "" {
		testskip.Skip(t, "PARLEY_TEST_POSTGRES not set: multi-node tests skipped")
	}
	ns := startNATS(t)
	schemaURL := freshSchema(t, pgURL)
	c := &cluster{nats: ns}
	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, servertest.Start(t, func(cfg *server.Config) {
			cfg.Postgres = schemaURL
			cfg.NATS = ns.ClientURL()
			cfg.NodeID = fmt.Sprintf("node%d", i)
			if opt != nil {
				opt(i, cfg)
			}
		}))
	}
	return c
}

// freshSchema creates an empty schema and returns a URL whose connections use it.
func freshSchema(t *testing.T, pgURL string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatalf("connecting to PARLEY_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("e2e_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pgURL)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	sep := "?"
	if strings.Contains(pgURL, "?") {
		sep = "&"
	}
	return pgURL + sep + "search_path=" + schema
}

// sdkUser is a logged-in SDK client running against one node.
type sdkUser struct {
	acct account
	c    *client.Client
	mu   sync.Mutex
	got  map[string][]client.Message // by conversation, in the order the app saw them
	seen chan struct{}
	// connects and disconnects count EventConnected and EventDisconnected.
	connects, disconnects atomic.Int32
}

func connectSDK(t *testing.T, a account, urls ...string) *sdkUser {
	t.Helper()
	u := &sdkUser{acct: a, got: map[string][]client.Message{}, seen: make(chan struct{}, 1<<16)}
	u.c = client.New(client.Config{URLs: urls, Token: a.Token, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = u.c.Run(ctx) }()
	go func() {
		for ev := range u.c.Events() {
			switch ev.Kind {
			case client.EventConnected:
				u.connects.Add(1)
			case client.EventDisconnected:
				u.disconnects.Add(1)
			}
			if ev.Kind == client.EventMessage {
				u.mu.Lock()
				u.got[ev.Message.ConversationID] = append(u.got[ev.Message.ConversationID], *ev.Message)
				u.mu.Unlock()
				u.seen <- struct{}{}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return u
}

// waitFor waits until the app saw n messages of conv, then checks they are
// exactly seqs 1..n in order.
func (u *sdkUser) waitFor(t *testing.T, conv string, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		u.mu.Lock()
		msgs := append([]client.Message(nil), u.got[conv]...)
		u.mu.Unlock()
		if len(msgs) >= n {
			for i, m := range msgs {
				if m.Seq != int64(i+1) {
					t.Fatalf("%s saw seq %d at position %d of %s", u.acct.Username, m.Seq, i, conv)
				}
			}
			if len(msgs) > n {
				t.Fatalf("%s saw %d messages of %s, want %d", u.acct.Username, len(msgs), conv, n)
			}
			return
		}
		select {
		case <-u.seen:
		case <-deadline:
			t.Fatalf("%s saw %d of %d messages of %s", u.acct.Username, len(msgs), n, conv)
		}
	}
}

func TestClusterOfThreeNodes(t *testing.T) {
	cl := startCluster(t, 3)
	n0, n1, n2 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	alice, bob, carol := newAccount(t, n0, "alice"), newAccount(t, n1, "bob"), newAccount(t, n2, "carol")
	conv := direct(t, n0, alice, bob)
	grp := group(t, n2, carol, "spread", alice, bob)

	// Raw sockets: bob on node 1 receives alice's messages sent on node 0 live.
	a, b := dial(t, n0, alice.Token), dial(t, n1, bob.Token)
	for i := 1; i <= 20; i++ {
		a.send(sendText(conv, fmt.Sprintf("x-%d", i), fmt.Sprintf("across %d", i)))
		a.expect("ack", "conversation_updated")
	}
	for i := int64(1); i <= 20; i++ {
		if m := b.expect("new_message", "conversation_updated"); m.num("seq") != i {
			t.Fatalf("bob on node 1 got seq %d, want %d", m.num("seq"), i)
		}
	}

	// SDK clients on three nodes post into one group at once: every app sees
	// 1..N exactly once and in order (the SDK holds back and fills gaps when
	// two nodes' deliveries interleave).
	users := []*sdkUser{connectSDK(t, alice, n0.URL), connectSDK(t, bob, n1.URL), connectSDK(t, carol, n2.URL)}
	const each = 15
	sendConcurrently(t, users, grp, each)
	for _, u := range users {
		u.waitFor(t, grp, 3*each)
	}
}

// sendConcurrently has every user send n messages into conv, all users at
// once, each waiting for its acks.
func sendConcurrently(t *testing.T, users []*sdkUser, conv string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func(u *sdkUser) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := u.c.Send(ctx, conv, fmt.Sprintf("%s %d", u.acct.Username, i))
				cancel()
				if err != nil {
					t.Errorf("%s send: %v", u.acct.Username, err)
					return
				}
			}
		}(u)
	}
	wg.Wait()
}

func TestClusterNodeLossClientsMoveAndSync(t *testing.T) {
	cl := startCluster(t, 2)
	n0, n1 := cl.nodes[0], cl.nodes[1]
	alice, bob := newAccount(t, n0, "alice"), newAccount(t, n0, "bob")
	conv := direct(t, n0, alice, bob)
	// Bob's SDK knows both nodes and starts on node 0.
	bu := connectSDK(t, bob, n0.URL, n1.URL)
	a := dial(t, n1, alice.Token)
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			a.send(sendText(conv, fmt.Sprintf("loss-%d", i), fmt.Sprintf("m%d", i)))
			a.expect("ack", "conversation_updated", "message_status")
		}
	}
	send(1, 10)
	bu.waitFor(t, conv, 10)
	n0.Stop() // node 0 goes away: bob reconnects to node 1 and syncs
	send(11, 25)
	bu.waitFor(t, conv, 25)
}
