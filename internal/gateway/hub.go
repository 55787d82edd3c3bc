package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/chat"
)

// hub is this node's table of open sockets by user, and of presence watchers
// by watched user. It subscribes to a user's bus topic while the user has a
// socket here, so the bus routes only what this node needs.
type hub struct {
	g *Gateway

	mu       sync.RWMutex
	users    map[string]*userConns
	watchers map[string]*watchers
	recent   map[string]time.Time // last presence announcement of users gone offline
	closed   bool
}

type userConns struct {
	conns map[*conn]struct{}
	unsub func()
	// Presence: what subscribers were last told, when, and a pending
	// re-evaluation. Changes are batched: at most one announcement per
	// PresenceWindow, and offline only after PresenceGrace.
	online    bool
	announced time.Time
	left      int64 // when the last socket closed (ms)
	timer     *time.Timer
}

type watchers struct {
	conns map[*conn]struct{}
	unsub func()
}

var (
	errHubClosed      = errors.New("server is shutting down")
	errTooManySockets = errors.New("too many open sockets for this user")
)

func newHub(g *Gateway) *hub {
	return &hub{g: g, users: make(map[string]*userConns), watchers: make(map[string]*watchers)}
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
	uid := c.sess.UserID
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errHubClosed
	}
	uc := h.users[uid]
	if uc == nil {
		unsub, err := h.g.bus.Subscribe(chat.UserTopic(uid), func(ev *chat.Event) { h.deliver(uid, ev) })
		if err != nil {
			h.mu.Unlock()
			return err
		}
		uc = &userConns{conns: make(map[*conn]struct{}, 1), unsub: unsub, announced: h.recent[uid]}
		h.users[uid] = uc
	}
	uc.conns[c] = struct{}{}
	h.g.sockets.Add(1) // under the lock, so never after closeAll began waiting
	announce := h.settle(uid, uc)
	h.mu.Unlock()
	announce()
	return nil
}

// unregister removes a socket; once the user's last socket is gone for the
// presence grace period, the user goes offline with last_seen.
func (h *hub) unregister(c *conn) {
	h.unwatchAll(c)
	uid := c.sess.UserID
	h.mu.Lock()
	uc := h.users[uid]
	if uc == nil {
		h.mu.Unlock()
		return
	}
	delete(uc.conns, c)
	if len(uc.conns) == 0 {
		uc.left = time.Now().UnixMilli()
	}
	announce := h.settle(uid, uc)
	h.mu.Unlock()
	announce()
}

// settle compares the user's presence with what was announced and either
// returns the announcement to make now (after unlocking) or schedules a
// re-evaluation. Called with h.mu held.
func (h *hub) settle(uid string, uc *userConns) (announce func()) {
	nothing := func() {}
	online := len(uc.conns) > 0
	if online == uc.online {
		if uc.timer != nil {
			uc.timer.Stop() // back before the change was announced: no flap
			uc.timer = nil
		}
		if !online && len(uc.conns) == 0 && h.users[uid] == uc {
			h.forget(uid, uc)
		}
		return nothing
	}
	if uc.timer != nil {
		return nothing // a re-evaluation is pending
	}
	delay := time.Until(uc.announced.Add(h.g.cfg.PresenceWindow))
	if !online {
		delay = max(delay, time.Until(time.UnixMilli(uc.left).Add(h.g.cfg.PresenceGrace)))
	}
	if delay > 0 {
		uc.timer = time.AfterFunc(delay, func() {
			h.mu.Lock()
			uc.timer = nil
			announce := h.settle(uid, uc)
			h.mu.Unlock()
			announce()
		})
		return nothing
	}
	uc.online, uc.announced = online, time.Now()
	change := &chat.PresenceChange{UserID: uid, Online: online, LastSeen: uc.left}
	if online {
		change.LastSeen = time.Now().UnixMilli()
		return func() { h.publishPresence(change) }
	}
	h.forget(uid, uc)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.g.svc.UserGone(ctx, uid, change.LastSeen); err != nil {
			h.g.log.Warn("recording last_seen", "user", uid, "err", err)
		}
		h.publishPresence(change)
	}
}

// forget drops an offline user's entry and bus subscription. The moment of
// the last announcement is kept in recent, so a user reconnecting at once is
// still batched. Called with h.mu held.
func (h *hub) forget(uid string, uc *userConns) {
	delete(h.users, uid)
	uc.unsub()
	if h.recent == nil {
		h.recent = make(map[string]time.Time)
	}
	now := time.Now()
	h.recent[uid] = uc.announced
	if len(h.recent) > 1024 {
		for k, at := range h.recent {
			if now.Sub(at) > h.g.cfg.PresenceWindow {
				delete(h.recent, k)
			}
		}
	}
}

func (h *hub) publishPresence(p *chat.PresenceChange) {
	ev := &chat.Event{Kind: chat.EventPresence, Presence: p}
	if err := h.g.bus.Publish(context.Background(), chat.PresenceTopic(p.UserID), ev); err != nil {
		h.g.log.Warn("publishing presence", "user", p.UserID, "err", err)
	}
}

// deliver hands a bus event to the user's sockets on this node. It runs on
// the bus's goroutine and never blocks: a full queue closes its socket.
func (h *hub) deliver(uid string, ev *chat.Event) {
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
// presence frames.
func (h *hub) watch(c *conn, userIDs []string) [][]byte {
	frames := make([][]byte, 0, len(userIDs))
	for _, uid := range userIDs {
		if uid == "" {
			continue
		}
		u, err := h.g.svc.User(c.ctx, uid)
		if err != nil {
			continue // unknown users have no presence
		}
		c.watchMu.Lock()
		already := c.watched[uid]
		if !already {
			if c.watched == nil {
				c.watched = make(map[string]bool)
			}
			c.watched[uid] = true
		}
		c.watchMu.Unlock()
		h.mu.Lock()
		if !already {
			w := h.watchers[uid]
			if w == nil {
				unsub, err := h.g.bus.Subscribe(chat.PresenceTopic(uid), func(ev *chat.Event) { h.deliverPresence(uid, ev) })
				if err != nil {
					h.mu.Unlock()
					continue
				}
				w = &watchers{conns: make(map[*conn]struct{}), unsub: unsub}
				h.watchers[uid] = w
			}
			w.conns[c] = struct{}{}
		}
		uc := h.users[uid]
		online := uc != nil && uc.online
		h.mu.Unlock()
		lastSeen := u.LastSeen
		if online {
			lastSeen = time.Now().UnixMilli()
		}
		frames = append(frames, presenceFrame(&chat.PresenceChange{UserID: uid, Online: online, LastSeen: lastSeen}))
	}
	return frames
}

func (h *hub) deliverPresence(uid string, ev *chat.Event) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	w := h.watchers[uid]
	if w == nil {
		return
	}
	for c := range w.conns {
		if !c.q.push(ev.Encoded(encodeEvent)) {
			go c.slow()
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
		if w == nil {
			continue
		}
		delete(w.conns, c)
		if len(w.conns) == 0 {
			w.unsub()
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

// flushOffline records last_seen now for every user whose offline
// announcement is still pending (their sockets are gone: the node is
// stopping), so no timer writes to a store that is about to close.
func (h *hub) flushOffline(ctx context.Context) {
	h.mu.Lock()
	type gone struct {
		uid  string
		left int64
	}
	var pending []gone
	for uid, uc := range h.users {
		if uc.timer != nil {
			uc.timer.Stop()
			uc.timer = nil
		}
		if len(uc.conns) == 0 {
			pending = append(pending, gone{uid, uc.left})
		}
	}
	h.users = make(map[string]*userConns)
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
