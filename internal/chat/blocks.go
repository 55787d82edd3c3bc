package chat

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// safety returns the store's SafetyStore, or ErrUnavailable without one.
func (s *Service) safety() (SafetyStore, error) {
	if st, ok := s.store.(SafetyStore); ok {
		return st, nil
	}
	return nil, errf(ErrUnavailable, "this store has no blocks, reports or suspensions")
}

// Block makes the caller block userID: no direct conversation, no
// messages in an existing one, no presence, last seen or typing either
// way, and userID cannot add the caller to a group. Blocking twice is fine.
func (s *Service) Block(ctx context.Context, sess Session, userID string) error {
	if userID == "" {
		return errf(ErrBadRequest, "user_id is required")
	}
	if userID == sess.UserID {
		return errf(ErrInvalid, "you cannot block yourself")
	}
	st, err := s.safety()
	if err != nil {
		return err
	}
	if _, err := s.User(ctx, userID); err != nil {
		return err
	}
	if err := st.Block(ctx, sess.UserID, userID, s.now().UnixMilli()); err != nil {
		return err
	}
	// Both users' sockets, on every node, stop watching each other.
	s.publishTo(ctx, []string{sess.UserID}, &Event{Kind: EventBlock, Block: &BlockChange{Other: userID}})
	s.publishTo(ctx, []string{userID}, &Event{Kind: EventBlock, Block: &BlockChange{Other: sess.UserID}})
	return nil
}

// Unblock lifts the caller's block of userID (none is fine).
func (s *Service) Unblock(ctx context.Context, sess Session, userID string) error {
	st, err := s.safety()
	if err != nil {
		return err
	}
	return st.Unblock(ctx, sess.UserID, userID)
}

// Blocks lists whom the caller blocks, oldest first.
func (s *Service) Blocks(ctx context.Context, sess Session) ([]string, error) {
	st, err := s.safety()
	if err != nil {
		return nil, err
	}
	return st.Blocks(ctx, sess.UserID)
}

// blockedWith returns those of others in a block with userID (either
// way), as a set. Without a SafetyStore nobody is blocked.
func (s *Service) blockedWith(ctx context.Context, userID string, others []string) (map[string]bool, error) {
	st, ok := s.store.(SafetyStore)
	if !ok || len(others) == 0 {
		return nil, nil
	}
	ids, err := st.BlockedAmong(ctx, userID, others)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

// checkNotBlockers refuses (ErrBlocked) when one of users blocks userID:
// a blocked user cannot add its blocker to a group.
func (s *Service) checkNotBlockers(ctx context.Context, userID string, users []string) error {
	st, ok := s.store.(SafetyStore)
	if !ok || len(users) == 0 {
		return nil
	}
	blockers, err := st.BlockersAmong(ctx, userID, users)
	if err != nil {
		return err
	}
	if len(blockers) > 0 {
		return errf(ErrBlocked, "user %q has blocked you", blockers[0])
	}
	return nil
}

// checkDirectNotBlocked refuses (ErrBlocked) a message in a direct
// conversation whose members are in a block. Groups are not checked: the
// clients hide blocked users' messages there.
func (s *Service) checkDirectNotBlocked(ctx context.Context, conversationID string) error {
	st, ok := s.store.(SafetyStore)
	if !ok || s.large.has(conversationID) {
		return nil
	}
	blocked, err := st.DirectBlocked(ctx, conversationID)
	if err != nil {
		return err
	}
	if blocked {
		return errf(ErrBlocked, "this conversation is blocked")
	}
	return nil
}

// PresenceVisible returns those of userIDs whose presence the caller may
// see: users who share a conversation with it, without a block either way.
// Others are left out silently (no oracle for who exists or is blocked).
func (s *Service) PresenceVisible(ctx context.Context, sess Session, userIDs []string) ([]string, error) {
	st, err := s.safety()
	if err != nil {
		return nil, err
	}
	sharing, err := st.SharingWith(ctx, sess.UserID, userIDs)
	if err != nil || len(sharing) == 0 {
		return nil, err
	}
	blocked, err := s.blockedWith(ctx, sess.UserID, sharing)
	if err != nil {
		return nil, err
	}
	out := sharing[:0]
	for _, id := range sharing {
		if !blocked[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// MaxReportReason is the longest report reason, in characters.
const MaxReportReason = 1000

// Report stores a member's report of message seq of a conversation for the
// server's operators; non-members get 403.
func (s *Service) Report(ctx context.Context, sess Session, conversationID string, seq int64, reason string) (string, error) {
	if conversationID == "" || seq < 1 {
		return "", errf(ErrBadRequest, "conversation_id and seq (>= 1) are required")
	}
	reason = strings.TrimSpace(reason)
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > MaxReportReason {
		return "", errf(ErrInvalid, "reason must be valid UTF-8 of at most %d characters", MaxReportReason)
	}
	st, err := s.safety()
	if err != nil {
		return "", err
	}
	if err := s.CheckMember(ctx, sess, conversationID); err != nil {
		return "", err
	}
	msgs, _, err := s.store.Messages(ctx, conversationID, Page{After: seq - 1, Forward: true, Limit: 1})
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 || msgs[0].Seq != seq {
		return "", errf(ErrNotFound, "no message %d in this conversation", seq)
	}
	now := s.now()
	r := Report{ID: s.ids.New(now), ReporterID: sess.UserID, ConversationID: conversationID, Seq: seq, Reason: reason, CreatedAt: now.UnixMilli()}
	if err := st.CreateReport(ctx, r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// MediaBytes is the size of the media userID uploaded that is not deleted
// (0 without a SafetyStore: no quota can be kept).
func (s *Service) MediaBytes(ctx context.Context, userID string) (int64, error) {
	st, ok := s.store.(SafetyStore)
	if !ok {
		return 0, nil
	}
	return st.MediaBytes(ctx, userID)
}

// suspensionLoop closes the open sockets of accounts suspended since the
// last look, on every node (a revoke event on the user's topic): the
// suspension itself deleted their tokens. It looks back a little further
// each time (clocks of the admin tool and the server may differ); revoking
// twice is harmless.
func (s *Service) suspensionLoop(st SafetyStore) {
	defer s.wg.Done()
	const overlap = 10 * time.Second
	since := s.now().Add(-overlap)
	t := time.NewTicker(s.cfg.SuspensionPoll)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ids, err := st.SuspendedSince(ctx, since.UnixMilli())
		if err == nil {
			since = now.Add(-overlap)
			for _, id := range ids {
				s.publishTo(ctx, []string{id}, &Event{Kind: EventRevoke, Revoke: &Revoke{}})
			}
		}
		cancel()
	}
}

// InviteTTL is how long an invitation made by CreateInvite is valid.
const InviteTTL = 7 * 24 * time.Hour

// CreateInvite makes a single-use invitation for --registration invite and
// returns its token (stored only as a hash).
func (s *Service) CreateInvite(ctx context.Context, ttl time.Duration) (string, error) {
	st, err := s.safety()
	if err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = InviteTTL
	}
	token, now := newToken(), s.now()
	return token, st.CreateInvite(ctx, HashToken(token), now.UnixMilli(), now.Add(ttl).UnixMilli())
}

// RegisterInvited is Register with an invitation, which it uses up; a
// registration that fails gives it back (valid for InviteTTL again).
// Without a valid invitation: ErrRegistrationClosed.
func (s *Service) RegisterInvited(ctx context.Context, invite, username, password, displayName string) (User, error) {
	st, err := s.safety()
	if err != nil {
		return User{}, err
	}
	if invite == "" {
		return User{}, errf(ErrRegistrationClosed, "registration on this server needs an invite")
	}
	hash, now := HashToken(invite), s.now()
	ok, err := st.UseInvite(ctx, hash, now.UnixMilli())
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, errf(ErrRegistrationClosed, "the invite is unknown, used or expired")
	}
	u, err := s.Register(ctx, username, password, displayName)
	if err != nil {
		if rerr := st.CreateInvite(context.WithoutCancel(ctx), hash, now.UnixMilli(), now.Add(InviteTTL).UnixMilli()); rerr != nil {
			s.log.Warn("giving an invite back", "err", rerr)
		}
	}
	return u, err
}
