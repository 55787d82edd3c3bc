package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WebSocket close codes used by the server.
const (
	CloseSessionExpired = 4440 // the token expired or was revoked: Run stops
	CloseSlowConsumer   = 4008 // the client read too slowly: Run reconnects and syncs
)

var errHeartbeatTimeout = errors.New("parley: no frame from the server for two heartbeat intervals")

// wsConn is one established WebSocket connection.
type wsConn struct {
	ws     *websocket.Conn
	url    string
	ready  Ready
	ctx    context.Context // ends with the connection
	cancel context.CancelCauseFunc
	// lastRecv is when the last frame arrived (unix ns).
	lastRecv atomic.Int64
}

// write sends one frame. It does not take the caller's context: cancelling
// a write half-way would close the socket for everyone (the library closes
// the connection when a write's context ends), so writes are bounded by
// writeTimeout and by the connection's life instead.
func (w *wsConn) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("parley: encode frame: %w", err)
	}
	ctx, cancel := context.WithTimeout(w.ctx, writeTimeout)
	defer cancel()
	if err := w.ws.Write(ctx, websocket.MessageText, b); err != nil {
		w.cancel(err)
		return fmt.Errorf("parley: write: %w", err)
	}
	return nil
}

// Outgoing frames.
type (
	syncFrame struct {
		Type    string           `json:"type"`
		Cursors map[string]int64 `json:"cursors"`
		Limit   int              `json:"limit,omitempty"`
	}
	statusFrame struct {
		Type           string `json:"type"`
		ConversationID string `json:"conversation_id"`
		Seq            int64  `json:"seq"`
		Status         string `json:"status"`
	}
	typingFrame struct {
		Type           string `json:"type"`
		ConversationID string `json:"conversation_id"`
		State          string `json:"state"`
	}
	presenceSubscribeFrame struct {
		Type    string   `json:"type"`
		UserIDs []string `json:"user_ids"`
	}
	pingFrame struct {
		Type string `json:"type"`
	}
)

// session dials url, runs one connection until it ends and reports whether
// it got as far as ready, and why it ended.
func (c *Client) session(ctx context.Context, url string) (connected bool, err error) {
	wsu, err := wsURL(url)
	if err != nil {
		return false, err
	}
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	ws, resp, err := websocket.Dial(dctx, wsu, &websocket.DialOptions{
		HTTPClient: c.hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}},
	})
	dcancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != 0 {
			ae := decodeHTTPError(resp)
			if resp.Body != nil {
				_ = resp.Body.Close()
			}
			return false, ae
		}
		return false, err
	}
	defer ws.CloseNow()
	ws.SetReadLimit(readLimit)

	connCtx, cancelConn := context.WithCancelCause(ctx)
	defer cancelConn(nil)

	// The first frame must be ready (or an error such as 440).
	rctx, rcancel := context.WithTimeout(connCtx, readyTimeout)
	_, data, err := ws.Read(rctx)
	rcancel()
	if err != nil {
		return false, readError(err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return false, fmt.Errorf("parley: bad first frame: %w", err)
	}
	switch head.Type {
	case "ready":
	case "error":
		return false, decodeErrorFrame(data)
	default:
		return false, fmt.Errorf("parley: first frame is %q, want ready", head.Type)
	}
	var ready Ready
	if err := json.Unmarshal(data, &ready); err != nil {
		return false, fmt.Errorf("parley: bad ready frame: %w", err)
	}
	ready.URL = url

	conn := &wsConn{ws: ws, url: url, ready: ready, ctx: connCtx, cancel: cancelConn}
	conn.lastRecv.Store(time.Now().UnixNano())

	c.mu.Lock()
	c.self = ready
	subs := make([]string, 0, len(c.presence))
	for id := range c.presence {
		subs = append(subs, id)
	}
	c.mu.Unlock()
	c.log.Info("parley: connected", "url", url, "user_id", ready.UserID, "device_id", ready.DeviceID)

	c.seqMu.Lock()
	var cursors map[string]int64
	if !c.noSync {
		c.seq.beginSync()
		cursors = c.seq.cursors()
	}
	r := ready
	c.queue.push(Event{Kind: EventConnected, Ready: &r})
	c.seqMu.Unlock()

	if !c.noSync {
		if err := conn.write(syncFrame{Type: "sync", Cursors: cursors, Limit: c.syncLimit}); err != nil {
			return true, err
		}
	}
	if len(subs) > 0 {
		if err := conn.write(presenceSubscribeFrame{Type: "presence_subscribe", UserIDs: subs}); err != nil {
			return true, err
		}
	}

	c.setConn(conn)
	defer c.clearConn(conn)

	c.wg.Add(1)
	go c.keepalive(conn)

	for {
		_, data, err := ws.Read(connCtx)
		if err != nil {
			if cause := context.Cause(connCtx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
				return true, cause
			}
			return true, readError(err)
		}
		conn.lastRecv.Store(time.Now().UnixNano())
		if err := c.handleFrame(ctx, conn, data); err != nil {
			return true, err
		}
	}
}

// readError maps a read failure to the error Run reports: close code 4440 is
// a session expiry.
func readError(err error) error {
	switch websocket.CloseStatus(err) {
	case CloseSessionExpired:
		var ce websocket.CloseError
		errors.As(err, &ce)
		msg := ce.Reason
		if msg == "" {
			msg = "session expired"
		}
		return &APIError{Status: 440, Code: "session_expired", Message: msg}
	case CloseSlowConsumer:
		return fmt.Errorf("parley: closed by the server as a slow consumer (4008): %w", err)
	}
	return err
}

// keepalive pings every heartbeat interval, drops a connection that has
// been silent for two intervals, and sends automatic delivered receipts.
func (c *Client) keepalive(conn *wsConn) {
	defer c.wg.Done()
	interval := time.Duration(conn.ready.HeartbeatInterval) * time.Millisecond
	if interval <= 0 {
		interval = defaultHeartbeat
	}
	deadAfter := 2*interval + min(interval, 10*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	c.flushReceipts(conn)
	for {
		select {
		case <-conn.ctx.Done():
			return
		case <-t.C:
			if time.Since(time.Unix(0, conn.lastRecv.Load())) > deadAfter {
				c.log.Warn("parley: heartbeat timeout", "url", conn.url)
				conn.cancel(errHeartbeatTimeout)
				return
			}
			if err := conn.write(pingFrame{Type: "ping"}); err != nil {
				return
			}
		case <-c.receiptKick:
			c.flushReceipts(conn)
		}
	}
}

// flushReceipts sends the automatic delivered receipts not sent yet.
func (c *Client) flushReceipts(conn *wsConn) {
	if !c.autoDelivered {
		return
	}
	c.mu.Lock()
	var todo []statusFrame
	for id, seq := range c.receipts {
		if seq > c.sentRcpt[id] {
			todo = append(todo, statusFrame{Type: "message_status", ConversationID: id, Seq: seq, Status: StatusDelivered})
		}
	}
	c.mu.Unlock()
	for _, f := range todo {
		if err := conn.write(f); err != nil {
			return
		}
		c.mu.Lock()
		if f.Seq > c.sentRcpt[f.ConversationID] {
			c.sentRcpt[f.ConversationID] = f.Seq
		}
		c.mu.Unlock()
	}
}

// handleFrame dispatches one frame. A non-nil error ends the connection.
func (c *Client) handleFrame(ctx context.Context, conn *wsConn, data []byte) error {
	var head struct {
		Type    string          `json:"type"`
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		c.log.Warn("parley: undecodable frame", "err", err)
		return nil
	}
	switch head.Type {
	case "new_message":
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			c.log.Warn("parley: bad new_message", "err", err)
			return nil
		}
		if m.Seq == 0 && len(head.Message) > 0 && head.Message[0] == '{' {
			_ = json.Unmarshal(head.Message, &m) // nested form
		}
		if m.Seq <= 0 || m.ConversationID == "" {
			c.log.Warn("parley: new_message without seq or conversation_id", "message_id", m.MessageID)
			return nil
		}
		c.pushMessage(ctx, m)
	case "ack":
		var a Ack
		if err := json.Unmarshal(data, &a); err != nil {
			c.log.Warn("parley: bad ack", "err", err)
			return nil
		}
		c.handleAck(ctx, conn, a)
	case "message_status":
		var s StatusUpdate
		if json.Unmarshal(data, &s) == nil {
			c.queue.push(Event{Kind: EventStatus, Status: &s})
		}
	case "typing":
		var t TypingUpdate
		if json.Unmarshal(data, &t) == nil {
			c.queue.push(Event{Kind: EventTyping, Typing: &t})
		}
	case "presence":
		var p Presence
		if json.Unmarshal(data, &p) == nil {
			c.queue.push(Event{Kind: EventPresence, Presence: &p})
		}
	case "conversation_updated":
		var u ConversationUpdate
		if json.Unmarshal(data, &u) == nil {
			c.queue.push(Event{Kind: EventConversationUpdated, Update: &u})
		}
	case "sync_complete":
		var sc SyncComplete
		if err := json.Unmarshal(data, &sc); err != nil {
			c.log.Warn("parley: bad sync_complete", "err", err)
			return nil
		}
		if sc.Conversations == nil {
			sc.Conversations = map[string]int64{}
		}
		c.seqMu.Lock()
		out, fills := c.seq.syncComplete(sc)
		c.releaseLocked(out)
		c.queue.push(Event{Kind: EventSyncComplete, Sync: &sc})
		c.seqMu.Unlock()
		c.startFills(ctx, fills)
	case "error":
		ae := decodeErrorFrame(data)
		if ae.Status == 440 {
			return ae
		}
		if ae.Ref != "" && c.deliverResult(ae.Ref, sendResult{err: ae}) {
			return nil
		}
		c.queue.push(Event{Kind: EventError, Err: ae})
	case "pong", "ready":
	default:
		c.log.Debug("parley: ignoring frame", "type", head.Type)
	}
	return nil
}

// pushMessage feeds a message to the sequencer and queues what it releases.
func (c *Client) pushMessage(ctx context.Context, m Message) {
	c.seqMu.Lock()
	out, fills := c.seq.push(m)
	c.releaseLocked(out)
	c.seqMu.Unlock()
	c.startFills(ctx, fills)
}
