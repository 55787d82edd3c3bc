package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store/postgres"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/internal/testskip"
)

// testURL returns the server the tests use, or skips the test.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PARLEY_TEST_POSTGRES")
	if u == "" {
		testskip.Skip(t, "PARLEY_TEST_POSTGRES not set: PostgreSQL store tests skipped")
	}
	return u
}

// newSchema creates a fresh, empty schema and drops it (with everything in
// it) when the test ends, after the stores of the test were closed.
func newSchema(t testing.TB, dbURL string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "parley_test_" + hex.EncodeToString(b[:])
	admin(t, dbURL, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() { admin(t, dbURL, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })
	return schema
}

// admin runs one statement on a connection of its own.
func admin(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// openStore opens a store on a fresh schema; it is closed when the test ends.
func openStore(t testing.TB, opts postgres.Options) (*postgres.Store, string) {
	t.Helper()
	dbURL := testURL(t)
	if opts.Schema == "" {
		opts.Schema = newSchema(t, dbURL)
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 4
	}
	s, err := postgres.Open(context.Background(), dbURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, opts.Schema
}

// storeSlots bounds the conformance subtests that hold a store at once, so
// that a high -parallel cannot exhaust the server's connections
// (max_connections is 100 by default): 12 stores of 4 connections each.
var storeSlots = make(chan struct{}, 12)

// conformanceStore returns the open function of the conformance suites: a
// store on a fresh schema of its own per subtest.
func conformanceStore(dbURL string) func(t *testing.T) chat.Store {
	return func(t *testing.T) chat.Store {
		storeSlots <- struct{}{}
		t.Cleanup(func() { <-storeSlots }) // runs last: after Close and the drop
		s, err := postgres.Open(t.Context(), dbURL, postgres.Options{Schema: newSchema(t, dbURL), MaxConns: 4})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, conformanceStore(testURL(t)))
}

func TestKeyStoreConformance(t *testing.T) {
	storetest.RunKeyStore(t, conformanceStore(testURL(t)))
}

func TestMediaStoreConformance(t *testing.T) {
	storetest.RunMediaStore(t, conformanceStore(testURL(t)))
}

func TestPushStoreConformance(t *testing.T) {
	storetest.RunPushStore(t, conformanceStore(testURL(t)))
}

// fixture data for the tests below.
type world struct {
	s    *postgres.Store
	a, b chat.User
	g, h chat.Conversation // two groups of a and b
	now  int64
	n    int // messages made
}

func newWorld(t *testing.T, s *postgres.Store) *world {
	t.Helper()
	ctx := t.Context()
	w := &world{s: s, now: 1_700_000_000_000}
	w.a = chat.User{ID: "u-alice", Username: "alice", CreatedAt: w.now}
	w.b = chat.User{ID: "u-bob", Username: "bob", CreatedAt: w.now}
	for _, u := range []chat.User{w.a, w.b} {
		if err := s.CreateUser(ctx, u, []byte("h")); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range []string{"c-g", "c-h"} {
		c := chat.Conversation{ID: id, Type: chat.TypeGroup, Name: id, CreatedAt: w.now, UpdatedAt: w.now, Members: []chat.Member{
			{UserID: w.a.ID, Role: chat.RoleAdmin, JoinedAt: w.now}, {UserID: w.b.ID, Role: chat.RoleMember, JoinedAt: w.now},
		}}
		if err := s.CreateGroup(ctx, c); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			w.g = c
		} else {
			w.h = c
		}
	}
	return w
}

func (w *world) msg(conv string, from chat.User, content string) chat.Message {
	w.n++
	w.now++
	return chat.Message{ID: fmt.Sprintf("m-%d", w.n), ClientID: fmt.Sprintf("cl-%d", w.n), ConversationID: conv,
		SenderID: from.ID, Content: content, ContentType: chat.ContentText, Timestamp: w.now}
}

func TestNULBytes(t *testing.T) {
	s, _ := openStore(t, postgres.Options{})
	ctx := t.Context()
	w := newWorld(t, s)

	stored := w.msg(w.g.ID, w.a, "hello")
	retryWithNUL := w.msg(w.g.ID, w.a, "hel\x00lo")
	retryWithNUL.ClientID = "cl-first"
	stored.ClientID = "cl-first"
	badUTF8 := w.msg(w.g.ID, w.b, "\xff\xfe")
	res, err := s.AppendBatch(ctx, []chat.Message{
		stored,
		w.msg(w.g.ID, w.b, "nul \x00 inside"),
		retryWithNUL,
		badUTF8,
		w.msg(w.g.ID, w.b, "after"),
	})
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	if res[0].Err != nil || res[0].Message.Seq != 1 {
		t.Errorf("message 0 = %+v", res[0])
	}
	if !errors.Is(res[1].Err, chat.ErrInvalid) {
		t.Errorf("NUL content: %v, want ErrInvalid", res[1].Err)
	}
	if !res[2].Duplicate || res[2].Message.Content != "hello" {
		t.Errorf("retry with NUL content = %+v, want the stored duplicate", res[2])
	}
	if !errors.Is(res[3].Err, chat.ErrInvalid) {
		t.Errorf("invalid UTF-8: %v, want ErrInvalid", res[3].Err)
	}
	if res[4].Err != nil || res[4].Message.Seq != 2 {
		t.Errorf("message after the refused ones = %+v, want seq 2", res[4])
	}

	// A batch of nothing but unstorable messages.
	res, err = s.AppendBatch(ctx, []chat.Message{w.msg(w.g.ID, w.a, "\x00")})
	if err != nil || !errors.Is(res[0].Err, chat.ErrInvalid) {
		t.Errorf("only a NUL message: %v, %+v", err, res)
	}

	err = s.CreateUser(ctx, chat.User{ID: "u-nul", Username: "nul", DisplayName: "a\x00b"}, nil)
	if !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("CreateUser with a NUL byte = %v, want ErrInvalid", err)
	}
	if _, _, err := s.UserByUsername(ctx, "alice\x00"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("UserByUsername with a NUL byte = %v, want ErrNotFound", err)
	}
	if _, err := s.Member(ctx, w.g.ID, "u\x00"); !errors.Is(err, chat.ErrForbidden) {
		t.Errorf("Member with a NUL byte = %v, want ErrForbidden", err)
	}
}

// TestManyNodes opens several stores (nodes) on one schema at once, which
// migrate concurrently, then appends from all of them to one conversation.
func TestManyNodes(t *testing.T) {
	dbURL := testURL(t)
	schema := newSchema(t, dbURL)
	const nodes, perNode = 4, 60
	stores := make([]*postgres.Store, nodes)
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(t.Context(), dbURL, postgres.Options{Schema: schema, MaxConns: 3})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Open: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	w := newWorld(t, stores[0])

	results := make([][]chat.AppendResult, nodes)
	msgs := make([][]chat.Message, nodes)
	for n := range nodes {
		for range perNode {
			from := w.a
			if n%2 == 1 {
				from = w.b
			}
			msgs[n] = append(msgs[n], w.msg(w.g.ID, from, fmt.Sprintf("node %d", n)))
		}
	}
	for n := range nodes {
		wg.Go(func() {
			for i := 0; i < perNode; i += 3 {
				// Each batch also touches the other conversation, in varying
				// order: the lock order must keep batches from deadlocking.
				batch := slices.Clone(msgs[n][i : i+3])
				extra := w.h.ID
				batch[1].ConversationID = extra
				if n%2 == 0 {
					batch[0], batch[1] = batch[1], batch[0]
				}
				res, err := stores[n].AppendBatch(t.Context(), batch)
				if err != nil {
					t.Errorf("node %d: %v", n, err)
					return
				}
				results[n] = append(results[n], res...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[string]map[int64]bool{w.g.ID: {}, w.h.ID: {}}
	for n, rs := range results {
		for _, r := range rs {
			if r.Err != nil || r.Duplicate {
				t.Fatalf("node %d: %+v", n, r)
			}
			conv := seen[r.Message.ConversationID]
			if conv[r.Message.Seq] {
				t.Fatalf("seq %d of %s given twice", r.Message.Seq, r.Message.ConversationID)
			}
			conv[r.Message.Seq] = true
		}
	}
	for id, conv := range seen {
		for seq := int64(1); seq <= int64(len(conv)); seq++ {
			if !conv[seq] {
				t.Errorf("%s: seq %d missing", id, seq)
			}
		}
		c, err := stores[nodes-1].Conversation(t.Context(), id)
		if err != nil || c.LastSeq != int64(len(conv)) {
			t.Errorf("%s: last_seq %d, %v; want %d", id, c.LastSeq, err, len(conv))
		}
	}
}

// TestKeyCommittedConcurrently covers a retry that reaches two nodes naming
// two conversations: the second waits for the first's idempotency key, and
// answers with the first's message once it commits.
func TestKeyCommittedConcurrently(t *testing.T) {
	s, schema := openStore(t, postgres.Options{})
	ctx := t.Context()
	w := newWorld(t, s)

	// "The other node": a transaction that stored the key in h and has not
	// committed yet.
	cfg, err := pgx.ParseConfig(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	other, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orig := w.msg(w.h.ID, w.a, "first try")
	orig.Seq = 1
	for _, q := range []string{
		`INSERT INTO message_keys (sender_id, client_message_id, conversation_id, seq) VALUES ('u-alice', '` + orig.ClientID + `', 'c-h', 1)`,
		`INSERT INTO messages (conversation_id, seq, sender_id, client_message_id, id, content_type, timestamp, content)
		 VALUES ('c-h', 1, 'u-alice', '` + orig.ClientID + `', '` + orig.ID + `', 'text', ` + fmt.Sprint(orig.Timestamp) + `, 'first try')`,
		`UPDATE conversations SET last_seq = 1 WHERE id = 'c-h'`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	retry := orig
	retry.ID, retry.ConversationID, retry.Seq = "m-retry", w.g.ID, 0
	done := make(chan []chat.AppendResult, 1)
	go func() {
		res, err := s.AppendBatch(ctx, []chat.Message{w.msg(w.g.ID, w.b, "before"), retry, w.msg(w.g.ID, w.b, "after")})
		if err != nil {
			t.Errorf("AppendBatch: %v", err)
		}
		done <- res
	}()
	select {
	case res := <-done:
		t.Fatalf("AppendBatch did not wait for the uncommitted key: %+v", res)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if len(res) != 3 {
		t.FailNow()
	}
	if !res[1].Duplicate || res[1].Message != orig {
		t.Errorf("retry = %+v (duplicate %v), want %+v", res[1].Message, res[1].Duplicate, orig)
	}
	if res[0].Message.Seq != 1 || res[2].Message.Seq != 2 {
		t.Errorf("seqs around the duplicate = %d, %d; want 1, 2", res[0].Message.Seq, res[2].Message.Seq)
	}
	if c, err := s.Conversation(ctx, w.g.ID); err != nil || c.LastSeq != 2 {
		t.Errorf("last_seq = %d, %v; want 2 (no gap)", c.LastSeq, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	s, schema := openStore(t, postgres.Options{})
	w := newWorld(t, s)
	m := w.msg(w.g.ID, w.a, "kept")
	if _, err := s.AppendBatch(t.Context(), []chat.Message{m}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s2, _ := openStore(t, postgres.Options{Schema: schema})
	res, err := s2.AppendBatch(t.Context(), []chat.Message{m, w.msg(w.g.ID, w.b, "new")})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[0].Message.Content != "kept" || res[1].Message.Seq != 2 {
		t.Errorf("after reopening: %+v", res)
	}
}

func TestOpenErrors(t *testing.T) {
	dbURL := testURL(t)
	ctx := t.Context()
	if _, err := postgres.Open(ctx, "postgres://x:y@host:notaport/db", postgres.Options{}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Open(malformed URL) = %v, want ErrInvalid", err)
	}
	if _, err := postgres.Open(ctx, dbURL, postgres.Options{Schema: "no_such_schema_here"}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Open(missing schema) = %v, want ErrInvalid", err)
	}
	down := withHost(t, dbURL, closedPort(t))
	if _, err := postgres.Open(ctx, down, postgres.Options{ConnectTimeout: time.Second}); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Open(server down) = %v, want ErrUnavailable", err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s, _ := openStore(t, postgres.Options{})
	s.Close()
	if err := s.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
	}
	_, err := s.AppendBatch(t.Context(), []chat.Message{{ID: "m", ConversationID: "c", SenderID: "u"}})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("AppendBatch after Close = %v, want ErrUnavailable", err)
	}
}

func TestCancelledContext(t *testing.T) {
	s, _ := openStore(t, postgres.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.AppendBatch(ctx, []chat.Message{{ID: "m", ConversationID: "c", SenderID: "u"}})
	if !errors.Is(err, chat.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("AppendBatch with a cancelled context = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	if err := s.CreateUser(t.Context(), chat.User{ID: "u", Username: "alice"}, nil); err != nil {
		t.Errorf("write after a cancelled one: %v", err)
	}
}

// TestServerDown reaches the server through a proxy, then takes the proxy
// away: the store reports ErrUnavailable, and recovers when it is back.
func TestServerDown(t *testing.T) {
	dbURL := testURL(t)
	target := hostPort(t, dbURL)
	p := startProxy(t, target)
	schema := newSchema(t, dbURL)
	s, err := postgres.Open(t.Context(), withHost(t, dbURL, p.addr()), postgres.Options{Schema: schema, MaxConns: 2, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open through the proxy: %v", err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	p.stop()
	if err := s.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ping with the server down = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("second Ping with the server down = %v, want ErrUnavailable", err)
	}
	_, err = s.AppendBatch(t.Context(), []chat.Message{{ID: "m", ConversationID: "c", SenderID: "u"}})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("AppendBatch with the server down = %v, want ErrUnavailable", err)
	}
	if _, err := s.User(t.Context(), "u"); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("User with the server down = %v, want ErrUnavailable", err)
	}

	p2 := startProxyAt(t, p.addr(), target)
	defer p2.stop()
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping after the server came back: %v", err)
	}
}

// hostPort returns the host:port of a postgres:// URL.
func hostPort(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		testskip.Skip(t, "PARLEY_TEST_POSTGRES is not a postgres:// URL with a host: proxy tests skipped")
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// withHost returns dbURL with another host:port.
func withHost(t *testing.T, dbURL, hostPort string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" {
		testskip.Skip(t, "PARLEY_TEST_POSTGRES is not a postgres:// URL with a host")
	}
	u.Host = hostPort
	return u.String()
}

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proxy forwards TCP connections to a target until stopped.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	once  sync.Once
}

func startProxy(t *testing.T, target string) *proxy { return startProxyAt(t, "127.0.0.1:0", target) }

func startProxyAt(t *testing.T, addr, target string) *proxy {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(p.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// stop closes the listener and cuts every forwarded connection.
func (p *proxy) stop() {
	p.once.Do(func() {
		p.ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
}

func TestSafetyStoreConformance(t *testing.T) {
	storetest.RunSafetyStore(t, conformanceStore(testURL(t)))
}
