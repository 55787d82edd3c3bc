package gateway

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Sessions is the cluster-wide session registry (natsbus.Registry): one
// session per connected device, naming the node that holds its socket, and
// expiring by itself unless refreshed, so a crashed node's users go offline
// on the other nodes once the TTL runs out.
type Sessions interface {
	// Put records or refreshes that the device has a socket on nodeID.
	Put(ctx context.Context, userID, deviceID, nodeID string) error
	// PutMany is Put for many sessions at once, pipelined.
	PutMany(ctx context.Context, sessions []chat.Session, nodeID string) error
	// Delete removes the device's session if nodeID still holds it.
	Delete(ctx context.Context, userID, deviceID, nodeID string) error
	// Devices returns the user's live sessions: device id → node id.
	Devices(ctx context.Context, userID string) (map[string]string, error)
	// Watch reports every user going online or offline, starting with the
	// users online now, until stop is called.
	Watch(ctx context.Context, h func(chat.PresenceChange)) (stop func(), err error)
	// TTL is how long a session lives without a refresh.
	TTL() time.Duration
}

// NodeDirectory maps node ids to the URLs at which nodes reach each other
// (natsbus.Nodes). Entries expire unless refreshed.
type NodeDirectory interface {
	PutNode(ctx context.Context, nodeID, url string) error
	NodeURL(ctx context.Context, nodeID string) (string, error)
}

// ClusterConfig joins a node to a cluster.
type ClusterConfig struct {
	Sessions Sessions
	NodeID   string
	// Nodes and AdvertiseURL, both set, let this node take requests for
	// resumable uploads held by another node and forward them there
	// (uploadroute.go). Without them an upload is continued only through
	// the node that created it.
	Nodes        NodeDirectory
	AdvertiseURL string
}

// clusterShards is how many registry writers run at once. A device's writes
// always go to the same shard, so they happen in the order they were made.
const clusterShards = 4

// cluster keeps this node's sessions in the registry and follows the
// registry's presence picture for the hub. Writes never wait: they queue,
// collapsed per device (only the last wanted state is written), on a shard
// whose goroutine writes them; every TTL/3 all local sessions are put
// again at once (pipelined, see refresh), which also repairs writes lost in
// a NATS outage.
type cluster struct {
	reg    Sessions
	node   string
	token  string // node as a URL path and KV key token
	nodes  NodeDirectory
	self   string // advertised URL; "" with nodes nil
	hub    *hub
	seed   maphash.Seed
	shards [clusterShards]shard
	stop   context.CancelFunc
	done   sync.WaitGroup
	unwat  func()
}

type sessionKey struct{ user, device string }

type shard struct {
	mu      sync.Mutex
	pending map[sessionKey]bool // true: put, false: delete
	order   []sessionKey        // keys with a pending write, oldest first
	wake    chan struct{}
}

// StartCluster joins this node to a cluster: its sessions go into the
// registry under the node id, and presence follows the whole cluster. Call
// it before serving; CloseAll leaves the cluster.
func (g *Gateway) StartCluster(cc ClusterConfig) error {
	cctx, cancel := context.WithCancel(context.Background())
	c := &cluster{reg: cc.Sessions, node: cc.NodeID, token: nodeToken(cc.NodeID), hub: g.hub, seed: maphash.MakeSeed(), stop: cancel}
	if cc.Nodes != nil && cc.AdvertiseURL != "" {
		c.nodes, c.self = cc.Nodes, strings.TrimRight(cc.AdvertiseURL, "/")
		if err := c.advertise(); err != nil {
			cancel()
			return err
		}
	}
	for i := range c.shards {
		c.shards[i].pending = make(map[sessionKey]bool)
		c.shards[i].wake = make(chan struct{}, 1)
	}
	m := g.metrics
	for _, outcome := range []string{"held", "filled", "released"} {
		m.Reorder.WithLabelValues(outcome) // exported from the start, at 0
	}
	g.hub.mu.Lock()
	g.hub.cluster = c
	g.hub.order = newSeqOrder(g.cfg.ReorderHold, g.missingMessages,
		func(outcome string, n int) { m.Reorder.WithLabelValues(outcome).Add(float64(n)) })
	g.hub.mu.Unlock()
	unwatch, err := c.reg.Watch(cctx, g.hub.remoteChange) // ends with leave, not with a caller's ctx
	if err != nil {
		cancel()
		g.hub.mu.Lock()
		g.hub.cluster, g.hub.order = nil, nil
		g.hub.mu.Unlock()
		return err
	}
	c.unwat = unwatch
	for i := range c.shards {
		c.done.Add(1)
		go c.write(cctx, &c.shards[i])
	}
	c.done.Add(1)
	go c.refresh(cctx)
	return nil
}

// advertise puts (or refreshes) this node's URL in the node directory.
func (c *cluster) advertise() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.nodes.PutNode(ctx, c.token, c.self)
}

// nodeToken is a node id as one token of [A-Za-z0-9_-]: other characters
// (a host name's dots) become '_'.
func nodeToken(id string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, id)
}

// put queues the device's session. Called with the hub's lock held.
func (c *cluster) put(user, device string) { c.queue(sessionKey{user, device}, true) }

// remove queues the end of the device's session. Called with the hub's lock
// held.
func (c *cluster) remove(user, device string) { c.queue(sessionKey{user, device}, false) }

func (c *cluster) queue(k sessionKey, put bool) {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(k.user)
	h.WriteString(k.device)
	s := &c.shards[h.Sum64()%clusterShards]
	s.mu.Lock()
	if _, queued := s.pending[k]; !queued {
		s.order = append(s.order, k)
	}
	s.pending[k] = put
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// write is a shard's writer: it writes the shard's pending sessions until
// ctx ends, then what is left (the deletes of a closing node) for at most a
// few seconds.
func (c *cluster) write(ctx context.Context, s *shard) {
	defer c.done.Done()
	for {
		for c.writeOne(s) {
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && c.writeOne(s); {
			}
			return
		}
	}
}

// writeOne writes the oldest pending session and says whether there was one.
func (c *cluster) writeOne(s *shard) bool {
	s.mu.Lock()
	if len(s.order) == 0 {
		s.mu.Unlock()
		return false
	}
	k := s.order[0]
	s.order = s.order[1:]
	put := s.pending[k]
	delete(s.pending, k)
	if len(s.order) == 0 { // let a burst's arrays go (a reconnect storm queues thousands)
		s.order, s.pending = nil, make(map[sessionKey]bool)
	}
	s.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if put {
		err = c.reg.Put(wctx, k.user, k.device, c.node)
	} else {
		err = c.reg.Delete(wctx, k.user, k.device, c.node)
	}
	if err != nil {
		c.hub.g.metrics.RegistryErrors.Inc()
		c.hub.g.log.Debug("session registry write", "user", k.user, "device", k.device, "put", put, "err", err)
	}
	return true
}

// refresh puts every local session again every TTL/3, pipelined, so they
// outlive the TTL while this node lives; that also repairs writes lost in a
// NATS outage.
func (c *cluster) refresh(ctx context.Context) {
	defer c.done.Done()
	every := c.reg.TTL() / 3
	t := time.NewTicker(every)
	defer t.Stop()
	var sessions []chat.Session
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if c.nodes != nil {
			if err := c.advertise(); err != nil {
				c.hub.g.metrics.RegistryErrors.Inc()
				c.hub.g.log.Debug("node directory write", "err", err)
			}
		}
		h := c.hub
		sessions = sessions[:0]
		h.mu.RLock()
		for uid, uc := range h.users {
			for conn := range uc.conns {
				sessions = append(sessions, chat.Session{UserID: uid, DeviceID: conn.sess.DeviceID})
			}
		}
		h.mu.RUnlock()
		rctx, cancel := context.WithTimeout(ctx, every)
		if err := c.reg.PutMany(rctx, sessions, c.node); err != nil {
			c.hub.g.metrics.RegistryErrors.Inc()
			c.hub.g.log.Warn("refreshing this node's sessions in the registry", "sessions", len(sessions), "err", err)
		}
		cancel()
		// A device that left while its refresh was on the way may have had
		// its delete overtaken by the put: delete it again.
		h.mu.RLock()
		for _, sess := range sessions {
			if uc := h.users[sess.UserID]; uc == nil || !uc.hasDevice(sess.DeviceID) {
				c.remove(sess.UserID, sess.DeviceID)
			}
		}
		h.mu.RUnlock()
	}
}

// leave stops following the registry and writes the pending session ends.
func (c *cluster) leave() {
	c.unwat()
	c.stop()
	c.done.Wait()
}

// devices returns the user's sessions anywhere in the cluster.
func (c *cluster) devices(userID string) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	devs, err := c.reg.Devices(ctx, userID)
	if err != nil {
		c.hub.g.log.Debug("session registry read", "user", userID, "err", err)
	}
	return devs
}

// missingMessages reads the messages a reorder hold waited for in vain:
// those of the conversation with from < seq < to.
func (g *Gateway) missingMessages(conv string, from, to int64) ([]*chat.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := g.svc.DeliveryMessages(ctx, conv, from, int(to-from-1))
	if err != nil {
		g.log.Warn("reading messages a reorder hold missed", "conversation", conv, "after", from, "err", err)
		return nil, err
	}
	evs := make([]*chat.Event, 0, len(msgs))
	for i := range msgs {
		if m := &msgs[i]; m.Seq < to {
			evs = append(evs, &chat.Event{Kind: chat.EventMessage, ExceptDevice: m.SenderDeviceID, Message: m})
		}
	}
	return evs, nil
}
