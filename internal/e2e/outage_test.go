package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
	"github.com/parley-chat/parley/internal/testskip"
)

// tcpProxy forwards a local port to a target and can cut every connection
// and refuse new ones, like a database host going away, then come back.
type tcpProxy struct {
	target string
	ln     net.Listener
	addr   string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	down   bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{target: target, ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { _ = p.ln.Close(); p.cut() })
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// cut closes every proxied connection and refuses new ones until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestPostgresOutage: with PostgreSQL unreachable a node answers sends with
// 503 (never a false ack) and /readyz fails; when it returns, everything
// recovers by itself.
func TestPostgresOutage(t *testing.T) {
	pgURL := os.Getenv("PARLEY_TEST_POSTGRES")
	if pgURL == "" {
		testskip.Skip(t, "PARLEY_TEST_POSTGRES not set: PostgreSQL outage test skipped")
	}
	schemaURL := freshSchema(t, pgURL)
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr
	srv := servertest.Start(t, func(c *server.Config) { c.Postgres = u.String() })
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	a.send(sendText(conv, "pg-1", "before"))
	a.expect("ack", "conversation_updated")

	proxy.cut()
	a.send(sendText(conv, "pg-2", "during"))
	e := a.expect("error", "conversation_updated")
	if e.num("status") != 503 || e.str("ref") != "pg-2" {
		t.Fatalf("send while PostgreSQL is down: %v, want 503", e)
	}
	if st := readyz(t, srv); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while PostgreSQL is down: %d, want 503", st)
	}
	if resp, err := http.Get(srv.URL + "/readyz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(body)); got != "not ready: the store is down" {
			t.Fatalf("/readyz body %q: it must say which dependency is down and nothing more", got)
		}
	}

	proxy.restore()
	deadline := time.Now().Add(20 * time.Second)
	for readyz(t, srv) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover")
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.send(sendText(conv, "pg-2", "during, retried"))
	if ack := a.expect("ack", "conversation_updated"); ack.num("seq") != 2 {
		t.Fatalf("retry after recovery: %v, want seq 2", ack)
	}
}

func readyz(t *testing.T, srv *servertest.Server) int {
	t.Helper()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestNATSOutage: with NATS down messages are still stored and acked, live
// delivery across nodes stops, and sync repairs it; when NATS returns live
// delivery resumes by itself.
func TestNATSOutage(t *testing.T) {
	cl := startCluster(t, 2)
	n0, n1 := cl.nodes[0], cl.nodes[1]
	alice, bob := newAccount(t, n0, "alice"), newAccount(t, n1, "bob")
	conv := direct(t, n0, alice, bob)
	a, b := dial(t, n0, alice.Token), dial(t, n1, bob.Token)
	a.send(sendText(conv, "nats-1", "before"))
	a.expect("ack", "conversation_updated")
	b.expect("new_message", "conversation_updated")

	port := cl.nats.Addr().(*net.TCPAddr).Port
	storeDir := cl.nats.StoreDir()
	cl.nats.Shutdown()
	cl.nats.WaitForShutdown()
	for i := 2; i <= 4; i++ {
		a.send(sendText(conv, fmt.Sprintf("nats-%d", i), "while NATS is down"))
		if f := a.expect("ack", "conversation_updated"); f.num("seq") != int64(i) {
			t.Fatalf("send with NATS down: %v", f)
		}
	}
	// Sync repairs what live delivery missed.
	b.send(map[string]any{"type": "sync", "cursors": map[string]int64{conv: 1}})
	for want := int64(2); want <= 4; want++ {
		if m := b.expect("new_message", "conversation_updated"); m.num("seq") != want {
			t.Fatalf("sync after the outage: seq %d, want %d", m.num("seq"), want)
		}
	}
	b.expect("sync_complete")

	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not restart")
	}
	// Live delivery resumes once both nodes have reconnected.
	deadline := time.Now().Add(20 * time.Second)
	for i := 5; ; i++ {
		a.send(sendText(conv, fmt.Sprintf("nats-%d", i), "after"))
		a.expect("ack", "conversation_updated")
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		got := waitFrame(ctx, b, "new_message")
		cancel()
		if got != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("live delivery did not resume after NATS came back")
		}
	}
}

// waitFrame returns the next frame of type typ, or nil when ctx ends first.
func waitFrame(ctx context.Context, s *sock, typ string) frame {
	for {
		select {
		case f := <-s.frames:
			if f.str("type") == typ {
				return f
			}
		case <-ctx.Done():
			return nil
		}
	}
}
