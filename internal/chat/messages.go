package chat

import (
	"context"
	"errors"
	"time"
)

// History page sizes.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// SendRequest is a send_message frame, validated by Send.
type SendRequest struct {
	ClientID        string
	ConversationID  string
	Content         string
	ContentType     string
	MediaID         string
	ReplyToSeq      int64
	ClientTimestamp int64

	media *MediaInfo // set by checkMediaRef
}

type sendReq struct {
	msg  Message
	done chan AppendResult
}

// Send stores a message durably and returns it as stored, with its seq. It
// returns after the commit: the message survives a crash from then on. Live
// delivery to the members' other devices happens after, in seq order per
// conversation. A repeated ClientID from the same user returns the stored
// message and is delivered no second time.
func (s *Service) Send(ctx context.Context, sess Session, req SendRequest) (Message, error) {
	p, err := s.Submit(ctx, sess, req)
	if err != nil {
		return Message{}, err
	}
	m, _, err := p.Wait(ctx)
	return m, err
}

// Pending is a submitted message waiting for its commit.
type Pending struct {
	s      *Service
	convID string
	done   chan AppendResult
}

// Submit validates and rate-limits a message and queues it for the next group
// commit, returning at once. Messages submitted one after the other get
// increasing seqs in that order (within one conversation). Wait for the
// outcome with Pending.Wait.
func (s *Service) Submit(ctx context.Context, sess Session, req SendRequest) (*Pending, error) {
	if err := validateSend(&req); err != nil {
		return nil, err
	}
	if req.ContentType == ContentE2EE {
		if err := s.checkEnvelope(ctx, sess, &req); err != nil {
			return nil, err
		}
	}
	if err := s.checkMediaRef(ctx, sess, &req); err != nil {
		return nil, err
	}
	if err := s.checkDirectNotBlocked(ctx, req.ConversationID); err != nil {
		return nil, err
	}
	if s.rate != nil {
		if ok, wait := s.rate.Allow(sess.UserID); !ok {
			return nil, &RateLimitError{RetryAfter: wait}
		}
	}
	now := s.now()
	r := &sendReq{done: make(chan AppendResult, 1), msg: Message{
		ID:              s.ids.New(now),
		ClientID:        req.ClientID,
		ConversationID:  req.ConversationID,
		SenderID:        sess.UserID,
		SenderDeviceID:  sess.DeviceID,
		Content:         req.Content,
		ContentType:     req.ContentType,
		MediaID:         req.MediaID,
		Media:           req.media,
		ReplyToSeq:      req.ReplyToSeq,
		Timestamp:       now.UnixMilli(),
		ClientTimestamp: req.ClientTimestamp,
	}}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, errf(ErrUnavailable, "server is shutting down")
	}
	select {
	case s.sends <- r:
		return &Pending{s: s, convID: req.ConversationID, done: r.done}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Wait returns the stored message once committed, and whether it was a
// duplicate of one stored before. If ctx ends first the commit may still
// happen; a retry with the same ClientID is safe.
func (p *Pending) Wait(ctx context.Context) (Message, bool, error) {
	select {
	case res := <-p.done:
		if res.Err != nil {
			return Message{}, false, p.s.sendError(res.Err, p.convID)
		}
		return res.Message, res.Duplicate, nil
	case <-ctx.Done():
		return Message{}, false, ctx.Err()
	}
}

func (s *Service) sendError(err error, convID string) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return errf(ErrNotFound, "no conversation %q", convID)
	case errors.Is(err, ErrForbidden):
		return errf(ErrForbidden, "not a member of this conversation")
	}
	return err
}

// MaxEnvelopeBytes bounds a whole e2ee envelope (one ciphertext per device of
// every member); each ciphertext is held to MaxContentBytes.
const MaxEnvelopeBytes = 1 << 20

func contentLimit(contentType string) int {
	if contentType == ContentE2EE {
		return MaxEnvelopeBytes
	}
	return MaxContentBytes
}

func validateSend(r *SendRequest) error {
	if r.ClientID == "" {
		return errf(ErrBadRequest, "message_id is required")
	}
	if len(r.ClientID) > 128 {
		return errf(ErrBadRequest, "message_id is longer than 128 bytes")
	}
	if r.ConversationID == "" {
		return errf(ErrBadRequest, "conversation_id is required")
	}
	if r.ContentType == "" {
		r.ContentType = ContentText
	}
	if !ValidContentType(r.ContentType) {
		return errf(ErrBadRequest, "unknown content_type %q", r.ContentType)
	}
	if limit := contentLimit(r.ContentType); len(r.Content) > limit {
		return errf(ErrTooLarge, "content is %d bytes, over the limit of %d", len(r.Content), limit)
	}
	switch r.ContentType {
	case ContentText, ContentE2EE:
		if r.Content == "" {
			return errf(ErrBadRequest, "content is required")
		}
	case ContentImage, ContentVideo, ContentVoice, ContentFile:
		if r.MediaID == "" {
			return errf(ErrBadRequest, "media_id is required for content_type %q", r.ContentType)
		}
	}
	if r.ReplyToSeq < 0 {
		return errf(ErrBadRequest, "reply_to_seq must be positive")
	}
	return nil
}

// commitLoop is the group committer: it takes every send waiting at the
// moment, stores them in one transaction, answers each, and hands the new
// messages to the publisher in commit order.
func (s *Service) commitLoop() {
	defer s.wg.Done()
	defer close(s.publish)
	batch := make([]*sendReq, 0, s.cfg.MaxBatch)
	msgs := make([]Message, 0, s.cfg.MaxBatch)
	for {
		var first *sendReq
		select {
		case first = <-s.sends:
		case <-s.stop:
			// Finish what is queued: those senders are waiting for an answer.
			for {
				select {
				case r := <-s.sends:
					s.commit([]*sendReq{r}, msgs[:0])
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case r := <-s.sends:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch, msgs[:0])
	}
}

func (s *Service) commit(batch []*sendReq, msgs []Message) {
	for _, r := range batch {
		msgs = append(msgs, r.msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	start := time.Now()
	results, err := s.store.AppendBatch(ctx, msgs)
	cancel()
	s.metrics.CommitBatch(len(msgs), time.Since(start), err)
	if err == nil && len(results) != len(batch) {
		err = errf(ErrUnavailable, "store answered %d results for %d messages", len(results), len(batch))
	}
	if err != nil {
		s.log.Error("group commit failed", "messages", len(batch), "err", err)
		for _, r := range batch {
			r.done <- AppendResult{Err: err}
		}
		return
	}
	// Duplicates and refusals are answered now; new messages are answered by
	// the publisher once they are on the bus, so an ack also means that every
	// online device of the members has been handed the message.
	fresh := make([]committed, 0, len(results))
	for i, r := range batch {
		if results[i].Err == nil && !results[i].Duplicate {
			fresh = append(fresh, committed{results[i], r.done})
			continue
		}
		r.done <- results[i]
	}
	if len(fresh) > 0 {
		s.publish <- fresh
	}
}

// committed is a new message waiting to be published and acked.
type committed struct {
	res  AppendResult
	done chan AppendResult
}

// publishLoop delivers committed messages live, in commit order, so that each
// conversation's messages reach the bus in seq order, then acks each. It runs
// beside the committer, so the next batch's fsync overlaps this fan-out.
// A conversation of more than FanoutDirectMax members gets one publish on
// ChannelTopic per message, carrying the audience (the fingerprint of the
// members at commit time) so that nodes can check their member sets.
func (s *Service) publishLoop() {
	defer s.wg.Done()
	ctx := context.Background()
	for batch := range s.publish {
		// One batch is one transaction, in which no membership changes
		// (the conversation is locked or the writer is alone): the
		// recipients of one conversation are the same for all its messages,
		// so their audience is computed once per batch.
		var audiences map[string]*Audience
		for _, c := range batch {
			m := c.res.Message
			ev := &Event{Kind: EventMessage, ExceptDevice: m.SenderDeviceID, Message: &m}
			large := s.fanoutOnRead(len(c.res.Recipients))
			s.large.note(m.ConversationID, large)
			if large {
				a := audiences[m.ConversationID]
				if a == nil || a.Count != len(c.res.Recipients) {
					a = new(Audience)
					*a = AudienceOf(c.res.Recipients)
					if audiences == nil {
						audiences = make(map[string]*Audience)
					}
					audiences[m.ConversationID] = a
				}
				ev.Audience = a
				s.publishChannel(ctx, ev)
			} else {
				s.publishTo(ctx, c.res.Recipients, ev)
			}
			c.done <- c.res
		}
		if s.observe != nil {
			results := make([]AppendResult, len(batch))
			for i, c := range batch {
				results[i] = c.res
			}
			s.observe.Committed(results)
		}
	}
}

// History returns a page of a conversation the caller is a member of.
func (s *Service) History(ctx context.Context, sess Session, conversationID string, p Page) ([]Message, bool, error) {
	if err := s.CheckMember(ctx, sess, conversationID); err != nil {
		return nil, false, err
	}
	if p.Limit <= 0 {
		p.Limit = DefaultPageLimit
	}
	if p.Limit > MaxPageLimit {
		p.Limit = MaxPageLimit
	}
	return s.store.Messages(ctx, conversationID, p)
}

// CheckMember returns nil if the caller is a member of the conversation,
// else ErrNotFound or ErrForbidden.
func (s *Service) CheckMember(ctx context.Context, sess Session, conversationID string) error {
	_, err := s.store.Member(ctx, conversationID, sess.UserID)
	switch {
	case errors.Is(err, ErrNotFound):
		return errf(ErrNotFound, "no conversation %q", conversationID)
	case errors.Is(err, ErrForbidden):
		return errf(ErrForbidden, "not a member of this conversation")
	}
	return err
}

// SyncResult closes a sync: every conversation of the user with its last seq,
// and the conversations where more than the limit was missed.
type SyncResult struct {
	Conversations map[string]int64
	Truncated     []string
}

// Sync emits, for each of the caller's conversations, the messages after the
// caller's cursor (at most limit, oldest first). A conversation missing from
// cursors is sent from last_seq - limit. Cursors of conversations the caller
// is not a member of are ignored.
func (s *Service) Sync(ctx context.Context, sess Session, cursors map[string]int64, limit int, emit func(*Message) error) (SyncResult, error) {
	if limit <= 0 {
		limit = s.cfg.SyncDefaultLimit
	}
	if limit > s.cfg.SyncMaxLimit {
		limit = s.cfg.SyncMaxLimit
	}
	convs, err := s.store.Cursors(ctx, sess.UserID)
	if err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Conversations: make(map[string]int64, len(convs)), Truncated: []string{}}
	for _, c := range convs {
		// A device that never saw a conversation missed all of it; it gets
		// the newest limit messages.
		seen := cursors[c.ConversationID]
		after := max(seen, c.LastSeq-int64(limit))
		if _, ok := cursors[c.ConversationID]; ok {
			after = seen
		}
		last := c.LastSeq
		if after < c.LastSeq {
			msgs, more, err := s.store.Messages(ctx, c.ConversationID, Page{After: after, Forward: true, Limit: limit})
			if err != nil {
				return SyncResult{}, err
			}
			for i := range msgs {
				if err := emit(&msgs[i]); err != nil {
					return SyncResult{}, err
				}
				last = max(last, msgs[i].Seq)
			}
			if more || last-seen > int64(limit) {
				res.Truncated = append(res.Truncated, c.ConversationID)
			}
		}
		res.Conversations[c.ConversationID] = last
	}
	return res, nil
}
