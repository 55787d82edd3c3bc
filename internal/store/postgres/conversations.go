package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat"
)

// A conversation is read by one statement: its row, its members aggregated
// into parallel arrays (a lateral subquery keyed by the conversation id) and
// its last message (a primary-key lookup), so a listing is one consistent
// snapshot without a separate query per part.
const (
	convCols = `c.id, c.type, c.name, c.last_seq, c.created_at, c.updated_at,
		mm.user_ids, mm.roles, mm.delivered, mm.reads, mm.joined, ` + msgColsX
	convJoins = `
		CROSS JOIN LATERAL (
			SELECT array_agg(m.user_id ORDER BY m.user_id) AS user_ids,
			       array_agg(m.role ORDER BY m.user_id) AS roles,
			       array_agg(m.delivered_seq ORDER BY m.user_id) AS delivered,
			       array_agg(m.read_seq ORDER BY m.user_id) AS reads,
			       array_agg(m.joined_at ORDER BY m.user_id) AS joined
			FROM members m WHERE m.conversation_id = c.id) mm
		LEFT JOIN messages x ON x.conversation_id = c.id AND x.seq = c.last_seq`

	qConversation = `SELECT ` + convCols + ` FROM conversations c` + convJoins + ` WHERE c.id = $1`
	qDirectPair   = `SELECT ` + convCols + `
		FROM direct_pairs p JOIN conversations c ON c.id = p.conversation_id` + convJoins + `
		WHERE p.user_lo = $1 AND p.user_hi = $2`
	// The conversations of a user, most recently updated first, with the
	// number of unread messages: last_seq - read_seq - the user's own
	// messages after read_seq (a range of messages_by_sender).
	qUserConversations = `SELECT ` + convCols + `,
		greatest(c.last_seq - me.read_seq - (SELECT count(*) FROM messages o
			WHERE o.conversation_id = c.id AND o.sender_id = me.user_id AND o.seq > me.read_seq), 0)
		FROM members me JOIN conversations c ON c.id = me.conversation_id` + convJoins + `
		WHERE me.user_id = $1
		ORDER BY c.updated_at DESC, c.id`
	qUnreadCount = `SELECT c.last_seq - me.read_seq -
		(SELECT count(*) FROM messages o
		  WHERE o.conversation_id = c.id AND o.sender_id = me.user_id AND o.seq > me.read_seq)
		FROM members me JOIN conversations c ON c.id = me.conversation_id
		WHERE me.conversation_id = $1 AND me.user_id = $2`
	qCursors = `SELECT c.id, c.last_seq
		FROM members me JOIN conversations c ON c.id = me.conversation_id
		WHERE me.user_id = $1 ORDER BY me.conversation_id`
	qMember = `SELECT m.role, m.delivered_seq, m.read_seq, m.joined_at
		FROM conversations c LEFT JOIN members m ON m.conversation_id = c.id AND m.user_id = $2
		WHERE c.id = $1`

	// qLockConversation takes the conversation's row lock (the lock an
	// UPDATE takes) until the transaction ends. Every transaction that
	// appends messages or changes members takes it first, so each reads the
	// conversation's members and last_seq after the previous one committed.
	qLockConversation = `SELECT last_seq FROM conversations WHERE id = $1 FOR NO KEY UPDATE`
	qConvMembers      = `SELECT user_id FROM members WHERE conversation_id = $1`
	qInsertMembers    = `INSERT INTO members (conversation_id, user_id, role, delivered_seq, read_seq, joined_at)
		SELECT $1, t.user_id, t.role, t.delivered, t.read, t.joined
		FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
		     AS t(user_id, role, delivered, read, joined)`
	qTouchConversation = `UPDATE conversations SET updated_at = $2 WHERE id = $1`
	// qPromoteAdmin makes the longest-standing member admin when no admin is
	// left; a no-op when an admin remains or nobody does.
	qPromoteAdmin = `UPDATE members SET role = 'admin'
		WHERE conversation_id = $1
		  AND NOT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND role = 'admin')
		  AND user_id = (SELECT user_id FROM members WHERE conversation_id = $1
		                 ORDER BY joined_at, user_id LIMIT 1)`
)

// scanConversation scans a row of convCols (and extra).
func scanConversation(row pgx.Row, extra ...any) (chat.Conversation, error) {
	var c chat.Conversation
	var users, roles []string
	var delivered, reads, joined []int64
	var last nullMessage
	dest := []any{&c.ID, &c.Type, &c.Name, &c.LastSeq, &c.CreatedAt, &c.UpdatedAt,
		&users, &roles, &delivered, &reads, &joined}
	dest = append(dest, last.dest()...)
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return c, err
	}
	for i, u := range users {
		c.Members = append(c.Members, chat.Member{
			UserID: u, Role: roles[i], DeliveredSeq: delivered[i], ReadSeq: reads[i], JoinedAt: joined[i],
		})
	}
	sortMembers(c.Members)
	c.LastMessage = last.message()
	return c, nil
}

// sortMembers orders members longest-standing first (ties by user id).
func sortMembers(ms []chat.Member) {
	slices.SortFunc(ms, func(a, b chat.Member) int {
		return cmp.Or(cmp.Compare(a.JoinedAt, b.JoinedAt), cmp.Compare(a.UserID, b.UserID))
	})
}

// errPairTaken ends a DirectConversation transaction that lost the race for
// its pair to another one.
var errPairTaken = errors.New("direct pair taken concurrently")

// DirectConversation returns the direct conversation of the two members of c,
// creating it from c if the pair has none. Concurrent calls for one pair,
// from any node, agree: the direct_pairs primary key admits one conversation
// per pair, and a creator that finds the pair taken (INSERT ... ON CONFLICT
// DO NOTHING waits for the other creator to commit) rolls back its own
// conversation and returns the winner's.
func (s *Store) DirectConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	if len(c.Members) != 2 || c.Members[0].UserID == "" || c.Members[1].UserID == "" ||
		c.Members[0].UserID == c.Members[1].UserID {
		return chat.Conversation{}, false, fmt.Errorf("postgres: direct conversation: need two distinct members: %w", chat.ErrInvalid)
	}
	lo, hi := c.Members[0].UserID, c.Members[1].UserID
	if hi < lo {
		lo, hi = hi, lo
	}
	if !validKeys(lo, hi) {
		return chat.Conversation{}, false, fmt.Errorf("postgres: direct conversation: unknown user: %w", chat.ErrNotFound)
	}
	conv, err := scanConversation(s.pool.QueryRow(ctx, qDirectPair, lo, hi))
	switch {
	case err == nil:
		return conv, false, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return chat.Conversation{}, false, mapErr("direct conversation", err)
	}

	c.Type = chat.TypeDirect
	err = s.write(ctx, "direct conversation", func(tx pgx.Tx) error {
		if err := insertConversation(ctx, tx, c); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO direct_pairs (user_lo, user_hi, conversation_id) VALUES ($1, $2, $3)
			ON CONFLICT (user_lo, user_hi) DO NOTHING`, lo, hi, c.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errPairTaken
		}
		conv, err = scanConversation(tx.QueryRow(ctx, qConversation, c.ID))
		return err
	})
	if errors.Is(err, errPairTaken) {
		conv, err = scanConversation(s.pool.QueryRow(ctx, qDirectPair, lo, hi))
		if err != nil {
			return chat.Conversation{}, false, mapErr("direct conversation", err)
		}
		return conv, false, nil
	}
	if err != nil {
		return chat.Conversation{}, false, err
	}
	return conv, true, nil
}

// CreateGroup stores a new group conversation with its members (a repeated
// user counts once). chat.ErrConflict if the id is taken, chat.ErrNotFound if
// a member is not a user, chat.ErrInvalid for a type other than group.
func (s *Store) CreateGroup(ctx context.Context, c chat.Conversation) error {
	if c.Type != "" && c.Type != chat.TypeGroup {
		return fmt.Errorf("postgres: create group: type %q: %w", c.Type, chat.ErrInvalid)
	}
	c.Type = chat.TypeGroup
	return s.write(ctx, "create group", func(tx pgx.Tx) error {
		return insertConversation(ctx, tx, c)
	})
}

// insertConversation inserts c (last_seq 0) and its members.
func insertConversation(ctx context.Context, tx pgx.Tx, c chat.Conversation) error {
	if c.UpdatedAt == 0 {
		c.UpdatedAt = c.CreatedAt
	}
	if _, err := tx.Exec(ctx,
		`INSERT INTO conversations (id, type, name, last_seq, created_at, updated_at) VALUES ($1, $2, $3, 0, $4, $5)`,
		c.ID, c.Type, c.Name, c.CreatedAt, c.UpdatedAt); err != nil {
		return err
	}
	return insertMembers(ctx, tx, c.ID, uniqueMembers(c.Members, nil), 0, c.CreatedAt)
}

// uniqueMembers returns ms without repeated users and without those in skip.
func uniqueMembers(ms []chat.Member, skip map[string]bool) []chat.Member {
	seen := make(map[string]bool, len(ms))
	var out []chat.Member
	for _, m := range ms {
		if seen[m.UserID] || skip[m.UserID] {
			continue
		}
		seen[m.UserID] = true
		out = append(out, m)
	}
	return out
}

// insertMembers inserts memberships in one statement, defaulting the role to
// member and joined_at to now, and keeping 0 <= read_seq <= delivered_seq <=
// lastSeq.
func insertMembers(ctx context.Context, tx pgx.Tx, convID string, ms []chat.Member, lastSeq, now int64) error {
	if len(ms) == 0 {
		return nil
	}
	users := make([]string, len(ms))
	roles := make([]string, len(ms))
	delivered := make([]int64, len(ms))
	reads := make([]int64, len(ms))
	joined := make([]int64, len(ms))
	for i, m := range ms {
		if m.Role == "" {
			m.Role = chat.RoleMember
		}
		if m.JoinedAt == 0 {
			m.JoinedAt = now
		}
		m.ReadSeq = min(max(m.ReadSeq, 0), lastSeq)
		m.DeliveredSeq = min(max(m.DeliveredSeq, m.ReadSeq), lastSeq)
		users[i], roles[i], delivered[i], reads[i], joined[i] = m.UserID, m.Role, m.DeliveredSeq, m.ReadSeq, m.JoinedAt
	}
	_, err := tx.Exec(ctx, qInsertMembers, convID, users, roles, delivered, reads, joined)
	return err
}

// Conversation returns a conversation with its members (longest-standing
// first) and last message; chat.ErrNotFound.
func (s *Store) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	op := fmt.Sprintf("conversation %q", id)
	if !validKeys(id) {
		return chat.Conversation{}, fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	c, err := scanConversation(s.pool.QueryRow(ctx, qConversation, id))
	if err != nil {
		return chat.Conversation{}, mapErr(op, err)
	}
	return c, nil
}

// Conversations lists userID's conversations, most recently updated first,
// with members, last message and UnreadCount for userID, from one statement
// (one snapshot).
func (s *Store) Conversations(ctx context.Context, userID string) ([]chat.Conversation, error) {
	if !validKeys(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, qUserConversations, userID)
	if err != nil {
		return nil, mapErr("conversations", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.Conversation, error) {
		var unread int64
		c, err := scanConversation(row, &unread)
		c.UnreadCount = unread
		return c, err
	})
	if err != nil {
		return nil, mapErr("conversations", err)
	}
	return out, nil
}

// UnreadCount is conversationID's last_seq minus userID's read_seq, not
// counting userID's own messages after read_seq; 0 for a non-member (and for
// an unknown conversation).
func (s *Store) UnreadCount(ctx context.Context, conversationID, userID string) (int64, error) {
	if !validKeys(conversationID, userID) {
		return 0, nil
	}
	var n int64
	err := s.pool.QueryRow(ctx, qUnreadCount, conversationID, userID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, mapErr("unread count", err)
	}
	return max(n, 0), nil
}

// Cursors lists the conversations userID is a member of with their last seq.
func (s *Store) Cursors(ctx context.Context, userID string) ([]chat.ConversationCursor, error) {
	if !validKeys(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, qCursors, userID)
	if err != nil {
		return nil, mapErr("cursors", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.ConversationCursor, error) {
		var c chat.ConversationCursor
		err := row.Scan(&c.ConversationID, &c.LastSeq)
		return c, err
	})
	if err != nil {
		return nil, mapErr("cursors", err)
	}
	return out, nil
}

// Member returns userID's membership of a conversation; chat.ErrNotFound if
// the conversation does not exist, chat.ErrForbidden if userID is not a member.
func (s *Store) Member(ctx context.Context, conversationID, userID string) (chat.Member, error) {
	if !validKeys(conversationID) {
		return chat.Member{}, fmt.Errorf("postgres: conversation %q: %w", conversationID, chat.ErrNotFound)
	}
	var role *string
	var delivered, read, joined *int64
	err := pgx.ErrNoRows
	if validKeys(userID) {
		err = s.pool.QueryRow(ctx, qMember, conversationID, userID).Scan(&role, &delivered, &read, &joined)
	} else {
		// Not a user, so not a member; only the conversation's existence
		// remains to be told.
		var one int
		err = s.pool.QueryRow(ctx, `SELECT 1 FROM conversations WHERE id = $1`, conversationID).Scan(&one)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return chat.Member{}, fmt.Errorf("postgres: conversation %q: %w", conversationID, chat.ErrNotFound)
	case err != nil:
		return chat.Member{}, mapErr("member", err)
	case role == nil:
		return chat.Member{}, fmt.Errorf("postgres: %q is not a member of conversation %q: %w", userID, conversationID, chat.ErrForbidden)
	}
	return chat.Member{UserID: userID, Role: *role, DeliveredSeq: *delivered, ReadSeq: *read, JoinedAt: *joined}, nil
}

// lockConversation takes the conversation's row lock and returns its
// last_seq; chat.ErrNotFound if there is no such conversation.
func lockConversation(ctx context.Context, tx pgx.Tx, conversationID string) (int64, error) {
	var lastSeq int64
	err := tx.QueryRow(ctx, qLockConversation, conversationID).Scan(&lastSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("postgres: conversation %q: %w", conversationID, chat.ErrNotFound)
	}
	return lastSeq, err
}

// AddMembers adds members, skipping existing ones (their role and
// watermarks stay), unless the conversation would then have more than
// maxMembers members (chat.ErrInvalid, nothing added). A member without a
// role becomes a member, one without JoinedAt joins at now. It sets
// updated_at to now. chat.ErrNotFound for an unknown conversation or user.
func (s *Store) AddMembers(ctx context.Context, conversationID string, members []chat.Member, maxMembers int, now int64) error {
	if !validKeys(conversationID) {
		return fmt.Errorf("postgres: add members: conversation %q: %w", conversationID, chat.ErrNotFound)
	}
	return s.write(ctx, "add members", func(tx pgx.Tx) error {
		lastSeq, err := lockConversation(ctx, tx, conversationID)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, qConvMembers, conversationID)
		if err != nil {
			return err
		}
		existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		skip := make(map[string]bool, len(existing))
		for _, u := range existing {
			skip[u] = true
		}
		fresh := uniqueMembers(members, skip)
		if len(fresh) > 0 && len(existing)+len(fresh) > maxMembers {
			return fmt.Errorf("postgres: conversation %q would have %d members, more than %d: %w",
				conversationID, len(existing)+len(fresh), maxMembers, chat.ErrInvalid)
		}
		if err := insertMembers(ctx, tx, conversationID, fresh, lastSeq, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, qTouchConversation, conversationID, now)
		return err
	})
}

// RemoveMember removes a member (chat.ErrNotFound if the conversation does not
// exist or userID is not a member) and sets updated_at to now. If the last
// admin leaves a group that still has members, the longest-standing member
// (earliest joined_at, ties by user id) becomes admin.
func (s *Store) RemoveMember(ctx context.Context, conversationID, userID string, now int64) error {
	if !validKeys(conversationID, userID) {
		return fmt.Errorf("postgres: remove member: %w", chat.ErrNotFound)
	}
	return s.write(ctx, "remove member", func(tx pgx.Tx) error {
		var typ string
		err := tx.QueryRow(ctx, `SELECT type FROM conversations WHERE id = $1 FOR NO KEY UPDATE`, conversationID).Scan(&typ)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: conversation %q: %w", conversationID, chat.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var role string
		err = tx.QueryRow(ctx, `DELETE FROM members WHERE conversation_id = $1 AND user_id = $2 RETURNING role`,
			conversationID, userID).Scan(&role)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: %q is not a member of conversation %q: %w", userID, conversationID, chat.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if typ == chat.TypeGroup && role == chat.RoleAdmin {
			if _, err := tx.Exec(ctx, qPromoteAdmin, conversationID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, qTouchConversation, conversationID, now)
		return err
	})
}

// RenameConversation sets a conversation's name and updated_at; chat.ErrNotFound.
func (s *Store) RenameConversation(ctx context.Context, conversationID, name string, now int64) error {
	op := fmt.Sprintf("rename conversation %q", conversationID)
	if !validKeys(conversationID) {
		return fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE conversations SET name = $2, updated_at = $3 WHERE id = $1`, conversationID, name, now)
	return rowsAffectedOne(op, tag, err)
}
