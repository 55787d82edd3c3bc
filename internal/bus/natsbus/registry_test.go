package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/chat"
)

const (
	alice = "01ARZ3NDEKTSV4RRFFQ69G5FAA"
	bob   = "01ARZ3NDEKTSV4RRFFQ69G5FBB"
	phone = "01ARZ3NDEKTSV4RRFFQ69G5FD1"
	laptp = "01ARZ3NDEKTSV4RRFFQ69G5FD2"
)

func newRegistry(t *testing.T, b *natsbus.Bus, o natsbus.RegistryOptions) *natsbus.Registry {
	t.Helper()
	r, err := natsbus.NewRegistry(t.Context(), b, o)
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	return r
}

func online(t *testing.T, r *natsbus.Registry, user string) bool {
	t.Helper()
	ok, err := r.Online(t.Context(), user)
	if err != nil {
		t.Fatalf("online %s: %v", user, err)
	}
	return ok
}

// watch collects a registry's presence changes.
func watch(t *testing.T, r *natsbus.Registry) <-chan chat.PresenceChange {
	t.Helper()
	ch := make(chan chat.PresenceChange, 64)
	stop, err := r.Watch(t.Context(), func(p chat.PresenceChange) { ch <- p })
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	t.Cleanup(stop)
	return ch
}

func next(t *testing.T, ch <-chan chat.PresenceChange) chat.PresenceChange {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no presence change")
		return chat.PresenceChange{}
	}
}

func none(t *testing.T, ch <-chan chat.PresenceChange, d time.Duration) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("unexpected presence change %+v", p)
	case <-time.After(d):
	}
}

func TestRegistryPutOnlineDelete(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	r := newRegistry(t, b, natsbus.RegistryOptions{})
	if r.TTL() != natsbus.DefaultRegistryTTL {
		t.Fatalf("ttl %v", r.TTL())
	}
	ctx := t.Context()
	if online(t, r, alice) {
		t.Fatal("alice online before any session")
	}
	must(t, r.Put(ctx, alice, phone, "node-1"))
	must(t, r.Put(ctx, alice, laptp, "node-2"))
	must(t, r.Put(ctx, bob, phone, "node-1"))
	must(t, r.Put(ctx, alice, phone, "node-1")) // refresh
	if !online(t, r, alice) || !online(t, r, bob) {
		t.Fatal("alice and bob should be online")
	}
	devs, err := r.Devices(ctx, alice)
	must(t, err)
	if len(devs) != 2 || devs[phone] != "node-1" || devs[laptp] != "node-2" {
		t.Fatalf("alice's devices: %v", devs)
	}
	must(t, r.Delete(ctx, alice, phone, "node-1"))
	if !online(t, r, alice) {
		t.Fatal("alice has a laptop session left")
	}
	// The laptop moved to node-3 before node-2 closed its old socket:
	// node-2's delete must leave node-3's session alone.
	must(t, r.Put(ctx, alice, laptp, "node-3"))
	must(t, r.Delete(ctx, alice, laptp, "node-2"))
	if devs, err := r.Devices(ctx, alice); err != nil || devs[laptp] != "node-3" {
		t.Fatalf("the moved laptop's session: %v, %v", devs, err)
	}
	must(t, r.Delete(ctx, alice, laptp, "node-3"))
	if online(t, r, alice) {
		t.Fatal("alice online with no session")
	}
	if !online(t, r, bob) {
		t.Fatal("bob went offline with alice")
	}
	// A second node sees the same registry.
	r2 := newRegistry(t, openBus(t, s, natsbus.Options{}), natsbus.RegistryOptions{})
	if !online(t, r2, bob) || online(t, r2, alice) {
		t.Fatal("second node disagrees")
	}
	for _, bad := range [][2]string{{"", phone}, {alice, ""}, {"a.b", phone}, {alice, "d*"}, {alice, "d>"}, {"a b", phone}} {
		if err := r.Put(ctx, bad[0], bad[1], "n"); !errors.Is(err, chat.ErrInvalid) {
			t.Fatalf("put %q: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRegistryWatch(t *testing.T) {
	s := startServer(t)
	node1 := newRegistry(t, openBus(t, s, natsbus.Options{Name: "node-1"}), natsbus.RegistryOptions{})
	node2 := newRegistry(t, openBus(t, s, natsbus.Options{Name: "node-2"}), natsbus.RegistryOptions{})
	ctx := t.Context()
	must(t, node1.Put(ctx, bob, phone, "node-1")) // before the watch: reported first
	ch := watch(t, node2)
	if p := next(t, ch); p.UserID != bob || !p.Online {
		t.Fatalf("want bob online from the initial load, got %+v", p)
	}

	must(t, node1.Put(ctx, alice, phone, "node-1"))
	if p := next(t, ch); p.UserID != alice || !p.Online || p.LastSeen == 0 {
		t.Fatalf("want alice online, got %+v", p)
	}
	must(t, node1.Put(ctx, alice, phone, "node-1"))    // refresh: no change
	must(t, node2.Put(ctx, alice, laptp, "node-2"))    // second device: no change
	must(t, node1.Put(ctx, alice, phone, "node-1"))    // refresh: no change
	must(t, node1.Delete(ctx, alice, phone, "node-1")) // one device left: no change
	must(t, node1.Delete(ctx, bob, phone, ""))         // whoever holds it
	if p := next(t, ch); p.UserID != bob || p.Online {
		t.Fatalf("want bob offline, got %+v", p)
	}
	before := time.Now().UnixMilli()
	must(t, node2.Delete(ctx, alice, laptp, "node-2"))
	if p := next(t, ch); p.UserID != alice || p.Online || p.LastSeen < before-1000 {
		t.Fatalf("want alice offline, got %+v", p)
	}
	must(t, node1.Delete(ctx, alice, laptp, "node-1")) // already gone: no change
	none(t, ch, 100*time.Millisecond)
}

// TestRegistryCrashedNodeExpires: a node that stops refreshing (crashed)
// loses its sessions after the TTL, and watchers see its users go offline;
// a node that refreshes keeps them.
func TestRegistryCrashedNodeExpires(t *testing.T) {
	s := startServer(t)
	const ttl = time.Second
	crashing := openBus(t, s, fast(natsbus.Options{Name: "node-crash"}))
	crashReg := newRegistry(t, crashing, natsbus.RegistryOptions{Bucket: "ttl_test", TTL: ttl})
	alive := newRegistry(t, openBus(t, s, natsbus.Options{Name: "node-alive"}), natsbus.RegistryOptions{Bucket: "ttl_test", TTL: ttl})
	ch := watch(t, alive)
	ctx := t.Context()

	must(t, crashReg.Put(ctx, alice, phone, "node-crash"))
	if p := next(t, ch); p.UserID != alice || !p.Online {
		t.Fatalf("want alice online, got %+v", p)
	}
	must(t, alive.Put(ctx, bob, phone, "node-alive"))
	if p := next(t, ch); p.UserID != bob || !p.Online {
		t.Fatalf("want bob online, got %+v", p)
	}
	lastPut := time.Now().UnixMilli()
	must(t, crashing.Close()) // the crash: no Delete, no more refreshes

	// bob's node refreshes at TTL/10 while alice's sessions expire.
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	refreshed := make(chan error, 1)
	go func() {
		tick := time.NewTicker(ttl / 10)
		defer tick.Stop()
		for {
			select {
			case <-refreshCtx.Done():
				refreshed <- nil
				return
			case <-tick.C:
				if err := alive.Put(refreshCtx, bob, phone, "node-alive"); err != nil && refreshCtx.Err() == nil {
					refreshed <- err
					return
				}
			}
		}
	}()
	p := next(t, ch)
	if p.UserID != alice || p.Online {
		t.Fatalf("want alice offline by expiry, got %+v", p)
	}
	if p.LastSeen > lastPut+100 {
		t.Errorf("alice's last seen %d is not her last refresh (%d)", p.LastSeen, lastPut)
	}
	if online(t, alive, alice) {
		t.Fatal("alice still online after her node crashed")
	}
	none(t, ch, ttl+ttl/2) // bob stays: refreshed
	stopRefresh()
	must(t, <-refreshed)
	if !online(t, alive, bob) {
		t.Fatal("refreshed bob went offline")
	}
}

// TestRegistryWatchSurvivesServerRestart: the watcher resumes after the
// server comes back (file storage) and reports what happens next.
func TestRegistryWatchSurvivesServerRestart(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, fast(natsbus.Options{}))
	r := newRegistry(t, b, natsbus.RegistryOptions{})
	ch := watch(t, r)
	must(t, r.Put(t.Context(), alice, phone, "node-1"))
	if p := next(t, ch); p.UserID != alice || !p.Online {
		t.Fatalf("want alice online, got %+v", p)
	}
	s.restart()
	waitFor(t, "reconnect", func() bool { return b.Ping(t.Context()) == nil })
	waitFor(t, "put after restart", func() bool { return r.Put(t.Context(), bob, phone, "node-1") == nil })
	if p := next(t, ch); p.UserID != bob || !p.Online {
		t.Fatalf("want bob online, got %+v", p)
	}
	if !online(t, r, alice) {
		t.Fatal("alice's session lost in the restart")
	}
	must(t, r.Delete(t.Context(), alice, phone, "node-1"))
	if p := next(t, ch); p.UserID != alice || p.Online {
		t.Fatalf("want alice offline, got %+v", p)
	}
}

// TestRegistryWatchReportsExpiryDuringOutage: a session that expires while
// the server is down is reported once it is back.
func TestRegistryWatchReportsExpiryDuringOutage(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, fast(natsbus.Options{}))
	r := newRegistry(t, b, natsbus.RegistryOptions{Bucket: "outage", TTL: time.Second})
	ch := watch(t, r)
	must(t, r.Put(t.Context(), alice, phone, "node-1"))
	if p := next(t, ch); p.UserID != alice || !p.Online {
		t.Fatalf("want alice online, got %+v", p)
	}
	s.stop()
	time.Sleep(1500 * time.Millisecond) // past the TTL
	s.start()
	if p := next(t, ch); p.UserID != alice || p.Online {
		t.Fatalf("want alice offline, got %+v", p)
	}
}

func TestRegistryWatchEndsWithBus(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	r := newRegistry(t, b, natsbus.RegistryOptions{})
	stop, err := r.Watch(t.Context(), func(chat.PresenceChange) {})
	must(t, err)
	must(t, b.Close())
	returnsSoon(t, "stop after the bus closed", func() error { stop(); return nil })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNodesDirectory: a node's URL is found while it refreshes it, and
// gone after the TTL once it stops.
func TestNodesDirectory(t *testing.T) {
	s := startServer(t)
	b := openBus(t, s, natsbus.Options{})
	n, err := natsbus.NewNodes(t.Context(), b, natsbus.RegistryOptions{Bucket: "nodes_test", TTL: time.Second})
	must(t, err)
	must(t, n.PutNode(t.Context(), "node-1", "http://10.0.0.1:8080"))
	if u, err := n.NodeURL(t.Context(), "node-1"); err != nil || u != "http://10.0.0.1:8080" {
		t.Fatalf("node-1: %q, %v", u, err)
	}
	if _, err := n.NodeURL(t.Context(), "node-2"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	if err := n.PutNode(t.Context(), "bad.id", "http://x"); !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("bad node id: %v", err)
	}
	waitFor(t, "node-1 to expire", func() bool {
		_, err := n.NodeURL(t.Context(), "node-1")
		return errors.Is(err, chat.ErrNotFound)
	})
}

// TestRegistryPutMany: a pipelined refresh of many sessions puts every one
// (watchers see each user once), and a bad id is reported without stopping
// the others.
func TestRegistryPutMany(t *testing.T) {
	s := startServer(t)
	r := newRegistry(t, openBus(t, s, natsbus.Options{}), natsbus.RegistryOptions{})
	ch := make(chan chat.PresenceChange, 6000)
	stop, err := r.Watch(t.Context(), func(p chat.PresenceChange) { ch <- p })
	must(t, err)
	t.Cleanup(stop)
	const n = 5000 // more than one batch
	sessions := make([]chat.Session, 0, n+1)
	for i := range n {
		sessions = append(sessions, chat.Session{UserID: fmt.Sprintf("u%05d", i), DeviceID: "d"})
	}
	sessions = append(sessions, chat.Session{UserID: "bad.id", DeviceID: "d"})
	if err := r.PutMany(t.Context(), sessions, "node-1"); !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("PutMany with one bad id: %v", err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		p := next(t, ch)
		if !p.Online || seen[p.UserID] {
			t.Fatalf("unexpected change %+v", p)
		}
		seen[p.UserID] = true
	}
	if devs, err := r.Devices(t.Context(), "u04999"); err != nil || devs["d"] != "node-1" {
		t.Fatalf("the last session: %v, %v", devs, err)
	}
	none(t, ch, 200*time.Millisecond) // a refresh of live sessions changes nothing
	must(t, r.PutMany(t.Context(), sessions[:n], "node-1"))
	none(t, ch, 200*time.Millisecond)
}
