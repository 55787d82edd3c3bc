package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/chat"
)

// hub is this node's table of open sockets by user, and of presence watchers
// by watched user. It subscribes to a user's bus topic while the user has a
// socket here, so the bus routes only what this node needs.
//
// Presence: a user is online while it has a socket on this node or, in a
// cluster, a live session in the registry (cluster.go). Every node follows
// the same picture and announces the changes to its own watchers, so no
// presence event travels on the bus.
type hub struct {
	g *Gateway

	mu       sync.RWMutex
	users    map[string]*userConns
	presence map[string]*presence // users online, or whose announcement is pending
	watchers map[string]map[*conn]struct{}
	recent   map[string]time.Time // last presence announcement of users gone offline
	closed   bool

	cluster *cluster  // nil on a single node
	order   *seqOrder // a cluster's reorder buffer for live messages; nil on a single node
	subs    uint64    // user subscriptions made (names each one's reorder streams)
}

type userConns struct {
	conns map[*conn]struct{}
	unsub func()
}

// hasDevice says whether one of the user's sockets here is the device's.
func (uc *userConns) hasDevice(deviceID string) bool {
	for c := range uc.conns {
		if c.sess.DeviceID == deviceID {
			return true
		}
	}
	return false
}

// presence is what subscribers were last told about a user, and what is
// true now. Changes are batched: at most one announcement per
// PresenceWindow, and offline only after PresenceGrace.
type presence struct {
	remote    bool  // the registry has a session of the user (cluster only)
	left      int64 // when the user was last seen going away (ms)
	online    bool  // last announced
	announced time.Time
	timer     *time.Timer
	hosted    bool // a socket of the user was here since the last offline: record last_seen
}

var (
	errHubClosed      = errors.New("server is shutting down")
	errTooManySockets = errors.New("too many open sockets for this user")
)

func newHub(g *Gateway) *hub {
	return &hub{g: g, users: make(map[string]*userConns), presence: make(map[string]*presence),
		watchers: make(map[string]map[*conn]struct{})}
}

// admit says whether the user may open one more socket here.
func (h *hub) admit(uid string) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return errHubClosed
	}
	if uc := h.users[uid]; uc != nil && len(uc.conns) >= h.g.cfg.MaxSocketsPerUser {
		return errTooManySockets
	}
	return nil
}

// register adds a socket; the user goes online if it was not.
func (h *hub) register(c *conn) error {
	uid, dev := c.sess.UserID, c.sess.DeviceID
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errHubClosed
	}
	uc := h.users[uid]
	if uc == nil {
		route := func(ev *chat.Event) { h.deliver(uid, ev) }
		if order := h.order; order != nil { // a cluster: put cross-node deliveries back in seq order
			h.subs++
			owner := uid + "#" + strconv.FormatUint(h.subs, 10) // fresh streams for a fresh subscription
			deliver := route
			route = func(ev *chat.Event) {
				if ev.Kind != chat.EventMessage {
					deliver(ev)
					return
				}
				order.admit(owner, ev, deliver)
			}
		}
		unsub, err := h.g.bus.Subscribe(chat.UserTopic(uid), route)
		if err != nil {
			h.mu.Unlock()
			return err
		}
		uc = &userConns{conns: make(map[*conn]struct{}, 1), unsub: unsub}
		h.users[uid] = uc
	}
	if h.cluster != nil && !uc.hasDevice(dev) { // the registry keeps one session per device
		h.cluster.put(uid, dev)
	}
	uc.conns[c] = struct{}{}
	h.g.sockets.Add(1) // under the lock, so never after closeAll began waiting
	p := h.presenceOf(uid)
	p.hosted = true
	announce := h.settle(uid, p)
	h.mu.Unlock()
	announce()
	return nil
}

// unregister removes a socket; once the user's last socket is gone (in a
// cluster: its last session anywhere) for the presence grace period, the
// user goes offline with last_seen.
func (h *hub) unregister(c *conn) {
	h.unwatchAll(c)
	uid, dev := c.sess.UserID, c.sess.DeviceID
	h.mu.Lock()
	uc := h.users[uid]
	if uc == nil {
		h.mu.Unlock()
		return
	}
	if _, ok := uc.conns[c]; !ok {
		h.mu.Unlock()
		return
	}
	delete(uc.conns, c)
	if h.cluster != nil && !uc.hasDevice(dev) {
		h.cluster.remove(uid, dev)
	}
	if len(uc.conns) == 0 {
		delete(h.users, uid)
		uc.unsub()
	}
	p := h.presenceOf(uid)
	p.left = max(p.left, time.Now().UnixMilli())
	announce := h.settle(uid, p)
	h.mu.Unlock()
	announce()
}

// presenceOf returns the user's presence entry, made if missing. Called
// with h.mu held.
func (h *hub) presenceOf(uid string) *presence {
	p := h.presence[uid]
	if p == nil {
		p = &presence{announced: h.recent[uid]}
		h.presence[uid] = p
	}
	return p
}

// live says whether the user is online now. Called with h.mu held.
func (h *hub) live(uid string, p *presence) bool {
	return h.users[uid] != nil || (p != nil && p.remote)
}

// settle compares the user's presence with what was announced and either
// returns the announcement to make now (after unlocking) or schedules a
// re-evaluation. Called with h.mu held.
func (h *hub) settle(uid string, p *presence) (announce func()) {
	nothing := func() {}
	online := h.live(uid, p)
	if online == p.online {
		if p.timer != nil {
			p.timer.Stop() // back before the change was announced: no flap
			p.timer = nil
		}
		if !online && h.presence[uid] == p {
			h.forget(uid, p)
		}
		return nothing
	}
	if p.timer != nil {
		return nothing // a re-evaluation is pending
	}
	delay := time.Until(p.announced.Add(h.g.cfg.PresenceWindow))
	if !online {
		delay = max(delay, time.Until(time.UnixMilli(p.left).Add(h.g.cfg.PresenceGrace)))
	}
	if delay > 0 {
		p.timer = time.AfterFunc(delay, func() {
			h.mu.Lock()
			p.timer = nil
			announce := nothing
			if h.presence[uid] == p {
				announce = h.settle(uid, p)
			}
			h.mu.Unlock()
			announce()
		})
		return nothing
	}
	p.online, p.announced = online, time.Now()
	change := &chat.PresenceChange{UserID: uid, Online: online, LastSeen: p.left}
	if online {
		change.LastSeen = time.Now().UnixMilli()
		return func() { h.announce(change) }
	}
	record := p.hosted
	h.forget(uid, p)
	return func() {
		if record {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.g.svc.UserGone(ctx, uid, change.LastSeen); err != nil {
				h.g.log.Warn("recording last_seen", "user", uid, "err", err)
			}
		}
		h.announce(change)
	}
}

// forget drops an offline user's presence entry. The moment of the last
// announcement is kept in recent, so a user reconnecting at once is still
// batched. Called with h.mu held.
func (h *hub) forget(uid string, p *presence) {
	delete(h.presence, uid)
	if h.recent == nil {
		h.recent = make(map[string]time.Time)
	}
	now := time.Now()
	h.recent[uid] = p.announced
	if len(h.recent) > 1024 {
		for k, at := range h.recent {
			if now.Sub(at) > h.g.cfg.PresenceWindow {
				delete(h.recent, k)
			}
		}
	}
}

// announce hands a presence change to this node's watchers of the user.
func (h *hub) announce(p *chat.PresenceChange) {
	frame := presenceFrame(p)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.watchers[p.UserID] {
		if !c.q.push(frame) {
			go c.slow()
		}
	}
}

// remoteChange applies a change of the cluster registry: the user's first
// session anywhere appeared, or its last one went away.
func (h *hub) remoteChange(ch chat.PresenceChange) {
	h.mu.Lock()
	p := h.presence[ch.UserID]
	if p == nil {
		if !ch.Online {
			h.mu.Unlock()
			return // never seen online here: nothing to take back
		}
		p = h.presenceOf(ch.UserID)
	}
	p.remote = ch.Online
	if !ch.Online {
		p.left = max(p.left, ch.LastSeen)
	}
	announce := h.settle(ch.UserID, p)
	h.mu.Unlock()
	announce()
}

// deliver hands a bus event to the user's sockets on this node. It runs on
// the bus's goroutine and never blocks: a full queue closes its socket.
func (h *hub) deliver(uid string, ev *chat.Event) {
	if ev.Kind == chat.EventBlock {
		h.mu.Lock()
		defer h.mu.Unlock()
		if uc := h.users[uid]; uc != nil && ev.Block != nil {
			for c := range uc.conns {
				h.unwatchLocked(c, ev.Block.Other)
			}
		}
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if uc := h.users[uid]; uc != nil {
		h.deliverConns(uc, ev)
	}
}

// deliverConns hands ev to each of a user's sockets (except ExceptDevice).
// Called with h.mu held (read or write); it never blocks.
func (h *hub) deliverConns(uc *userConns, ev *chat.Event) {
	for c := range uc.conns {
		if ev.ExceptDevice != "" && c.sess.DeviceID == ev.ExceptDevice {
			continue
		}
		if ev.Kind == chat.EventRevoke {
			if r := ev.Revoke; (r.TokenHash == "" || r.TokenHash == c.sess.TokenHash) && (r.DeviceID == "" || r.DeviceID == c.sess.DeviceID) {
				go c.expire()
			}
			continue
		}
		frame := ev.Encoded(encodeEvent)
		if perDevice(ev) {
			frame = newMessageFrame(ev.Message, c.sess.DeviceID)
		}
		if !c.q.push(frame) {
			go c.slow()
			continue
		}
		if ev.Kind == chat.EventMessage {
			h.g.metrics.MessagesOut.Inc()
		}
	}
}

// watch subscribes c to the presence of users and returns their current
// presence frames. Only users who share a conversation with c's user, with
// no block either way, are watched (PROTOCOL.md section 11); the others are
// skipped without a word, so the answer tells nothing about who exists.
// Ids already watched are skipped, and a socket watches at most
// MaxWatchesPerSocket users: the whole frame costs two store queries plus
// one lookup per newly watched user.
func (h *hub) watch(c *conn, userIDs []string) ([][]byte, error) {
	c.watchMu.Lock()
	fresh := make([]string, 0, len(userIDs))
	seen := make(map[string]bool, len(userIDs))
	for _, uid := range userIDs {
		if uid != "" && !seen[uid] && !c.watched[uid] {
			seen[uid] = true
			fresh = append(fresh, uid)
		}
	}
	room := h.g.cfg.MaxWatchesPerSocket - len(c.watched)
	c.watchMu.Unlock()
	var over error
	if h.g.cfg.MaxWatchesPerSocket > 0 && len(fresh) > room {
		over = fmt.Errorf("%w: a socket watches the presence of at most %d users", chat.ErrInvalid, h.g.cfg.MaxWatchesPerSocket)
		fresh = fresh[:max(0, room)]
	}
	if len(fresh) == 0 {
		return nil, over
	}
	visible, err := h.g.svc.PresenceVisible(c.ctx, c.sess, fresh)
	if err != nil {
		return nil, err
	}
	frames := make([][]byte, 0, len(visible))
	for _, uid := range visible {
		u, err := h.g.svc.User(c.ctx, uid)
		if err != nil {
			continue // deleted meanwhile
		}
		c.watchMu.Lock()
		if c.watched == nil {
			c.watched = make(map[string]bool)
		}
		c.watched[uid] = true
		c.watchMu.Unlock()
		h.mu.Lock()
		w := h.watchers[uid]
		if w == nil {
			w = make(map[*conn]struct{})
			h.watchers[uid] = w
		}
		w[c] = struct{}{}
		p := h.presence[uid]
		online := p != nil && p.online
		h.mu.Unlock()
		lastSeen := u.LastSeen
		if online {
			lastSeen = time.Now().UnixMilli()
		}
		frames = append(frames, presenceFrame(&chat.PresenceChange{UserID: uid, Online: online, LastSeen: lastSeen}))
	}
	return frames, over
}

// unwatch stops c watching uid (a block began between their users).
// Called with h.mu held for writing.
func (h *hub) unwatchLocked(c *conn, uid string) {
	c.watchMu.Lock()
	delete(c.watched, uid)
	c.watchMu.Unlock()
	if w := h.watchers[uid]; w != nil {
		delete(w, c)
		if len(w) == 0 {
			delete(h.watchers, uid)
		}
	}
}

func (h *hub) unwatchAll(c *conn) {
	c.watchMu.Lock()
	watched := c.watched
	c.watched = nil
	c.watchMu.Unlock()
	if len(watched) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for uid := range watched {
		w := h.watchers[uid]
		delete(w, c)
		if len(w) == 0 {
			delete(h.watchers, uid)
		}
	}
}

// closeAll closes every socket with "going away" so that clients reconnect
// (to another node), and refuses new ones.
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	var all []*conn
	for _, uc := range h.users {
		for c := range uc.conns {
			all = append(all, c)
		}
	}
	h.mu.Unlock()
	for _, c := range all {
		c.shutdown(websocket.StatusGoingAway, "server shutting down: reconnect")
	}
}

// flushOffline records last_seen now for every user of this node whose
// offline announcement is still pending (their sockets are gone: the node is
// stopping), so no timer writes to a store that is about to close.
func (h *hub) flushOffline(ctx context.Context) {
	h.mu.Lock()
	type gone struct {
		uid  string
		left int64
	}
	var pending []gone
	for uid, p := range h.presence {
		if p.timer != nil {
			p.timer.Stop()
			p.timer = nil
		}
		if p.hosted && h.users[uid] == nil {
			pending = append(pending, gone{uid, p.left})
		}
	}
	h.presence = make(map[string]*presence)
	h.mu.Unlock()
	for _, g := range pending {
		if err := h.g.svc.UserGone(ctx, g.uid, g.left); err != nil {
			h.g.log.Warn("recording last_seen at shutdown", "user", g.uid, "err", err)
		}
	}
}

// count returns the number of open sockets.
func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, uc := range h.users {
		n += len(uc.conns)
	}
	return n
}
