// Package natsbus is the scale-out chat.Bus on NATS, plus the JetStream pieces
// the scale-out shape needs: a session/presence Registry on a KV bucket with
// per-key TTL, and a durable work Queue on a stream with a pull consumer.
//
// The Bus is core NATS: a topic maps to the subject Prefix+topic (by default
// "parley.u.<userID>" and "parley.p.<userID>"), an event is JSON-encoded once
// per Publish and decoded into a fresh *chat.Event on every receiving
// subscription. Every Subscribe is its own NATS subscription with its own
// delivery goroutine, so a handler sees the events of one publisher in order
// and a slow handler never blocks a publisher: past the pending limits its
// events are dropped and counted (Dropped). Delivery is best effort, as the
// chat.Bus contract allows.
//
// The Registry's keys live on $KV.<bucket>.<userID>.<deviceID> (bucket
// "parley_sessions" by default); the Queue's jobs on <prefix>jobs.<name>
// (stream "PARLEY_JOBS", durable consumer "parley-jobs"; push notifications
// use their own stream, see internal/push/pushjs). Both need JetStream; the
// Registry needs nats-server 2.11 or later.
//
// The connection reconnects forever. While it is down, Publish appends to the
// reconnect buffer and returns at once; once that buffer is full, or the bus
// is closed, Publish fails with an error wrapping chat.ErrUnavailable. Events
// published while a subscriber's node is disconnected are lost to it; devices
// repair with sync.
package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/internal/chat"
)

// ErrInvalidTopic is returned for a topic that cannot be a NATS subject
// suffix: empty, with an empty token, whitespace, '*' or '>'. It wraps
// chat.ErrInvalid.
var ErrInvalidTopic = fmt.Errorf("%w: invalid bus topic", chat.ErrInvalid)

// Defaults of Options.
const (
	DefaultPrefix           = "parley."
	DefaultReconnectWait    = 500 * time.Millisecond
	DefaultReconnectJitter  = 500 * time.Millisecond
	DefaultReconnectBufSize = 8 << 20
	DefaultPendingMsgs      = 1 << 16
	DefaultPendingBytes     = 64 << 20
	DefaultWriteTimeout     = 5 * time.Second
	DefaultPingInterval     = 20 * time.Second
	DefaultDrainTimeout     = 5 * time.Second
	pingTimeout             = 2 * time.Second
)

// Options configures a Bus. The zero value is usable: every zero field takes
// its default.
type Options struct {
	// Name is the connection name shown by the server (monitoring, logs): the
	// node id.
	Name string
	// Prefix is prepended to every topic to make its subject; a missing
	// trailing '.' is added. Default "parley.".
	Prefix string
	// Logger receives connection events (disconnect, reconnect, slow
	// consumer). Default: discard.
	Logger *slog.Logger
	// ReconnectWait is the pause between reconnect attempts to one server,
	// plus a random jitter of up to ReconnectJitter (for TLS too).
	ReconnectWait   time.Duration
	ReconnectJitter time.Duration
	// ReconnectBufSize is how many bytes of publishes are buffered while the
	// connection is down; past it Publish fails with chat.ErrUnavailable.
	ReconnectBufSize int
	// PendingMsgs and PendingBytes bound what one subscription may hold
	// before its handler runs; past them its events are dropped and counted.
	PendingMsgs  int
	PendingBytes int
	// WriteTimeout bounds a write to the server socket, hence how long a
	// Publish can block on a stalled server before the connection is dropped
	// and reconnected.
	WriteTimeout time.Duration
	// PingInterval is how often the client pings the server to detect a dead
	// connection (it gives up after 3 unanswered pings).
	PingInterval time.Duration
	// DrainTimeout bounds Close.
	DrainTimeout time.Duration
	// NATS holds extra connection options: credentials, TLS, and the like.
	// They are applied before the bus's own, which they cannot override
	// (reconnect policy, buffers, timeouts and event handlers).
	NATS []nats.Option
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	} else if !strings.HasSuffix(o.Prefix, ".") {
		o.Prefix += "."
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = DefaultReconnectWait
	}
	if o.ReconnectJitter <= 0 {
		o.ReconnectJitter = DefaultReconnectJitter
	}
	if o.ReconnectBufSize <= 0 {
		o.ReconnectBufSize = DefaultReconnectBufSize
	}
	if o.PendingMsgs <= 0 {
		o.PendingMsgs = DefaultPendingMsgs
	}
	if o.PendingBytes <= 0 {
		o.PendingBytes = DefaultPendingBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
}

// Bus is a chat.Bus on one NATS connection. It is safe for concurrent use.
type Bus struct {
	nc     *nats.Conn
	opts   Options
	log    *slog.Logger
	closed chan struct{} // closed by the connection's ClosedHandler

	mu       sync.RWMutex
	subs     map[*nats.Subscription]*subscription
	dropped  uint64        // dropped by nats.go for subscriptions already gone
	overflow atomic.Uint64 // dropped from full subscription queues (dispatch.go)
	disp     dispatcher

	closeOnce sync.Once
	closeErr  error
}

var _ chat.Bus = (*Bus)(nil)

// Open connects to the NATS servers at urls (any of them; the client learns
// the rest of a cluster), retrying until ctx is done. Once connected, the bus
// reconnects forever.
func Open(ctx context.Context, urls []string, opts Options) (*Bus, error) {
	if len(urls) == 0 {
		return nil, errors.New("natsbus: no server URL")
	}
	opts.setDefaults()
	if err := validSubject(opts.Prefix + "x"); err != nil {
		return nil, fmt.Errorf("natsbus: prefix %q: %w", opts.Prefix, err)
	}
	b := &Bus{opts: opts, log: opts.Logger, closed: make(chan struct{}), subs: make(map[*nats.Subscription]*subscription)}
	var closeOnce sync.Once
	nopts := append([]nats.Option(nil), opts.NATS...)
	nopts = append(nopts,
		nats.Name(opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(opts.ReconnectWait),
		nats.ReconnectJitter(opts.ReconnectJitter, opts.ReconnectJitter),
		nats.ReconnectBufSize(opts.ReconnectBufSize),
		nats.FlusherTimeout(opts.WriteTimeout),
		nats.PingInterval(opts.PingInterval),
		nats.MaxPingsOutstanding(3),
		nats.DrainTimeout(opts.DrainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("nats disconnected", "err", err)
			} else {
				b.log.Info("nats disconnected") // Close
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted(), "server_id", nc.ConnectedServerId())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			closeOnce.Do(func() { close(b.closed) })
		}),
		nats.ErrorHandler(b.asyncError),
	)
	url := strings.Join(urls, ",")
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, nopts...)
		if err == nil {
			b.nc = nc
			b.disp.start(b)
			b.log.Info("nats connected", "server", nc.ConnectedUrlRedacted(), "name", opts.Name)
			return b, nil
		}
		b.log.Warn("nats connect failed", "attempt", attempt, "err", err)
		t := time.NewTimer(opts.ReconnectWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("natsbus: connect: %w: %w", chat.ErrUnavailable, errors.Join(err, ctx.Err()))
		case <-t.C:
		}
	}
}

// asyncError is the connection's error handler: it reports slow consumers
// (the counting itself is done by the subscriptions, see Dropped).
func (b *Bus) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub == nil {
		b.log.Warn("nats async error", "err", err)
		return
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		n, _ := sub.Dropped()
		b.log.Warn("bus subscriber too slow, events dropped", "subject", sub.Subject, "dropped", n)
		return
	}
	b.log.Warn("nats subscription error", "subject", sub.Subject, "err", err)
}

// Conn returns the underlying connection, for JetStream users and metrics.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Subject returns the subject of topic.
func (b *Bus) Subject(topic string) (string, error) {
	if err := validTopic(topic); err != nil {
		return "", err
	}
	return b.opts.Prefix + topic, nil
}

// Publish encodes ev once and sends it to every subscriber of topic on any
// node. It never waits for subscribers; it fails with chat.ErrUnavailable
// when the bus is closed or the connection is down with a full reconnect
// buffer.
func (b *Bus) Publish(ctx context.Context, topic string, ev *chat.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ev == nil {
		return fmt.Errorf("%w: nil event", chat.ErrInvalid)
	}
	subj, err := b.Subject(topic)
	if err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("natsbus: encode event: %w", err)
	}
	if err := b.nc.Publish(subj, data); err != nil {
		return publishError(err)
	}
	return nil
}

func publishError(err error) error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("natsbus: publish: %w: %w", chat.ErrTooLarge, err)
	case errors.Is(err, nats.ErrBadSubject):
		return fmt.Errorf("natsbus: publish: %w: %w", ErrInvalidTopic, err)
	default: // closed, draining, reconnect buffer full, write failures
		return fmt.Errorf("natsbus: publish: %w: %w", chat.ErrUnavailable, err)
	}
}

// Subscribe calls h, one event at a time and in arrival order, for every
// event published to topic until unsubscribe is called; h runs on a
// goroutine that exists only while the subscription has events waiting
// (dispatch.go), so an idle subscription costs no goroutine. Events that do
// not decode are logged and skipped. A subscription made while the
// connection is down takes effect when it is back.
func (b *Bus) Subscribe(topic string, h func(*chat.Event)) (func(), error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", chat.ErrInvalid)
	}
	subj, err := b.Subject(topic)
	if err != nil {
		return nil, err
	}
	s := &subscription{b: b, h: h}
	b.mu.Lock() // before the first message can be routed
	sub, err := b.nc.ChanSubscribe(subj, b.disp.shard(subj))
	if err != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("natsbus: subscribe %s: %w: %w", topic, chat.ErrUnavailable, err)
	}
	b.subs[sub] = s
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			if n, err := sub.Dropped(); err == nil {
				b.dropped += uint64(n)
			}
			delete(b.subs, sub)
			b.mu.Unlock()
			s.close()
			_ = sub.Unsubscribe() // fails only if already closed with the connection
		})
	}, nil
}

// Dropped returns how many events this bus's subscriptions have dropped
// because their handlers fell behind the pending limits.
func (b *Bus) Dropped() uint64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := b.dropped + b.overflow.Load()
	for sub := range b.subs {
		if d, err := sub.Dropped(); err == nil {
			n += uint64(d)
		}
	}
	return n
}

// Ping makes a round trip to the server, within 2 s or ctx's deadline if
// sooner. It fails at once with chat.ErrUnavailable while disconnected.
func (b *Bus) Ping(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("natsbus: ping: %w: %s", chat.ErrUnavailable, strings.ToLower(b.nc.Status().String()))
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natsbus: ping: %w: %w", chat.ErrUnavailable, err)
	}
	return nil
}

// Close drains the connection: subscriptions stop taking new events and
// deliver what they hold, buffered publishes are flushed, then the
// connection closes. It waits at most DrainTimeout (plus a little) and is
// idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		err := b.nc.Drain()
		if errors.Is(err, nats.ErrConnectionReconnecting) {
			err = nil // Drain closed it: nothing to flush to
		} else if errors.Is(err, nats.ErrConnectionClosed) {
			err = nil
		}
		select {
		case <-b.closed:
		case <-time.After(b.opts.DrainTimeout + time.Second):
			b.nc.Close()
			err = errors.Join(err, errors.New("natsbus: drain timed out"))
		}
		// What the connection handed over before it closed still reaches
		// the handlers.
		close(b.disp.stop)
		b.disp.loops.Wait()
		handled := make(chan struct{})
		go func() { b.disp.drains.Wait(); close(handled) }()
		select {
		case <-handled:
		case <-time.After(b.opts.DrainTimeout):
			err = errors.Join(err, errors.New("natsbus: handlers still running after the drain timeout"))
		}
		b.closeErr = err
	})
	return b.closeErr
}

// validTopic accepts a non-empty dot-separated topic whose tokens are
// non-empty and hold no whitespace, '*' or '>'.
func validTopic(topic string) error {
	if err := validSubject(topic); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidTopic, topic, err)
	}
	return nil
}

func validSubject(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return errors.New("empty token")
	}
	if i := strings.IndexAny(s, " \t\r\n\f\v*>"); i >= 0 {
		return fmt.Errorf("forbidden character %q", s[i])
	}
	return nil
}
