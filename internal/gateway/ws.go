package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
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

// conn is one device's socket. Once upgraded, the HTTP handler returns (so
// net/http frees the request and its goroutine): the socket is read by a
// reader goroutine that exists only while frames arrive (readers.go), and
// written by a writer goroutine that exists only while frames are queued
// (queue.go). An idle socket has no goroutine at all.
type conn struct {
	g      *Gateway
	ws     *websocket.Conn
	sess   chat.Session
	q      *outQueue
	ctx    context.Context
	cancel context.CancelFunc

	nc     net.Conn      // the hijacked TCP connection
	rd     *bufio.Reader // the library's (small) read buffer
	src    *connReader   // under rd
	wmu    sync.Mutex    // serializes writes to nc (batches, control frames)
	rstate atomic.Int32  // reader state: readParked, readActive, readDone
	poll   *poller       // watches the socket while parked; nil: a reader goroutine per socket
	pollID uint64        // key of the socket in the poller (readers_linux.go)

	rmu     sync.Mutex // orders the reader's look at its buffers with a closer's reads
	closing bool       // a close handshake began (under rmu)

	lastActive atomic.Int64 // unix nanos of the last frame or ping received
	closeOnce  sync.Once
	closeCode  websocket.StatusCode // set before the close marker is queued
	closeWhy   string
	inflight   chan struct{} // bounds sends waiting for their commit
	timer      *time.Timer   // heartbeat check and session expiry, whichever comes first

	watchMu sync.Mutex
	watched map[string]bool // presence subscriptions

	// Read-loop state: throttles for ephemeral frames.
	ephemeral *rate.Limiter          // typing and presence_subscribe frames; nil until first used
	frames    *rate.Limiter          // every frame read; nil until first used
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
	c := &conn{g: g, sess: sess, inflight: make(chan struct{}, g.cfg.MaxInflightSends)}
	c.q = newOutQueue(g.cfg.SendQueueLimit, c.writeLoop)
	c.touch()
	ws, err := websocket.Accept(&smallHijacker{ResponseWriter: w, c: c}, r, &websocket.AcceptOptions{
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
	// Accept put the reader over the raw connection: put it back over
	// connReader (nothing is buffered yet), which holds the handshake's
	// read-ahead bytes and reads in pooled chunks.
	c.rd.Reset(c.src)
	ws.SetReadLimit(g.cfg.MaxFrameBytes)
	c.ws = ws
	c.ctx, c.cancel = context.WithCancel(context.Background())

	c.q.reply(c.ctx, proto.Encode(proto.Ready{Type: proto.TypeReady, UserID: sess.UserID, DeviceID: sess.DeviceID, HeartbeatInterval: g.cfg.HeartbeatInterval.Milliseconds()}))
	if err := g.hub.register(c); err != nil {
		g.log.Warn("socket refused", "err", err)
		c.q.close()
		c.markClosing()
		_ = ws.Close(websocket.StatusTryAgainLater, "server is shutting down")
		c.cancel()
		return
	}
	// register counted this socket in g.sockets; ended calls Done.
	g.metrics.Connections.Inc()
	g.metrics.ConnectionsTotal.Inc()

	c.timer = time.AfterFunc(c.nextCheck(time.Now()), c.check)
	c.q.start()
	c.startReading()
	// The handler returns; the socket lives on in its reader and writer.
}

// ended runs once, when the socket's reading ended (the peer went away, a
// read failed, or the socket was closed): it releases everything.
func (c *conn) ended() {
	c.timer.Stop()
	c.shutdown(websocket.StatusNormalClosure, "")
	c.g.hub.unregister(c)
	if err := c.g.svc.DeviceSeen(context.Background(), c.sess.DeviceID); err != nil {
		c.g.log.Warn("recording device last_seen", "err", err)
	}
	c.g.metrics.Connections.Dec()
	c.g.sockets.Done()
}

func (c *conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// nextCheck is how long until the socket may have been silent for two
// heartbeat intervals or its session expires, whichever comes first.
func (c *conn) nextCheck(now time.Time) time.Duration {
	idle := 2*c.g.cfg.HeartbeatInterval - now.Sub(time.Unix(0, c.lastActive.Load()))
	return max(0, min(idle, time.UnixMilli(c.sess.ExpiresAt).Sub(now)))
}

// check runs on the socket's one timer: it ends a socket whose session
// expired (error 440, close 4440) or that sent nothing for two heartbeat
// intervals (close 4000), else waits for the next deadline.
func (c *conn) check() {
	now := time.Now()
	if !now.Before(time.UnixMilli(c.sess.ExpiresAt)) {
		c.expire()
		return
	}
	if now.Sub(time.Unix(0, c.lastActive.Load())) >= 2*c.g.cfg.HeartbeatInterval {
		c.shutdown(CloseHeartbeatMissed, "no frame or ping for two heartbeat intervals")
		return
	}
	c.timer.Reset(c.nextCheck(now))
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
		c.q.pushFinal(frame, closeMarker)
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
		c.markClosing()
		_ = c.ws.Close(code, why) // bounded by the library's close timeout
		c.cancel()
		c.stopped()
	}()
}

// markClosing tells the reader that a close handshake now reads the socket.
func (c *conn) markClosing() {
	c.rmu.Lock()
	c.closing = true
	c.rmu.Unlock()
}

// slow closes a socket whose queue overflowed.
func (c *conn) slow() {
	c.g.metrics.SlowClosed.Inc()
	c.shutdown(CloseSlowConsumer, "send queue overflow: reconnect and sync")
}

// writeLoop is the writer goroutine, started by the queue when frames
// arrive: it writes everything queued in one batch, again until the queue
// is empty, then ends.
func (c *conn) writeLoop() {
	var buf [][]byte
	for {
		frames := c.q.take(buf)
		if frames == nil {
			return
		}
		batch := frames
		final := false
		for i, f := range frames {
			if f == nil { // closeMarker
				batch, final = frames[:i], true
				break
			}
		}
		if len(batch) > 0 {
			if err := c.writeFrames(batch); err != nil {
				c.q.close()
				c.shutdown(websocket.StatusAbnormalClosure, "")
				return
			}
			c.g.metrics.FramesOut.Add(float64(len(batch)))
		}
		if final {
			c.q.close()
			c.markClosing()
			_ = c.ws.Close(c.closeCode, c.closeWhy)
			c.cancel()
			c.stopped()
			return
		}
		clear(frames)
		buf = frames
	}
}

// readFrames reads and handles frames until no more bytes are buffered (the
// reader may then stop until the socket is readable again) or, with
// blocking, until the socket ends. It returns false when the socket ended.
//
// The library is given a context without deadline, so it arms no timer per
// read: every path that ends a socket closes it, which ends a pending read.
func (c *conn) readFrames(blocking bool) bool {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if status := websocket.CloseStatus(err); status == websocket.StatusMessageTooBig {
				c.g.log.Info("socket closed: frame over the read limit", "device", c.sess.DeviceID)
			}
			return false
		}
		c.touch()
		if !c.throttle(len(data)) {
			return false
		}
		if typ != websocket.MessageText {
			c.replyError(errors.Join(proto.ErrMalformed, errors.New("frames must be text (JSON)")), "")
		} else {
			c.handle(data)
		}
		if !blocking {
			more, closing := c.buffered()
			if closing {
				return false
			}
			if !more {
				return true
			}
		}
	}
}

// frameCostBytes is how many bytes of a frame count as one more frame
// against the frame rate: parsing costs by the byte, so a flood of large
// frames (presence_subscribe with 1000 ids, 30 KB) is slowed like a flood of
// many small ones.
const frameCostBytes = 4 << 10

// throttle holds the reader while the socket is over its frame rate, so a
// client flooding frames is slowed by TCP flow control instead of costing
// the server a parse and an answer per frame, and others keep their share
// of the CPU. A frame of n bytes counts as 1 + n/4 KiB frames. It returns
// false if the socket closed meanwhile.
func (c *conn) throttle(n int) bool {
	if c.g.cfg.FrameRate <= 0 {
		return true
	}
	if c.frames == nil {
		c.frames = rate.NewLimiter(rate.Limit(c.g.cfg.FrameRate), 2*c.g.cfg.FrameRate)
	}
	return c.frames.WaitN(c.ctx, min(1+n/frameCostBytes, c.frames.Burst())) == nil
}

// buffered reports whether received bytes wait in user space (which a
// readiness notification would not announce), unless a close handshake
// reads the socket now (closing).
func (c *conn) buffered() (more, closing bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closing {
		return false, true
	}
	return c.rd.Buffered() > 0 || c.src.pending(), false
}

// reply queues one of the connection's own frames.
func (c *conn) reply(frame []byte) bool { return c.q.reply(c.ctx, frame) }

func (c *conn) replyError(err error, ref string) {
	p := classify(err)
	if c.ctx.Err() == nil { // a socket that is closing: no server fault
		logProblem(c.g.log, p, err, "device", c.sess.DeviceID)
	}
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
		frames, err := c.g.hub.watch(c, in.UserIDs)
		for _, frame := range frames {
			c.reply(frame)
		}
		if err != nil {
			c.replyError(err, in.MessageID)
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
