package client

import (
	"context"
	"errors"
	"slices"
	"time"
)

// sendFrame is a send_message frame.
type sendFrame struct {
	Type           string `json:"type"`
	MessageID      string `json:"message_id"`
	ConversationID string `json:"conversation_id"`
	Content        string `json:"content"`
	ContentType    string `json:"content_type,omitempty"`
	MediaID        string `json:"media_id,omitempty"`
	ReplyToSeq     int64  `json:"reply_to_seq,omitempty"`
	Timestamp      int64  `json:"timestamp,omitempty"`
}

type sendResult struct {
	ack Ack
	err error
}

// pendingSend is a Send waiting for its ack.
type pendingSend struct {
	frame sendFrame
	ch    chan sendResult // capacity 1, latest result wins
}

// SendOption adjusts a Send.
type SendOption func(*sendFrame)

// WithContentType sets the content type (default ContentText).
func WithContentType(t string) SendOption { return func(f *sendFrame) { f.ContentType = t } }

// WithMediaID attaches an uploaded media object.
func WithMediaID(id string) SendOption { return func(f *sendFrame) { f.MediaID = id } }

// WithReplyTo marks the message as a reply to the message with that seq.
func WithReplyTo(seq int64) SendOption { return func(f *sendFrame) { f.ReplyToSeq = seq } }

// WithMessageID sets the client message id (the idempotency key) instead of
// a fresh one: sending twice with the same id delivers the message once.
func WithMessageID(id string) SendOption { return func(f *sendFrame) { f.MessageID = id } }

// WithTimestamp sets the client timestamp of the message (default: now).
func WithTimestamp(t time.Time) SendOption { return func(f *sendFrame) { f.Timestamp = t.UnixMilli() } }

// Send sends a message and waits until the server acknowledges that it is
// stored. The frame carries a client message id (a fresh ULID unless
// WithMessageID) and is sent again with the same id after a reconnect, or if
// no ack came within Config.AckTimeout, until it is acknowledged: the server
// delivers it once however many times it was sent.
//
// A 429 answer waits its retry_after and retries, 500 and 503 retry with
// backoff; any other error answer (400, 403, 404, 413, 422...) is returned
// at once as an *APIError. Send also returns when ctx ends (the message may
// or may not have been stored: send again with the same id to know), or with
// ErrClosed when Run has returned. Send waits for a connection: call Run.
//
// The acknowledged message is also handed to the app as an EventMessage, in
// seq order, like every other message of the conversation.
func (c *Client) Send(ctx context.Context, conversationID, content string, opts ...SendOption) (Ack, error) {
	f := sendFrame{
		Type:           "send_message",
		ConversationID: conversationID,
		Content:        content,
		ContentType:    ContentText,
		Timestamp:      time.Now().UnixMilli(),
	}
	for _, o := range opts {
		o(&f)
	}
	if f.MessageID == "" {
		f.MessageID = NewMessageID()
	}
	if f.ContentType == "" {
		f.ContentType = ContentText
	}
	p := &pendingSend{frame: f, ch: make(chan sendResult, 1)}
	c.addPending(p)
	defer c.removePending(p)

	retries := 0
	for {
		conn, err := c.waitConn(ctx)
		if err != nil {
			return Ack{}, err
		}
		if err := conn.write(f); err != nil {
			// The connection is broken: wait for the next one.
			select {
			case <-conn.ctx.Done():
			case <-ctx.Done():
				return Ack{}, ctx.Err()
			}
			continue
		}
		timer := time.NewTimer(c.ackTimeout)
		select {
		case r := <-p.ch:
			timer.Stop()
			if r.err == nil {
				return r.ack, nil
			}
			var ae *APIError
			if !errors.As(r.err, &ae) {
				return Ack{}, r.err
			}
			switch {
			case ae.Status == 429 || ae.Status >= 500:
				retries++
				wait := c.backoff.Delay(retries)
				if ae.RetryAfter > 0 {
					wait = ae.RetryAfter
				}
				c.log.Debug("parley: send will retry", "message_id", f.MessageID, "status", ae.Status, "in", wait)
				if !sleepCtx(ctx, wait) {
					return Ack{}, ctx.Err()
				}
			default:
				return Ack{}, ae
			}
		case <-conn.ctx.Done():
			timer.Stop()
		case <-timer.C:
			c.log.Debug("parley: no ack, resending", "message_id", f.MessageID)
		case <-ctx.Done():
			timer.Stop()
			return Ack{}, ctx.Err()
		}
	}
}

func (c *Client) addPending(p *pendingSend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[p.frame.MessageID] = append(c.pending[p.frame.MessageID], p)
}

func (c *Client) removePending(p *pendingSend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := p.frame.MessageID
	list := slices.DeleteFunc(c.pending[id], func(q *pendingSend) bool { return q == p })
	if len(list) == 0 {
		delete(c.pending, id)
	} else {
		c.pending[id] = list
	}
}

// deliverResult hands an ack or error to the Sends waiting for messageID and
// reports whether there was one. It returns the frame of the first waiter.
func (c *Client) deliverResult(messageID string, r sendResult) bool {
	_, ok := c.deliverResultFrame(messageID, r)
	return ok
}

func (c *Client) deliverResultFrame(messageID string, r sendResult) (sendFrame, bool) {
	c.mu.Lock()
	list := slices.Clone(c.pending[messageID])
	c.mu.Unlock()
	for _, p := range list {
		select {
		case p.ch <- r:
		default:
			// Replace a result nobody read yet with the newer one.
			select {
			case <-p.ch:
			default:
			}
			select {
			case p.ch <- r:
			default:
			}
		}
	}
	if len(list) == 0 {
		return sendFrame{}, false
	}
	return list[0].frame, true
}

// handleAck wakes the matching Send and feeds the acknowledged message to the
// sequencer (the sending device gets no new_message for it).
func (c *Client) handleAck(ctx context.Context, conn *wsConn, a Ack) {
	f, ok := c.deliverResultFrame(a.MessageID, sendResult{ack: a})
	if !ok || a.Seq <= 0 {
		return
	}
	convID := a.ConversationID
	if convID == "" {
		convID = f.ConversationID
	}
	m := Message{
		MessageID:       a.ServerMessageID,
		ClientMessageID: a.MessageID,
		ConversationID:  convID,
		Seq:             a.Seq,
		SenderID:        conn.ready.UserID,
		SenderDeviceID:  conn.ready.DeviceID,
		Content:         f.Content,
		ContentType:     f.ContentType,
		MediaID:         f.MediaID,
		ReplyToSeq:      f.ReplyToSeq,
		Timestamp:       a.Timestamp,
	}
	c.pushMessage(ctx, m)
}

// MarkDelivered moves the caller's delivered watermark of a conversation up
// to seq (message_status "delivered"). It waits for a connection.
func (c *Client) MarkDelivered(ctx context.Context, conversationID string, seq int64) error {
	return c.sendStatus(ctx, conversationID, seq, StatusDelivered)
}

// MarkRead moves the caller's read watermark (and delivered) of a
// conversation up to seq. It waits for a connection.
func (c *Client) MarkRead(ctx context.Context, conversationID string, seq int64) error {
	return c.sendStatus(ctx, conversationID, seq, StatusRead)
}

func (c *Client) sendStatus(ctx context.Context, conversationID string, seq int64, status string) error {
	f := statusFrame{Type: "message_status", ConversationID: conversationID, Seq: seq, Status: status}
	for {
		conn, err := c.waitConn(ctx)
		if err != nil {
			return err
		}
		if err := conn.write(f); err != nil {
			select {
			case <-conn.ctx.Done():
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if status == StatusDelivered || status == StatusRead {
			c.mu.Lock()
			if seq > c.sentRcpt[conversationID] {
				c.sentRcpt[conversationID] = seq
			}
			c.mu.Unlock()
		}
		return nil
	}
}

// Typing tells the members of a conversation that the user started (true)
// or stopped (false) typing. Typing is ephemeral: without a connection it
// fails at once with ErrNotConnected.
func (c *Client) Typing(ctx context.Context, conversationID string, typing bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	conn, stopped := c.cur, c.stopped
	c.mu.Unlock()
	if stopped {
		return ErrClosed
	}
	if conn == nil || conn.ctx.Err() != nil {
		return ErrNotConnected
	}
	state := "stopped"
	if typing {
		state = "typing"
	}
	return conn.write(typingFrame{Type: "typing", ConversationID: conversationID, State: state})
}

// SubscribePresence subscribes to the presence of users: the server sends
// their current presence, then every change, as EventPresence. The
// subscription is remembered and renewed after every reconnect; without a
// connection it is sent on the next connect.
func (c *Client) SubscribePresence(ctx context.Context, userIDs ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(userIDs) == 0 {
		return nil
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return ErrClosed
	}
	for _, id := range userIDs {
		c.presence[id] = struct{}{}
	}
	conn := c.cur
	c.mu.Unlock()
	if conn == nil || conn.ctx.Err() != nil {
		return nil
	}
	if err := conn.write(presenceSubscribeFrame{Type: "presence_subscribe", UserIDs: userIDs}); err != nil {
		// Renewed with every subscription on the next connect.
		c.log.Debug("parley: presence_subscribe not sent now", "err", err)
	}
	return nil
}
