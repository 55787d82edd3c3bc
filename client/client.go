package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultEventBuffer = 256
	DefaultAckTimeout  = 10 * time.Second
	defaultHeartbeat   = 30 * time.Second
	dialTimeout        = 15 * time.Second
	readyTimeout       = 15 * time.Second
	writeTimeout       = 10 * time.Second
	fillTimeout        = 30 * time.Second
	readLimit          = 16 << 20
	// healthyAfter is how long a connection must have lived for the next
	// reconnect to start again from the smallest backoff.
	healthyAfter = 10 * time.Second
)

// Config configures a Client. Only URLs and Token are required.
type Config struct {
	// URLs are one or more server base URLs ("http://localhost:8080"; the
	// default when empty). Run connects to the first; every reconnect tries
	// the next one, round robin. REST calls use the one Run uses.
	URLs []string
	// Token is the bearer token of a session (see Login).
	Token string
	// Logger receives connection diagnostics; nil discards them.
	Logger *slog.Logger
	// HTTPClient is used for REST calls and the WebSocket handshake; nil uses
	// http.DefaultClient. Its Transport must support HTTP/1.1 upgrades.
	HTTPClient *http.Client
	// BackoffMin and BackoffMax bound the reconnect backoff (exponential with
	// full jitter). Defaults: 250ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// AutoDelivered makes the client send message_status "delivered" for a
	// conversation once a message of another user has been received from
	// Events by the app (coalesced: one frame per conversation up to its
	// highest delivered seq).
	AutoDelivered bool
	// Cursors are the initial cursors: conversation id to the highest seq the
	// app already has. Messages up to them are not delivered again. Save
	// Client.Cursors when you stop and pass them here next time.
	Cursors map[string]int64
	// SyncLimit is the per-conversation limit of the sync frame; 0 lets the
	// server decide (100). Conversations with more missed messages are
	// filled over REST.
	SyncLimit int
	// NoSync disables the sync frame after connecting: for tools that only
	// send. Only live messages are delivered then.
	NoSync bool
	// EventBuffer is the capacity of the Events channel (default 256).
	EventBuffer int
	// AckTimeout is how long Send waits for an ack before resending the
	// frame (same message id) on the same connection. Default 10s.
	AckTimeout time.Duration
}

// Client is a connection to a Parley server: REST calls, and, while Run runs,
// a WebSocket that is kept connected and synced. It is safe for concurrent use.
type Client struct {
	urls          []string
	token         string
	log           *slog.Logger
	hc            *http.Client
	backoff       Backoff
	autoDelivered bool
	syncLimit     int
	noSync        bool
	ackTimeout    time.Duration

	events chan Event
	queue  *eventQueue

	// seqMu guards seq and orders the release of messages into the queue,
	// so that the read loop and fill goroutines release in seq order.
	seqMu sync.Mutex
	seq   *sequencer

	receiptKick chan struct{} // capacity 1

	mu          sync.Mutex
	urlIdx      int
	cur         *wsConn
	connChanged chan struct{} // closed and replaced whenever cur changes, and at stop
	started     bool
	stopped     bool
	runErr      error // why Run returned
	self        Ready
	pending     map[string][]*pendingSend
	presence    map[string]struct{}
	handed      map[string]int64 // highest seq handed to the app, per conversation
	receipts    map[string]int64 // delivered receipts to send (AutoDelivered)
	sentRcpt    map[string]int64 // delivered receipts sent

	wg sync.WaitGroup // goroutines started by Run
}

// New returns a Client. It does not connect: call Run for the socket; REST
// methods work at once.
func New(cfg Config) *Client {
	urls := make([]string, 0, len(cfg.URLs))
	for _, u := range cfg.URLs {
		if u = NormalizeURL(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		urls = append(urls, "http://localhost:8080")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	buf := cfg.EventBuffer
	if buf <= 0 {
		buf = DefaultEventBuffer
	}
	ackTimeout := cfg.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = DefaultAckTimeout
	}
	c := &Client{
		urls:          urls,
		token:         cfg.Token,
		log:           log,
		hc:            hc,
		backoff:       Backoff{Min: cfg.BackoffMin, Max: cfg.BackoffMax},
		autoDelivered: cfg.AutoDelivered,
		syncLimit:     cfg.SyncLimit,
		noSync:        cfg.NoSync,
		ackTimeout:    ackTimeout,
		events:        make(chan Event, buf),
		queue:         newEventQueue(),
		seq:           newSequencer(cfg.Cursors),
		receiptKick:   make(chan struct{}, 1),
		connChanged:   make(chan struct{}),
		pending:       make(map[string][]*pendingSend),
		presence:      make(map[string]struct{}),
		handed:        make(map[string]int64),
		receipts:      make(map[string]int64),
		sentRcpt:      make(map[string]int64),
	}
	if cfg.NoSync {
		c.seq.syncing = false
	}
	for id, s := range cfg.Cursors {
		if id != "" && s > 0 {
			c.handed[id] = s
		}
	}
	return c
}

// Events returns the channel of events. Read it for as long as Run runs: the
// connection never blocks on the app, so events the app has not read yet
// wait in an unbounded in-memory queue behind the channel (memory grows if
// the app stops reading). The channel is closed when Run returns; events
// still queued then that do not fit in the channel's buffer are dropped, and
// Cursors does not count messages that were dropped.
func (c *Client) Events() <-chan Event { return c.events }

// Cursors returns, per conversation, the highest seq of the messages handed
// to the app through Events (or given in Config.Cursors): persist it and pass
// it as Config.Cursors to resume without loss or duplicates.
func (c *Client) Cursors() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.handed)
}

// Self returns the user and device ids announced by the last ready frame,
// and whether one arrived yet.
func (c *Client) Self() (userID, deviceID string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self.UserID, c.self.DeviceID, c.self.UserID != ""
}

// Connected reports whether a connection is up (ready received).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

func (c *Client) currentURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.urls[c.urlIdx%len(c.urls)]
}

// Run connects the WebSocket and keeps it connected until ctx ends or the
// session expires. After each (re)connect it waits for ready, then sends
// sync with the cursors of the messages received so far; between attempts
// it waits an exponential backoff with full jitter, trying the next URL.
//
// Run returns ctx.Err() when ctx ends, or an error matching
// ErrSessionExpired (and wrapping the *APIError) after a 401 at the
// handshake, an error frame with status 440 or close code 4440; an
// EventExpired precedes it. Run may be called once per Client; when it
// returns, every goroutine it started has ended and Events is closed.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrAlreadyRunning
	}
	c.started = true
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stopPump := make(chan struct{})
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		c.pump(stopPump)
	}()

	err := c.loop(ctx)
	cancel()
	c.wg.Wait()

	c.mu.Lock()
	c.stopped = true
	c.runErr = err
	c.cur = nil
	close(c.connChanged)
	c.connChanged = make(chan struct{})
	c.mu.Unlock()

	close(stopPump)
	<-pumpDone
	return err
}

func (c *Client) loop(ctx context.Context) error {
	attempt := 0
	for {
		url := c.currentURL()
		start := time.Now()
		connected, err := c.session(ctx, url)
		if ctx.Err() != nil {
			if connected {
				c.queue.push(Event{Kind: EventDisconnected, Err: ctx.Err()})
			}
			return ctx.Err()
		}
		if exp := expiryError(err); exp != nil {
			if connected {
				c.queue.push(Event{Kind: EventDisconnected, Err: exp})
			}
			c.queue.push(Event{Kind: EventExpired, Err: exp})
			c.log.Warn("parley: session expired", "url", url, "err", exp)
			if errors.Is(exp, ErrSessionExpired) {
				return exp
			}
			return fmt.Errorf("%w: %w", ErrSessionExpired, exp)
		}
		if connected {
			c.queue.push(Event{Kind: EventDisconnected, Err: err})
			if time.Since(start) >= healthyAfter {
				attempt = 0
			}
		}
		c.mu.Lock()
		c.urlIdx = (c.urlIdx + 1) % len(c.urls)
		c.mu.Unlock()
		delay := c.backoff.Delay(attempt)
		attempt++
		c.log.Info("parley: disconnected, reconnecting", "url", url, "err", err, "in", delay)
		if !sleepCtx(ctx, delay) {
			return ctx.Err()
		}
	}
}

// expiryError returns the error to surface if err means the session is over:
// 401 at the handshake, status 440, close code 4440.
func expiryError(err error) error {
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 440) {
		return ae
	}
	return nil
}

// setConn publishes the current connection (nil: none) and wakes waiters.
func (c *Client) setConn(conn *wsConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn == nil || c.cur != conn {
		c.cur = conn
		close(c.connChanged)
		c.connChanged = make(chan struct{})
	}
}

// clearConn unpublishes conn if it is the current one.
func (c *Client) clearConn(conn *wsConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == conn {
		c.cur = nil
		close(c.connChanged)
		c.connChanged = make(chan struct{})
	}
}

// waitConn returns the current live connection, waiting for one. It fails
// with ctx's error, or ErrClosed once Run has returned.
func (c *Client) waitConn(ctx context.Context) (*wsConn, error) {
	for {
		c.mu.Lock()
		stopped, runErr, cur, ch := c.stopped, c.runErr, c.cur, c.connChanged
		c.mu.Unlock()
		if stopped {
			if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: %w", ErrClosed, runErr)
			}
			return nil, ErrClosed
		}
		if cur != nil && cur.ctx.Err() == nil {
			return cur, nil
		}
		if cur != nil {
			// Dead but not yet unpublished: wait for the read loop.
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// pump moves events from the unbounded queue to the Events channel.
func (c *Client) pump(stop <-chan struct{}) {
	defer close(c.events)
	for {
		ev, ok := c.queue.pop()
		if !ok {
			select {
			case <-c.queue.notify:
				continue
			case <-stop:
				c.flushEvents()
				return
			}
		}
		select {
		case c.events <- ev:
			c.handedOff(ev)
		case <-stop:
			c.queue.pushFront(ev)
			c.flushEvents()
			return
		}
	}
}

// flushEvents hands the events still queued to the channel without
// blocking and drops the rest.
func (c *Client) flushEvents() {
	dropped := 0
	for {
		ev, ok := c.queue.pop()
		if !ok {
			break
		}
		select {
		case c.events <- ev:
			c.handedOff(ev)
		default:
			dropped++
		}
	}
	if dropped > 0 {
		c.log.Warn("parley: events dropped at shutdown: the app did not read Events", "dropped", dropped)
	}
}

// handedOff records a message the app received: cursor and auto receipt.
func (c *Client) handedOff(ev Event) {
	if ev.Kind != EventMessage || ev.Message == nil {
		return
	}
	m := ev.Message
	c.mu.Lock()
	if m.Seq > c.handed[m.ConversationID] {
		c.handed[m.ConversationID] = m.Seq
	}
	kick := false
	if c.autoDelivered && m.SenderID != c.self.UserID && m.Seq > c.receipts[m.ConversationID] {
		c.receipts[m.ConversationID] = m.Seq
		kick = true
	}
	c.mu.Unlock()
	if kick {
		select {
		case c.receiptKick <- struct{}{}:
		default:
		}
	}
}

// releaseLocked queues released messages as events. Call with seqMu held.
func (c *Client) releaseLocked(msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	evs := make([]Event, len(msgs))
	for i := range msgs {
		m := msgs[i]
		evs[i] = Event{Kind: EventMessage, Message: &m}
	}
	c.queue.push(evs...)
}

// startFills starts a goroutine per fill request.
func (c *Client) startFills(ctx context.Context, fills []fillRequest) {
	for _, f := range fills {
		c.wg.Add(1)
		go c.runFill(ctx, f)
	}
}

// runFill fetches a gap page by page (after=S, limit 200) until the
// sequencer is satisfied.
func (c *Client) runFill(ctx context.Context, req fillRequest) {
	defer c.wg.Done()
	fails := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, fillTimeout)
		page, err := c.History(pctx, req.ConversationID, HistoryQuery{After: req.After, Forward: true, Limit: fillPageLimit})
		cancel()
		if ctx.Err() != nil || (err != nil && expiryError(err) != nil) {
			c.seqMu.Lock()
			c.seq.fillAborted(req.ConversationID)
			c.seqMu.Unlock()
			return
		}
		var (
			out   []Message
			next  *fillRequest
			stall bool
			wait  time.Duration
		)
		c.seqMu.Lock()
		if err != nil {
			var ae *APIError
			permanent := errors.As(err, &ae) && !ae.Temporary() && ae.Status != 408
			if ae != nil && ae.RetryAfter > 0 {
				wait = ae.RetryAfter
			}
			c.log.Warn("parley: gap fill failed", "conversation_id", req.ConversationID, "after", req.After, "err", err)
			out, next = c.seq.fillFailed(req.ConversationID, permanent)
			stall = true
		} else {
			out, next, stall = c.seq.fillPage(req.ConversationID, page.Messages, page.HasMore)
		}
		c.releaseLocked(out)
		c.seqMu.Unlock()
		if next == nil {
			if stall || err != nil {
				c.log.Warn("parley: gave up filling a gap", "conversation_id", req.ConversationID)
			}
			return
		}
		if stall {
			fails++
			if d := c.backoff.Delay(fails); d > wait {
				wait = d
			}
			if !sleepCtx(ctx, wait) {
				c.seqMu.Lock()
				c.seq.fillAborted(req.ConversationID)
				c.seqMu.Unlock()
				return
			}
		} else {
			fails = 0
		}
		req = *next
	}
}
