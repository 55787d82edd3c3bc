package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// WebSocket close codes of the protocol.
const (
	CloseSlowConsumer    websocket.StatusCode = 4008 // the send queue overflowed
	CloseSessionExpired  websocket.StatusCode = 4440 // token expired or revoked
	CloseHeartbeatMissed websocket.StatusCode = 4000 // nothing received for two heartbeat intervals
)

// conn is one device's socket. The read loop runs in the HTTP handler's
// goroutine; one writer goroutine owns the socket's writes and drains the
// bounded queue.
type conn struct {
	g      *Gateway
	ws     *websocket.Conn
	sess   chat.Session
	q      *outQueue
	ctx    context.Context
	cancel context.CancelFunc

	lastActive atomic.Int64 // unix nanos of the last frame or ping received
	closeOnce  sync.Once
	closeCode  websocket.StatusCode // set before the close marker is queued
	closeWhy   string
	inflight   chan struct{} // bounds sends waiting for their commit
	timers     []*time.Timer

	watchMu sync.Mutex
	watched map[string]bool // presence subscriptions

	// Read-loop state: throttles for ephemeral frames.
	ephemeral *rate.Limiter          // typing and presence_subscribe frames; nil until first used
	typing    map[string]typingState // last typing state forwarded, by conversation
}

type typingState struct {
	state string
	at    time.Time
}

// typingRefresh is how often a repeated "typing" is forwarded; clients expire
// a typing state after 5 s without one.
const typingRefresh = time.Second

// closeMarker queued after a final frame tells the writer to close the socket.
var closeMarker = []byte(nil)

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	token := bearerToken(r)
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	sess, err := g.svc.Authenticate(r.Context(), token)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.hub.admit(sess.UserID); err != nil {
		if errors.Is(err, errTooManySockets) {
			err = &chat.RateLimitError{RetryAfter: 5 * time.Second}
		} else {
			err = fmt.Errorf("%w: %v", chat.ErrUnavailable, err)
		}
		g.writeError(w, r, err)
		return
	}
	c := &conn{g: g, sess: sess, q: newOutQueue(g.cfg.SendQueueLimit), inflight: make(chan struct{}, g.cfg.MaxInflightSends)}
	c.touch()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  g.cfg.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool {
			c.touch()
			return true
		},
	})
	if err != nil {
		return // Accept has answered the request
	}
	ws.SetReadLimit(g.cfg.MaxFrameBytes)
	c.ws = ws
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.cancel()

	c.q.reply(c.ctx, proto.Encode(proto.Ready{Type: proto.TypeReady, UserID: sess.UserID, DeviceID: sess.DeviceID, HeartbeatInterval: g.cfg.HeartbeatInterval.Milliseconds()}))
	if err := g.hub.register(c); err != nil {
		g.log.Warn("socket refused", "err", err)
		c.q.close()
		_ = ws.Close(websocket.StatusTryAgainLater, "server is shutting down")
		return
	}
	defer g.sockets.Done() // register counted this socket
	g.metrics.Connections.Inc()
	g.metrics.ConnectionsTotal.Inc()
	defer g.metrics.Connections.Dec()

	go c.writeLoop()
	idle := 2 * g.cfg.HeartbeatInterval
	c.timers = append(c.timers, time.AfterFunc(idle, c.checkIdle))
	until := time.Until(time.UnixMilli(sess.ExpiresAt))
	c.timers = append(c.timers, time.AfterFunc(until, c.expire))

	c.readLoop()

	for _, t := range c.timers {
		t.Stop()
	}
	c.shutdown(websocket.StatusNormalClosure, "")
	g.hub.unregister(c)
	if err := g.svc.DeviceSeen(context.Background(), sess.DeviceID); err != nil {
		g.log.Warn("recording device last_seen", "err", err)
	}
}

func (c *conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// checkIdle closes a socket that sent nothing for two heartbeat intervals.
func (c *conn) checkIdle() {
	limit := 2 * c.g.cfg.HeartbeatInterval
	idle := time.Since(time.Unix(0, c.lastActive.Load()))
	if idle >= limit {
		c.shutdown(CloseHeartbeatMissed, "no frame or ping for two heartbeat intervals")
		return
	}
	c.timers[0].Reset(limit - idle)
}

// expire ends a socket whose session expired or was revoked: error 440, then
// close code 4440.
func (c *conn) expire() {
	frame := errorFrame(problem{Status: StatusSessionExpired, Code: "session_expired", Message: "session expired or revoked; log in again"}, "")
	c.finish(frame, CloseSessionExpired, "session expired")
}

// finish queues a last frame and closes the socket once it is written.
func (c *conn) finish(frame []byte, code websocket.StatusCode, why string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeWhy = code, why
		c.q.mu.Lock()
		if !c.q.closed {
			c.q.frames = append(c.q.frames, frame, closeMarker)
		}
		c.q.mu.Unlock()
		signal(c.q.ready)
		// If the writer is stuck, close anyway after a grace period.
		time.AfterFunc(5*time.Second, func() { c.forceClose(code, why) })
	})
}

// shutdown closes the socket now with a close code.
func (c *conn) shutdown(code websocket.StatusCode, why string) {
	c.closeOnce.Do(func() { c.forceClose(code, why) })
}

func (c *conn) forceClose(code websocket.StatusCode, why string) {
	c.q.close()
	go func() {
		_ = c.ws.Close(code, why) // bounded by the library's close timeout
		c.cancel()
	}()
}

// slow closes a socket whose queue overflowed.
func (c *conn) slow() {
	c.g.metrics.SlowClosed.Inc()
	c.shutdown(CloseSlowConsumer, "send queue overflow: reconnect and sync")
}

func (c *conn) writeLoop() {
	var buf [][]byte
	for {
		select {
		case <-c.q.ready:
		case <-c.ctx.Done():
			return
		}
		frames := c.q.take(buf)
		for _, f := range frames {
			if f == nil { // closeMarker
				c.q.close()
				_ = c.ws.Close(c.closeCode, c.closeWhy)
				c.cancel()
				return
			}
			if err := c.ws.Write(c.ctx, websocket.MessageText, f); err != nil {
				c.shutdown(websocket.StatusAbnormalClosure, "")
				return
			}
		}
		c.g.metrics.FramesOut.Add(float64(len(frames)))
		clear(frames)
		buf = frames
	}
}

func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			if status := websocket.CloseStatus(err); status == websocket.StatusMessageTooBig {
				c.g.log.Info("socket closed: frame over the read limit", "device", c.sess.DeviceID)
			}
			return
		}
		c.touch()
		if typ != websocket.MessageText {
			c.replyError(errors.Join(proto.ErrMalformed, errors.New("frames must be text (JSON)")), "")
			continue
		}
		c.handle(data)
	}
}

// reply queues one of the connection's own frames.
func (c *conn) reply(frame []byte) bool { return c.q.reply(c.ctx, frame) }

func (c *conn) replyError(err error, ref string) {
	p := classify(err)
	logProblem(c.g.log, p, err, "device", c.sess.DeviceID)
	c.g.metrics.Errors.WithLabelValues(statusLabel(p.Status)).Inc()
	c.reply(errorFrame(p, ref))
}

func (c *conn) handle(data []byte) {
	in, err := proto.DecodeInbound(data)
	if err != nil {
		c.g.metrics.FramesIn.WithLabelValues("invalid").Inc()
		c.replyError(err, in.MessageID)
		return
	}
	c.g.metrics.FramesIn.WithLabelValues(in.Type).Inc()
	switch in.Type {
	case proto.TypeSendMessage:
		c.handleSend(in)
	case proto.TypeMessageStatus:
		if err := c.g.svc.MarkStatus(c.ctx, c.sess, in.ConversationID, in.Seq, in.Status); err != nil {
			c.replyError(err, in.MessageID)
		}
	case proto.TypeTyping:
		if !c.allowEphemeral(in) {
			return
		}
		last := c.typing[in.ConversationID]
		if last.state == in.State && time.Since(last.at) < typingRefresh {
			return // a repeat within the refresh period changes nothing for anyone
		}
		if err := c.g.svc.Typing(c.ctx, c.sess, in.ConversationID, in.State); err != nil {
			c.replyError(err, in.MessageID)
			return
		}
		if c.typing == nil {
			c.typing = make(map[string]typingState)
		}
		c.typing[in.ConversationID] = typingState{in.State, time.Now()}
	case proto.TypeSync:
		c.handleSync(in)
	case proto.TypePresenceSubscribe:
		if !c.allowEphemeral(in) {
			return
		}
		for _, frame := range c.g.hub.watch(c, in.UserIDs) {
			c.reply(frame)
		}
	case proto.TypePing:
		c.reply(pongFrame)
	}
}

// allowEphemeral rate-limits typing and presence frames per socket,
// answering 429 past the limit.
func (c *conn) allowEphemeral(in *proto.Inbound) bool {
	if c.g.cfg.TypingRate <= 0 {
		return true
	}
	if c.ephemeral == nil {
		c.ephemeral = rate.NewLimiter(rate.Limit(c.g.cfg.TypingRate), 2*c.g.cfg.TypingRate)
	}
	r := c.ephemeral.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		c.replyError(&chat.RateLimitError{RetryAfter: d}, in.MessageID)
		return false
	}
	return true
}

var pongFrame = proto.Encode(proto.Pong{Type: proto.TypePong})

// handleSend submits the message in frame order (so one device's messages get
// increasing seqs) and waits for the commit off the read loop, so a
// pipelining client is not held to one commit per round trip.
func (c *conn) handleSend(in *proto.Inbound) {
	start := time.Now()
	p, err := c.g.svc.Submit(c.ctx, c.sess, chat.SendRequest{
		ClientID:        in.MessageID,
		ConversationID:  in.ConversationID,
		Content:         in.Content,
		ContentType:     in.ContentType,
		MediaID:         in.MediaID,
		ReplyToSeq:      in.ReplyToSeq,
		ClientTimestamp: in.Timestamp,
	})
	if err != nil {
		c.replyError(err, in.MessageID)
		return
	}
	select {
	case c.inflight <- struct{}{}:
	case <-c.ctx.Done():
		return
	}
	go func() {
		defer func() { <-c.inflight }()
		m, dup, err := p.Wait(c.ctx)
		if err != nil {
			if c.ctx.Err() == nil {
				c.replyError(err, in.MessageID)
			}
			return
		}
		c.reply(proto.Encode(proto.Ack{
			Type: proto.TypeAck, MessageID: in.MessageID, ServerMessageID: m.ID, ConversationID: m.ConversationID,
			Seq: m.Seq, Status: "sent", Timestamp: m.Timestamp,
		}))
		c.g.metrics.AckLatency.Observe(time.Since(start).Seconds())
		if dup {
			c.g.metrics.Duplicates.Inc()
		} else {
			c.g.metrics.MessagesIn.Inc()
		}
	}()
}

// handleSync sends what the device missed. Live deliveries are parked while
// it runs and follow the sync frames, so each conversation stays in seq order
// (a message in both comes twice with the same seq; clients drop it).
func (c *conn) handleSync(in *proto.Inbound) {
	c.q.hold()
	defer c.q.release()
	sent := 0
	res, err := c.g.svc.Sync(c.ctx, c.sess, in.Cursors, in.Limit, func(m *chat.Message) error {
		if !c.reply(newMessageFrame(m, c.sess.DeviceID)) {
			return context.Canceled
		}
		sent++
		return nil
	})
	c.g.metrics.MessagesOut.Add(float64(sent))
	if err != nil {
		if c.ctx.Err() == nil {
			c.replyError(err, "")
		}
		return
	}
	c.reply(proto.Encode(proto.SyncComplete{Type: proto.TypeSyncComplete, Conversations: res.Conversations, Truncated: res.Truncated}))
}
