package chat

import (
	"context"
	"slices"
	"time"
)

// Typing states.
const (
	TypingStarted = "typing"
	TypingStopped = "stopped"
)

type receiptReq struct {
	w      Watermark
	status string
	// alsoDelivered: a delivered receipt beyond the read one was merged into
	// this read receipt, so both are announced.
	alsoDelivered bool
	device        string
}

// MarkStatus moves the caller's delivered or read watermark of a conversation
// up to seq (never down; read implies delivered). The change is stored, then
// sent to the other members and to the caller's other devices (in a
// fan-out-on-read conversation to the caller's other devices only). Receipts
// are coalesced: many arriving together become one write per member.
func (s *Service) MarkStatus(ctx context.Context, sess Session, conversationID string, seq int64, status string) error {
	if conversationID == "" {
		return errf(ErrBadRequest, "conversation_id is required")
	}
	if status != StatusDelivered && status != StatusRead {
		return errf(ErrBadRequest, "status must be %q or %q", StatusDelivered, StatusRead)
	}
	if seq < 0 {
		return errf(ErrBadRequest, "seq must not be negative")
	}
	if err := s.CheckMember(ctx, sess, conversationID); err != nil {
		return err
	}
	w := Watermark{ConversationID: conversationID, UserID: sess.UserID, DeliveredSeq: seq}
	if status == StatusRead {
		w.ReadSeq = seq
	}
	r := receiptReq{w: w, status: status, device: sess.DeviceID}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return errf(ErrUnavailable, "server is shutting down")
	}
	select {
	case s.receipts <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// receiptLoop coalesces receipts: each round takes every waiting receipt,
// keeps the highest per member and conversation, writes them in one
// transaction, and publishes the watermarks that moved.
func (s *Service) receiptLoop() {
	defer s.wg.Done()
	type key struct{ conv, user string }
	for {
		var first receiptReq
		select {
		case first = <-s.receipts:
		case <-s.stop:
			return
		}
		pending := map[key]receiptReq{{first.w.ConversationID, first.w.UserID}: first}
	fill:
		for len(pending) < 1024 {
			select {
			case r := <-s.receipts:
				k := key{r.w.ConversationID, r.w.UserID}
				if old, ok := pending[k]; ok {
					r.w.DeliveredSeq = max(r.w.DeliveredSeq, old.w.DeliveredSeq)
					r.w.ReadSeq = max(r.w.ReadSeq, old.w.ReadSeq)
					if old.status == StatusRead {
						r.status = StatusRead
					}
					r.alsoDelivered = r.status == StatusRead && r.w.DeliveredSeq > r.w.ReadSeq
				}
				pending[k] = r
			default:
				break fill
			}
		}
		ws := make([]Watermark, 0, len(pending))
		for _, r := range pending {
			ws = append(ws, r.w)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		moved, err := s.store.UpdateWatermarks(ctx, ws)
		if err != nil {
			cancel()
			s.log.Error("storing receipts failed", "receipts", len(ws), "err", err)
			continue
		}
		now := s.now().UnixMilli()
		members := map[string][]string{} // recipients, loaded once per conversation per round
		for _, w := range moved {
			ids, ok := members[w.ConversationID]
			if !ok {
				conv, err := s.store.Conversation(ctx, w.ConversationID)
				if err != nil {
					s.log.Warn("loading members to announce a receipt", "conversation", w.ConversationID, "err", err)
				}
				ids = conv.MemberIDs()
				members[w.ConversationID] = ids
			}
			recipients := ids
			if s.fanoutOnRead(len(ids)) {
				// A channel: one member's watermark is news for its own
				// devices only, not for thousands of others (who read the
				// watermarks in the conversation when they want them).
				recipients = []string{w.UserID}
			}
			s.publishStatus(ctx, pending[key{w.ConversationID, w.UserID}], w, recipients, now)
		}
		cancel()
		if s.observe != nil && len(moved) > 0 {
			s.observe.WatermarksMoved(moved)
		}
	}
}

func (s *Service) publishStatus(ctx context.Context, r receiptReq, w Watermark, recipients []string, now int64) {
	send := func(status string, seq int64) {
		ev := &Event{Kind: EventStatus, ExceptDevice: r.device, Status: &StatusChange{
			ConversationID: w.ConversationID, UserID: w.UserID, Seq: seq, Status: status, Timestamp: now,
		}}
		s.publishTo(ctx, recipients, ev)
	}
	if r.status != StatusRead {
		send(StatusDelivered, w.DeliveredSeq)
		return
	}
	send(StatusRead, w.ReadSeq) // read implies delivered up to the same seq
	if r.alsoDelivered {
		send(StatusDelivered, w.DeliveredSeq)
	}
}

// Typing forwards a typing state to the conversation's online members. It is
// never stored. In a fan-out-on-read conversation it is one publish on
// ChannelTopic; one known to be one is not loaded whole (only the caller's
// membership is checked).
func (s *Service) Typing(ctx context.Context, sess Session, conversationID, state string) error {
	if conversationID == "" {
		return errf(ErrBadRequest, "conversation_id is required")
	}
	if state != TypingStarted && state != TypingStopped {
		return errf(ErrBadRequest, "state must be %q or %q", TypingStarted, TypingStopped)
	}
	ev := &Event{Kind: EventTyping, ExceptDevice: sess.DeviceID, Typing: &TypingChange{
		ConversationID: conversationID, UserID: sess.UserID, DeviceID: sess.DeviceID, State: state,
	}}
	if s.large.has(conversationID) {
		if err := s.CheckMember(ctx, sess, conversationID); err != nil {
			return err
		}
		s.publishChannel(ctx, ev)
		return nil
	}
	conv, err := s.memberConversation(ctx, sess.UserID, conversationID)
	if err != nil {
		return err
	}
	if s.fanoutOnRead(len(conv.Members)) {
		s.large.note(conversationID, true)
		s.publishChannel(ctx, ev)
		return nil
	}
	to := conv.MemberIDs()
	blocked, err := s.blockedWith(ctx, sess.UserID, to)
	if err != nil {
		return err
	}
	if len(blocked) > 0 {
		to = slices.DeleteFunc(to, func(id string) bool { return blocked[id] })
	}
	s.publishTo(ctx, to, ev)
	return nil
}
