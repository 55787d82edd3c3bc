package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/internal/chat"
)

// Hot-path queries, kept as constants so the query-plan test can check them.
const (
	qConversation = `SELECT id, type, name, last_seq, created_at, updated_at
		FROM conversations WHERE id = ?`
	qMembers = `SELECT user_id, role, delivered_seq, read_seq, joined_at
		FROM members WHERE conversation_id = ?`
	qLastMessage = `SELECT ` + msgCols + ` FROM messages WHERE conversation_id = ? AND seq = ?`

	// The conversations of a user, most recently updated first, with the
	// caller's read_seq and the number of its own messages after it.
	qUserConversations = `SELECT c.id, c.type, c.name, c.last_seq, c.created_at, c.updated_at, me.read_seq,
		(SELECT count(*) FROM messages x
		  WHERE x.conversation_id = c.id AND x.seq > me.read_seq AND x.sender_id = me.user_id)
		FROM members me JOIN conversations c ON c.id = me.conversation_id
		WHERE me.user_id = ?
		ORDER BY c.updated_at DESC, c.id`
	qUserConversationMembers = `SELECT mm.conversation_id, mm.user_id, mm.role, mm.delivered_seq, mm.read_seq, mm.joined_at
		FROM members me JOIN members mm ON mm.conversation_id = me.conversation_id
		WHERE me.user_id = ?`
	qUserLastMessages = `SELECT ` + msgColsX + `
		FROM members me
		JOIN conversations c ON c.id = me.conversation_id
		JOIN messages x ON x.conversation_id = c.id AND x.seq = c.last_seq
		WHERE me.user_id = ?`
	qUnreadCount = `SELECT c.last_seq - me.read_seq -
		(SELECT count(*) FROM messages x
		  WHERE x.conversation_id = c.id AND x.seq > me.read_seq AND x.sender_id = me.user_id)
		FROM members me JOIN conversations c ON c.id = me.conversation_id
		WHERE me.conversation_id = ? AND me.user_id = ?`
	qDirectPair = `SELECT conversation_id FROM direct_pairs WHERE user_lo = ? AND user_hi = ?`
	qCursors    = `SELECT c.id, c.last_seq
		FROM members me JOIN conversations c ON c.id = me.conversation_id
		WHERE me.user_id = ? ORDER BY me.conversation_id`
	qMember = `SELECT m.role, m.delivered_seq, m.read_seq, m.joined_at
		FROM conversations c LEFT JOIN members m ON m.conversation_id = c.id AND m.user_id = ?
		WHERE c.id = ?`
)

// DirectConversation returns the direct conversation of the two members of c,
// creating it from c if the pair has none. Both calls run in one immediate
// transaction on the single writer, so concurrent calls for a pair serialize
// and the direct_pairs primary key keeps the pair unique.
func (s *Store) DirectConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	if len(c.Members) != 2 || c.Members[0].UserID == "" || c.Members[1].UserID == "" ||
		c.Members[0].UserID == c.Members[1].UserID {
		return chat.Conversation{}, false, fmt.Errorf("sqlite: direct conversation: need two distinct members: %w", chat.ErrInvalid)
	}
	lo, hi := c.Members[0].UserID, c.Members[1].UserID
	if hi < lo {
		lo, hi = hi, lo
	}
	var conv chat.Conversation
	var created bool
	err := s.write(ctx, "direct conversation", func(tx *sql.Tx) error {
		var id string
		err := tx.QueryRowContext(ctx, qDirectPair, lo, hi).Scan(&id)
		switch {
		case err == nil:
			conv, err = loadConversation(ctx, tx, id)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		c.Type = chat.TypeDirect
		if err := insertConversation(ctx, tx, c); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO direct_pairs (user_lo, user_hi, conversation_id) VALUES (?, ?, ?)`, lo, hi, c.ID); err != nil {
			return err
		}
		created = true
		conv, err = loadConversation(ctx, tx, c.ID)
		return err
	})
	if err != nil {
		return chat.Conversation{}, false, err
	}
	return conv, created, nil
}

// CreateGroup stores a new group conversation with its members (a repeated
// user counts once). chat.ErrConflict if the id is taken, chat.ErrNotFound if
// a member is not a user, chat.ErrInvalid for a type other than group.
func (s *Store) CreateGroup(ctx context.Context, c chat.Conversation) error {
	if c.Type != "" && c.Type != chat.TypeGroup {
		return fmt.Errorf("sqlite: create group: type %q: %w", c.Type, chat.ErrInvalid)
	}
	c.Type = chat.TypeGroup
	return s.write(ctx, "create group", func(tx *sql.Tx) error {
		return insertConversation(ctx, tx, c)
	})
}

// insertConversation inserts c and its members (last_seq 0).
func insertConversation(ctx context.Context, tx *sql.Tx, c chat.Conversation) error {
	if c.UpdatedAt == 0 {
		c.UpdatedAt = c.CreatedAt
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO conversations (id, type, name, last_seq, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)`,
		c.ID, c.Type, c.Name, c.CreatedAt, c.UpdatedAt); err != nil {
		return err
	}
	seen := make(map[string]bool, len(c.Members))
	for _, m := range c.Members {
		if seen[m.UserID] {
			continue
		}
		seen[m.UserID] = true
		if err := insertMember(ctx, tx, c.ID, m, 0, c.CreatedAt); err != nil {
			return err
		}
	}
	return nil
}

// insertMember inserts one membership, defaulting the role to member and
// joined_at to now, and keeping 0 <= read_seq <= delivered_seq <= lastSeq.
func insertMember(ctx context.Context, tx *sql.Tx, convID string, m chat.Member, lastSeq, now int64) error {
	if m.Role == "" {
		m.Role = chat.RoleMember
	}
	if m.JoinedAt == 0 {
		m.JoinedAt = now
	}
	m.ReadSeq = min(max(m.ReadSeq, 0), lastSeq)
	m.DeliveredSeq = min(max(m.DeliveredSeq, m.ReadSeq), lastSeq)
	_, err := tx.ExecContext(ctx,
		`INSERT INTO members (conversation_id, user_id, role, delivered_seq, read_seq, joined_at) VALUES (?, ?, ?, ?, ?, ?)`,
		convID, m.UserID, m.Role, m.DeliveredSeq, m.ReadSeq, m.JoinedAt)
	return err
}

// Conversation returns a conversation with its members (longest-standing
// first) and last message; chat.ErrNotFound.
func (s *Store) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	var c chat.Conversation
	err := s.read(ctx, fmt.Sprintf("conversation %q", id), func(tx *sql.Tx) error {
		var err error
		c, err = loadConversation(ctx, tx, id)
		return err
	})
	return c, err
}

func loadConversation(ctx context.Context, q querier, id string) (chat.Conversation, error) {
	var c chat.Conversation
	err := q.QueryRowContext(ctx, qConversation, id).
		Scan(&c.ID, &c.Type, &c.Name, &c.LastSeq, &c.CreatedAt, &c.UpdatedAt)
	if err != nil {
		return c, mapErr(fmt.Sprintf("conversation %q", id), err)
	}
	rows, err := q.QueryContext(ctx, qMembers, id)
	if err != nil {
		return c, err
	}
	for rows.Next() {
		var m chat.Member
		if err := rows.Scan(&m.UserID, &m.Role, &m.DeliveredSeq, &m.ReadSeq, &m.JoinedAt); err != nil {
			rows.Close()
			return c, err
		}
		c.Members = append(c.Members, m)
	}
	if err := closeRows(rows); err != nil {
		return c, err
	}
	sortMembers(c.Members)
	if c.LastSeq > 0 {
		m, err := scanMessage(q.QueryRowContext(ctx, qLastMessage, id, c.LastSeq))
		if err != nil {
			return c, err
		}
		c.LastMessage = &m
	}
	return c, nil
}

// sortMembers orders members longest-standing first (ties by user id).
func sortMembers(ms []chat.Member) {
	slices.SortFunc(ms, func(a, b chat.Member) int {
		return cmp.Or(cmp.Compare(a.JoinedAt, b.JoinedAt), cmp.Compare(a.UserID, b.UserID))
	})
}

// Conversations lists userID's conversations, most recently updated first,
// with members, last message and UnreadCount for userID, from one snapshot.
func (s *Store) Conversations(ctx context.Context, userID string) ([]chat.Conversation, error) {
	var out []chat.Conversation
	err := s.read(ctx, "conversations", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qUserConversations, userID)
		if err != nil {
			return err
		}
		index := make(map[string]int)
		for rows.Next() {
			var c chat.Conversation
			var readSeq, own int64
			if err := rows.Scan(&c.ID, &c.Type, &c.Name, &c.LastSeq, &c.CreatedAt, &c.UpdatedAt, &readSeq, &own); err != nil {
				rows.Close()
				return err
			}
			c.UnreadCount = max(c.LastSeq-readSeq-own, 0)
			index[c.ID] = len(out)
			out = append(out, c)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}

		rows, err = tx.QueryContext(ctx, qUserConversationMembers, userID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var convID string
			var m chat.Member
			if err := rows.Scan(&convID, &m.UserID, &m.Role, &m.DeliveredSeq, &m.ReadSeq, &m.JoinedAt); err != nil {
				rows.Close()
				return err
			}
			if i, ok := index[convID]; ok {
				out[i].Members = append(out[i].Members, m)
			}
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		for i := range out {
			sortMembers(out[i].Members)
		}

		rows, err = tx.QueryContext(ctx, qUserLastMessages, userID)
		if err != nil {
			return err
		}
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if i, ok := index[m.ConversationID]; ok {
				out[i].LastMessage = &m
			}
		}
		return closeRows(rows)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UnreadCount is conversationID's last_seq minus userID's read_seq, not
// counting userID's own messages after read_seq; 0 for a non-member (and for
// an unknown conversation).
func (s *Store) UnreadCount(ctx context.Context, conversationID, userID string) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, qUnreadCount, conversationID, userID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, mapErr("unread count", err)
	}
	return max(n, 0), nil
}

// Cursors lists the conversations userID is a member of with their last seq.
func (s *Store) Cursors(ctx context.Context, userID string) ([]chat.ConversationCursor, error) {
	rows, err := s.r.QueryContext(ctx, qCursors, userID)
	if err != nil {
		return nil, mapErr("cursors", err)
	}
	var out []chat.ConversationCursor
	for rows.Next() {
		var c chat.ConversationCursor
		if err := rows.Scan(&c.ConversationID, &c.LastSeq); err != nil {
			rows.Close()
			return nil, mapErr("cursors", err)
		}
		out = append(out, c)
	}
	return out, mapErr("cursors", closeRows(rows))
}

// Member returns userID's membership of a conversation; chat.ErrNotFound if
// the conversation does not exist, chat.ErrForbidden if userID is not a member.
func (s *Store) Member(ctx context.Context, conversationID, userID string) (chat.Member, error) {
	m, err := member(ctx, s.r, conversationID, userID)
	if err != nil {
		return chat.Member{}, mapErr("member", err)
	}
	return m, nil
}

func member(ctx context.Context, q querier, conversationID, userID string) (chat.Member, error) {
	var role sql.NullString
	var delivered, read, joined sql.NullInt64
	err := q.QueryRowContext(ctx, qMember, userID, conversationID).Scan(&role, &delivered, &read, &joined)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Member{}, fmt.Errorf("sqlite: conversation %q: %w", conversationID, chat.ErrNotFound)
	}
	if err != nil {
		return chat.Member{}, err
	}
	if !role.Valid {
		return chat.Member{}, fmt.Errorf("sqlite: %q is not a member of conversation %q: %w", userID, conversationID, chat.ErrForbidden)
	}
	return chat.Member{UserID: userID, Role: role.String, DeliveredSeq: delivered.Int64, ReadSeq: read.Int64, JoinedAt: joined.Int64}, nil
}

// AddMembers adds members, skipping existing ones (their role and
// watermarks stay), unless the conversation would then have more than
// maxMembers members (chat.ErrInvalid, nothing added). A member without a
// role becomes a member, one without JoinedAt joins at now. It sets
// updated_at to now. chat.ErrNotFound for an unknown conversation or user.
func (s *Store) AddMembers(ctx context.Context, conversationID string, members []chat.Member, maxMembers int, now int64) error {
	return s.write(ctx, "add members", func(tx *sql.Tx) error {
		var lastSeq, count int64
		err := tx.QueryRowContext(ctx,
			`SELECT c.last_seq, (SELECT count(*) FROM members m WHERE m.conversation_id = c.id)
			 FROM conversations c WHERE c.id = ?`, conversationID).Scan(&lastSeq, &count)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: conversation %q: %w", conversationID, chat.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var fresh []chat.Member
		seen := make(map[string]bool, len(members))
		for _, m := range members {
			if seen[m.UserID] {
				continue
			}
			seen[m.UserID] = true
			var one int
			err := tx.QueryRowContext(ctx,
				`SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ?`, conversationID, m.UserID).Scan(&one)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				fresh = append(fresh, m)
			case err != nil:
				return err
			}
		}
		if len(fresh) > 0 && count+int64(len(fresh)) > int64(maxMembers) {
			return fmt.Errorf("sqlite: conversation %q would have %d members, more than %d: %w",
				conversationID, count+int64(len(fresh)), maxMembers, chat.ErrInvalid)
		}
		for _, m := range fresh {
			if err := insertMember(ctx, tx, conversationID, m, lastSeq, now); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE conversations SET updated_at = ? WHERE id = ?`, now, conversationID)
		return err
	})
}

// RemoveMember removes a member (chat.ErrNotFound if the conversation does not
// exist or userID is not a member) and sets updated_at to now. If the last
// admin leaves a group that still has members, the longest-standing member
// (earliest joined_at, ties by user id) becomes admin.
func (s *Store) RemoveMember(ctx context.Context, conversationID, userID string, now int64) error {
	return s.write(ctx, "remove member", func(tx *sql.Tx) error {
		var typ string
		var role sql.NullString
		err := tx.QueryRowContext(ctx,
			`SELECT c.type, m.role FROM conversations c
			 LEFT JOIN members m ON m.conversation_id = c.id AND m.user_id = ?
			 WHERE c.id = ?`, userID, conversationID).Scan(&typ, &role)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: conversation %q: %w", conversationID, chat.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !role.Valid {
			return fmt.Errorf("sqlite: %q is not a member of conversation %q: %w", userID, conversationID, chat.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM members WHERE conversation_id = ? AND user_id = ?`, conversationID, userID); err != nil {
			return err
		}
		if typ == chat.TypeGroup && role.String == chat.RoleAdmin {
			// Promote the longest-standing member if no admin is left; a no-op
			// when an admin remains or nobody does.
			if _, err := tx.ExecContext(ctx,
				`UPDATE members SET role = 'admin'
				 WHERE conversation_id = ?1
				   AND NOT EXISTS (SELECT 1 FROM members WHERE conversation_id = ?1 AND role = 'admin')
				   AND user_id = (SELECT user_id FROM members WHERE conversation_id = ?1
				                  ORDER BY joined_at, user_id LIMIT 1)`, conversationID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE conversations SET updated_at = ? WHERE id = ?`, now, conversationID)
		return err
	})
}

// RenameConversation sets a conversation's name and updated_at; chat.ErrNotFound.
func (s *Store) RenameConversation(ctx context.Context, conversationID, name string, now int64) error {
	res, err := s.exec(ctx,
		`UPDATE conversations SET name = ?, updated_at = ? WHERE id = ?`, name, now, conversationID)
	return affectedOne(fmt.Sprintf("rename conversation %q", conversationID), res, err)
}
