package push_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
	"github.com/parley-chat/parley/internal/push"
	"github.com/parley-chat/parley/internal/push/pushtest"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// presence is a hand-set Presence.
type presence struct {
	mu      sync.Mutex
	users   map[string]bool
	devices map[string]bool
}

func newPresence() *presence { return &presence{users: map[string]bool{}, devices: map[string]bool{}} }

func (p *presence) set(sess chat.Session, online bool) {
	p.mu.Lock()
	p.users[sess.UserID], p.devices[sess.DeviceID] = online, online
	p.mu.Unlock()
}

func (p *presence) Online(uid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.users[uid]
}

func (p *presence) DeviceOnline(_, deviceID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.devices[deviceID]
}

// metrics counts what the pipeline reports.
type metrics struct {
	recorded, dropped, queued atomic.Int64
	mu                        sync.Mutex
	sent                      map[string]int // "platform/outcome"
}

func (m *metrics) Recorded(n int) { m.recorded.Add(int64(n)) }
func (m *metrics) Dropped(n int)  { m.dropped.Add(int64(n)) }
func (m *metrics) Queued(n int)   { m.queued.Add(int64(n)) }
func (m *metrics) Sent(platform, outcome string, _ time.Duration) {
	m.mu.Lock()
	m.sent[platform+"/"+outcome]++
	m.mu.Unlock()
}

func (m *metrics) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent[key]
}

// String lists the outcomes counted so far.
func (m *metrics) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(m.sent)
}

// roots trusts the test servers' certificate (shared by every httptest TLS server).
func roots(srv *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(srv.Certificate())
	return p
}

// env is a chat service wired to a push service on one SQLite store, with a
// fake clock and hand-set presence.
type env struct {
	t        testing.TB
	ctx      context.Context
	store    *sqlite.Store
	chat     *chat.Service
	push     *push.Service
	clock    *clock
	presence *presence
	metrics  *metrics
	seq      atomic.Int64
	cfg      push.Config    // as the push service got it
	roots    *x509.CertPool // trusted by the push service
}

// newEnv builds and starts the services. cfg gets a VAPID key file, a fast
// poll and loopback endpoints; tls is any receiver's server; deps may
// change the push service's dependencies (a queue, a store wrapper).
func newEnv(t testing.TB, cfg push.Config, tls *httptest.Server, start bool, deps ...func(*push.Deps)) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(t.Context(), filepath.Join(dir, "parley.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: t.Context(), store: store, clock: newClock(), presence: newPresence(), metrics: &metrics{sent: map[string]int{}}}
	cfg.VAPIDKeyFile = filepath.Join(dir, "vapid.key")
	cfg.AllowLoopback = true
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	e.cfg, e.roots = cfg, roots(tls)
	d := push.Deps{Store: store, Metrics: e.metrics, Now: e.clock.Now, RootCAs: e.roots}
	for _, f := range deps {
		f(&d)
	}
	e.push, err = push.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	e.chat = chat.NewService(chat.Config{}, chat.Deps{Store: store, Bus: local.New(), Hasher: security.NewBcrypt(4), Observer: e.push, Now: e.clock.Now})
	if start {
		e.push.Start(e.presence)
	}
	t.Cleanup(func() {
		e.chat.Close()
		e.push.Close()
		store.Close()
	})
	return e
}

// user registers a user (display name = name) and logs in one device.
func (e *env) user(name string) chat.Session {
	e.t.Helper()
	u, err := e.chat.Register(e.ctx, fmt.Sprintf("%s%d", strings.ToLower(name), e.seq.Add(1)), "password-"+name, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.device(u.Username, name)
}

// device logs one more device in for username.
func (e *env) device(username, name string) chat.Session {
	e.t.Helper()
	res, err := e.chat.Login(e.ctx, username, "password-"+name, "device", "")
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Session
}

func (e *env) direct(a, b chat.Session) string {
	e.t.Helper()
	c, _, err := e.chat.OpenDirect(e.ctx, a, b.UserID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.ID
}

// send stores messages from sess and returns the last seq.
func (e *env) send(sess chat.Session, conv string, texts ...string) int64 {
	e.t.Helper()
	var seq int64
	for _, text := range texts {
		m, err := e.chat.Send(e.ctx, sess, chat.SendRequest{ClientID: fmt.Sprint("c", e.seq.Add(1)), ConversationID: conv, Content: text})
		if err != nil {
			e.t.Fatal(err)
		}
		seq = m.Seq
	}
	return seq
}

// subscribe subscribes sess's device to a Web Push receiver.
func (e *env) subscribe(sess chat.Session, sub pushtest.Subscription, platform string) chat.PushSubscription {
	e.t.Helper()
	req := proto.PushSubscribeRequest{Platform: platform, Endpoint: sub.Endpoint}
	if sub.P256dh != "" {
		req.Keys = &proto.PushKeys{P256dh: sub.P256dh, Auth: sub.Auth}
	}
	s, err := e.push.Subscribe(e.ctx, sess, req)
	if err != nil {
		e.t.Fatalf("Subscribe: %v", err)
	}
	return s
}

// pair registers alice and bob, subscribes bob's device to wp (his
// phone) and opens their direct conversation.
func (e *env) pair(wp *pushtest.WebPush) (alice, bob chat.Session, phone pushtest.Subscription, conv string) {
	e.t.Helper()
	alice, bob = e.user("Alice"), e.user("Bob")
	phone = wp.Subscribe(true)
	e.subscribe(bob, phone, chat.PlatformWebPush)
	return alice, bob, phone, e.direct(alice, bob)
}

// eventually polls cond until it holds, failing after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settle gives the pipeline time to do something it must not do.
func settle() { time.Sleep(60 * time.Millisecond) }
