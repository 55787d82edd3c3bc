package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/internal/chat"
)

// msgCols are the columns scanMessage reads, in its order.
const msgCols = `conversation_id, seq, sender_id, client_message_id, id, sender_device_id,
	content_type, media_id, reply_to_seq, timestamp, client_timestamp, content, media_json`

// msgColsX is msgCols qualified by the table alias x.
const msgColsX = `x.conversation_id, x.seq, x.sender_id, x.client_message_id, x.id, x.sender_device_id,
	x.content_type, x.media_id, x.reply_to_seq, x.timestamp, x.client_timestamp, x.content, x.media_json`

func scanMessage(row interface{ Scan(...any) error }) (chat.Message, error) {
	var m chat.Message
	var clientID, mediaJSON sql.NullString
	err := row.Scan(&m.ConversationID, &m.Seq, &m.SenderID, &clientID, &m.ID, &m.SenderDeviceID,
		&m.ContentType, &m.MediaID, &m.ReplyToSeq, &m.Timestamp, &m.ClientTimestamp, &m.Content, &mediaJSON)
	m.ClientID = clientID.String
	if mediaJSON.Valid {
		m.Media = decodeMediaInfo(mediaJSON.String)
	}
	return m, err
}

// encodeMediaInfo is the media_json column of a message: NULL without media.
func encodeMediaInfo(mi *chat.MediaInfo) any {
	if mi == nil {
		return nil
	}
	b, err := json.Marshal(mi)
	if err != nil {
		return nil // plain strings and numbers: cannot happen
	}
	return string(b)
}

// decodeMediaInfo reads the media_json column. Text that does not decode
// (which this store never writes) reads as no description: the message
// still names its media, whose description GET /media/{id}/info serves.
func decodeMediaInfo(s string) *chat.MediaInfo {
	mi := new(chat.MediaInfo)
	if json.Unmarshal([]byte(s), mi) != nil {
		return nil
	}
	return mi
}

// The statements of AppendBatch, prepared once per batch.
const (
	qAppendDuplicate = `SELECT ` + msgCols + ` FROM messages WHERE sender_id = ? AND client_message_id = ?`
	// One row per member (or one row with a NULL user for a conversation
	// without members); no row: no such conversation.
	qAppendMembers = `SELECT c.last_seq, m.user_id
		FROM conversations c LEFT JOIN members m ON m.conversation_id = c.id
		WHERE c.id = ?`
	qAppendInsert = `INSERT INTO messages (conversation_id, seq, sender_id, client_message_id, id,
		sender_device_id, content_type, media_id, reply_to_seq, timestamp, client_timestamp, content, media_json)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qAppendBump = `UPDATE conversations SET last_seq = ?, updated_at = ? WHERE id = ?`
)

// appendStmts are the statements of AppendBatch. They are prepared once on
// the writer connection at Open; each batch binds them to its transaction
// with Tx.StmtContext, which reuses the compiled statement.
type appendStmts struct {
	dup, members, insert, bump   *sql.Stmt
	savepoint, release, rollback *sql.Stmt
}

func (st *appendStmts) all() []**sql.Stmt {
	return []**sql.Stmt{&st.dup, &st.members, &st.insert, &st.bump, &st.savepoint, &st.release, &st.rollback}
}

var appendQueries = []string{qAppendDuplicate, qAppendMembers, qAppendInsert, qAppendBump,
	`SAVEPOINT msg`, `RELEASE msg`, `ROLLBACK TO msg`}

func prepareAppend(ctx context.Context, db *sql.DB) (*appendStmts, error) {
	st := &appendStmts{}
	for i, dst := range st.all() {
		s, err := db.PrepareContext(ctx, appendQueries[i])
		if err != nil {
			st.close()
			return nil, err
		}
		*dst = s
	}
	return st, nil
}

// inTx returns the statements bound to tx.
func (st *appendStmts) inTx(ctx context.Context, tx *sql.Tx) *appendStmts {
	out := &appendStmts{}
	src := st.all()
	for i, dst := range out.all() {
		*dst = tx.StmtContext(ctx, *src[i])
	}
	return out
}

func (st *appendStmts) close() {
	for _, s := range st.all() {
		if *s != nil {
			(*s).Close()
		}
	}
}

// AppendBatch stores msgs in one immediate transaction (group commit: one
// fsync for the whole batch) and returns one result per message, in order.
// Each message runs under its own SAVEPOINT, so a message that fails rolls
// back only itself. Per-message failures are chat.ErrNotFound (no such
// conversation), chat.ErrForbidden (the sender is not a member) or
// chat.ErrInvalid/ErrConflict (a constraint refused the row); any other
// failure aborts the whole batch, which then stores nothing.
//
// A message with an empty ClientID is never a duplicate.
func (s *Store) AppendBatch(ctx context.Context, msgs []chat.Message) ([]chat.AppendResult, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	results := make([]chat.AppendResult, len(msgs))
	err := s.write(ctx, "append batch", func(tx *sql.Tx) error {
		st := s.appendStmts.inTx(ctx, tx)
		defer st.close()
		// Membership and last_seq of the conversations this batch touches.
		// Only this transaction writes while it runs (one writer connection,
		// BEGIN IMMEDIATE), and it changes no membership, so what it read
		// stays true until it commits; the cache dies with the transaction.
		convs := make(map[string]*batchConv)
		for i, m := range msgs {
			res, err := appendOne(ctx, st, convs, m)
			if err != nil {
				return err
			}
			results[i] = res
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// batchConv is what one AppendBatch knows about a conversation.
type batchConv struct {
	found   bool
	lastSeq int64
	members []string
}

func (c *batchConv) isMember(userID string) bool {
	for _, m := range c.members {
		if m == userID {
			return true
		}
	}
	return false
}

// loadBatchConv reads a conversation's last_seq and members.
func loadBatchConv(ctx context.Context, st *appendStmts, convID string) (*batchConv, error) {
	rows, err := st.members.QueryContext(ctx, convID)
	if err != nil {
		return nil, err
	}
	c := &batchConv{}
	for rows.Next() {
		var uid sql.NullString
		if err := rows.Scan(&c.lastSeq, &uid); err != nil {
			rows.Close()
			return nil, err
		}
		c.found = true
		if uid.Valid {
			c.members = append(c.members, uid.String)
		}
	}
	return c, closeRows(rows)
}

// appendOne stores one message of a batch. Its error aborts the batch; a
// failure of this message alone is reported in the result.
func appendOne(ctx context.Context, st *appendStmts, convs map[string]*batchConv, m chat.Message) (chat.AppendResult, error) {
	if m.ClientID != "" {
		orig, err := scanMessage(st.dup.QueryRowContext(ctx, m.SenderID, m.ClientID))
		switch {
		case err == nil:
			return chat.AppendResult{Message: orig, Duplicate: true}, nil
		case !errors.Is(err, sql.ErrNoRows):
			return chat.AppendResult{}, err
		}
	}

	conv := convs[m.ConversationID]
	if conv == nil {
		var err error
		if conv, err = loadBatchConv(ctx, st, m.ConversationID); err != nil {
			return chat.AppendResult{}, err
		}
		convs[m.ConversationID] = conv
	}
	switch {
	case !conv.found:
		return chat.AppendResult{Err: fmt.Errorf("sqlite: append: conversation %q: %w", m.ConversationID, chat.ErrNotFound)}, nil
	case !conv.isMember(m.SenderID):
		return chat.AppendResult{Err: fmt.Errorf("sqlite: append: %q is not a member of conversation %q: %w",
			m.SenderID, m.ConversationID, chat.ErrForbidden)}, nil
	}

	m.Seq = conv.lastSeq + 1
	var clientID any
	if m.ClientID != "" {
		clientID = m.ClientID
	}
	if _, err := st.savepoint.ExecContext(ctx); err != nil {
		return chat.AppendResult{}, err
	}
	_, err := st.insert.ExecContext(ctx, m.ConversationID, m.Seq, m.SenderID, clientID, m.ID,
		m.SenderDeviceID, m.ContentType, m.MediaID, m.ReplyToSeq, m.Timestamp, m.ClientTimestamp, m.Content,
		encodeMediaInfo(m.Media))
	if err == nil {
		_, err = st.bump.ExecContext(ctx, m.Seq, m.Timestamp, m.ConversationID)
	}
	if err != nil {
		// Undo this message only, then decide whether it alone failed.
		if _, rerr := st.rollback.ExecContext(ctx); rerr != nil {
			return chat.AppendResult{}, errors.Join(err, rerr)
		}
		if _, rerr := st.release.ExecContext(ctx); rerr != nil {
			return chat.AppendResult{}, errors.Join(err, rerr)
		}
		if mapped := mapErr("append", err); !errors.Is(mapped, chat.ErrUnavailable) {
			return chat.AppendResult{Err: mapped}, nil
		}
		return chat.AppendResult{}, err
	}
	if _, err := st.release.ExecContext(ctx); err != nil {
		return chat.AppendResult{}, err
	}
	conv.lastSeq = m.Seq
	return chat.AppendResult{Message: m, Recipients: slices.Clone(conv.members)}, nil
}

// Messages returns a page of a conversation's history and whether more
// messages lie beyond it in the paging direction: with p.Forward the
// messages with seq > p.After oldest first, else with p.Before > 0 those with
// seq < p.Before newest first, else the newest. p.Limit <= 0 means
// DefaultPageLimit. chat.ErrNotFound for an unknown conversation.
func (s *Store) Messages(ctx context.Context, conversationID string, p chat.Page) ([]chat.Message, bool, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	var rows *sql.Rows
	var err error
	switch {
	case p.Forward:
		rows, err = s.r.QueryContext(ctx, qPageForward, conversationID, p.After, limit+1)
	case p.Before > 0:
		rows, err = s.r.QueryContext(ctx, qPageBefore, conversationID, p.Before, limit+1)
	default:
		rows, err = s.r.QueryContext(ctx, qPageNewest, conversationID, limit+1)
	}
	if err != nil {
		return nil, false, mapErr("messages", err)
	}
	out := make([]chat.Message, 0, min(limit+1, 64))
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return nil, false, mapErr("messages", err)
		}
		out = append(out, m)
	}
	if err := closeRows(rows); err != nil {
		return nil, false, mapErr("messages", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	if len(out) == 0 {
		var one int
		err := s.r.QueryRowContext(ctx, `SELECT 1 FROM conversations WHERE id = ?`, conversationID).Scan(&one)
		if err != nil {
			return nil, false, mapErr(fmt.Sprintf("messages of conversation %q", conversationID), err)
		}
	}
	return out, more, nil
}

const (
	qPageNewest = `SELECT ` + msgCols + ` FROM messages
		WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?`
	qPageBefore = `SELECT ` + msgCols + ` FROM messages
		WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`
	qPageForward = `SELECT ` + msgCols + ` FROM messages
		WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`
	qWatermark = `SELECT m.delivered_seq, m.read_seq, c.last_seq
		FROM members m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.conversation_id = ? AND m.user_id = ?`
)

// UpdateWatermarks raises receipt watermarks in one transaction and returns
// those that moved, with their new values, in input order. A watermark never
// goes down, read implies delivered, both are capped at the conversation's
// last seq, and watermarks of non-members (or unknown conversations) are
// ignored.
func (s *Store) UpdateWatermarks(ctx context.Context, ws []chat.Watermark) ([]chat.Watermark, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	var moved []chat.Watermark
	err := s.write(ctx, "update watermarks", func(tx *sql.Tx) error {
		moved = moved[:0]
		for _, w := range ws {
			var delivered, read, last int64
			err := tx.QueryRowContext(ctx, qWatermark, w.ConversationID, w.UserID).Scan(&delivered, &read, &last)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			newRead := max(read, min(w.ReadSeq, last))
			newDelivered := max(delivered, min(max(w.DeliveredSeq, w.ReadSeq), last), newRead)
			if newRead == read && newDelivered == delivered {
				continue
			}
			if _, err := tx.ExecContext(ctx,
				`UPDATE members SET delivered_seq = ?, read_seq = ? WHERE conversation_id = ? AND user_id = ?`,
				newDelivered, newRead, w.ConversationID, w.UserID); err != nil {
				return err
			}
			moved = append(moved, chat.Watermark{
				ConversationID: w.ConversationID, UserID: w.UserID,
				DeliveredSeq: newDelivered, ReadSeq: newRead,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return moved, nil
}
