package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat"
)

// msgCols are the columns scanMessage reads, in its order.
const msgCols = `conversation_id, seq, sender_id, client_message_id, id, sender_device_id,
	content_type, media_id, reply_to_seq, timestamp, client_timestamp, content, media_json`

// msgColsX is msgCols qualified by the table alias x.
const msgColsX = `x.conversation_id, x.seq, x.sender_id, x.client_message_id, x.id, x.sender_device_id,
	x.content_type, x.media_id, x.reply_to_seq, x.timestamp, x.client_timestamp, x.content, x.media_json`

func scanMessage(row pgx.Row) (chat.Message, error) {
	var m chat.Message
	var clientID, mediaJSON *string
	err := row.Scan(&m.ConversationID, &m.Seq, &m.SenderID, &clientID, &m.ID, &m.SenderDeviceID,
		&m.ContentType, &m.MediaID, &m.ReplyToSeq, &m.Timestamp, &m.ClientTimestamp, &m.Content, &mediaJSON)
	if clientID != nil {
		m.ClientID = *clientID
	}
	m.Media = decodeMediaInfo(mediaJSON)
	return m, err
}

// encodeMediaInfo is the media_json column of a message: NULL without media.
func encodeMediaInfo(mi *chat.MediaInfo) *string {
	if mi == nil {
		return nil
	}
	b, err := json.Marshal(mi)
	if err != nil {
		return nil // plain strings and numbers: cannot happen
	}
	s := string(b)
	return &s
}

// decodeMediaInfo reads the media_json column. Text that does not decode
// (which this store never writes) reads as no description: the message
// still names its media, whose description GET /media/{id}/info serves.
func decodeMediaInfo(s *string) *chat.MediaInfo {
	if s == nil {
		return nil
	}
	mi := new(chat.MediaInfo)
	if json.Unmarshal([]byte(*s), mi) != nil {
		return nil
	}
	return mi
}

// nullMessage receives msgCols from the nullable side of an outer join.
type nullMessage struct {
	convID, senderID, clientID, id, deviceID, contentType, mediaID, content, mediaJSON *string
	seq, replyTo, ts, clientTS                                                         *int64
}

func (n *nullMessage) dest() []any {
	return []any{&n.convID, &n.seq, &n.senderID, &n.clientID, &n.id, &n.deviceID,
		&n.contentType, &n.mediaID, &n.replyTo, &n.ts, &n.clientTS, &n.content, &n.mediaJSON}
}

// message returns the scanned message, or nil if the join found none.
func (n *nullMessage) message() *chat.Message {
	if n.convID == nil || n.seq == nil {
		return nil
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	num := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	return &chat.Message{
		ConversationID: *n.convID, Seq: *n.seq, SenderID: str(n.senderID), ClientID: str(n.clientID),
		ID: str(n.id), SenderDeviceID: str(n.deviceID), ContentType: str(n.contentType),
		MediaID: str(n.mediaID), ReplyToSeq: num(n.replyTo), Timestamp: num(n.ts),
		ClientTimestamp: num(n.clientTS), Content: str(n.content), Media: decodeMediaInfo(n.mediaJSON),
	}
}

// The statements of AppendBatch. pgx prepares each once per connection and
// caches it (QueryExecModeCacheStatement).
const (
	// qDuplicate finds the message stored under a sender's ClientID.
	qDuplicate = `SELECT ` + msgColsX + ` FROM message_keys k
		JOIN messages x ON x.conversation_id = k.conversation_id AND x.seq = k.seq
		WHERE k.sender_id = $1 AND k.client_message_id = $2`

	// qAppend stores one message, run while the transaction holds the
	// conversation's row lock. In one statement: the duplicate check, the
	// existence and membership checks, the idempotency key, the message at
	// last_seq + 1 and last_seq raised to it, each step only if the previous
	// one passed. No outcome is an SQL error: a key another transaction
	// committed meanwhile (ON CONFLICT DO NOTHING waits for it) just stores
	// nothing, and the counter moves only with an inserted message. It
	// returns whether the conversation exists, whether the sender is a
	// member, the stored seq (NULL if nothing was stored), whether the
	// message's media is a tombstone and the duplicate, if any.
	//
	// The media item a message names is locked FOR SHARE (med): media
	// collection locks the row before it checks for referencing messages, so
	// either it sees this message or this statement sees its tombstone, and
	// refuses the message (see DeleteUnreferencedMedia). Sends of one item
	// do not block each other.
	//
	// Parameters: $1 conversation, $2 sender, $3 client message id (NULL:
	// none), $4 id, $5 sender device, $6 content type, $7 media id,
	// $8 reply-to seq, $9 timestamp, $10 client timestamp, $11 content,
	// $12 media description (JSON, NULL: none).
	qAppend = `WITH dup AS (
			SELECT ` + msgColsX + ` FROM message_keys k
			JOIN messages x ON x.conversation_id = k.conversation_id AND x.seq = k.seq
			WHERE k.sender_id = $2::text AND k.client_message_id = $3::text
		), next AS (
			SELECT c.last_seq + 1 AS seq,
			       EXISTS (SELECT 1 FROM members mb WHERE mb.conversation_id = c.id AND mb.user_id = $2::text) AS member
			FROM conversations c WHERE c.id = $1::text
		), med AS (
			SELECT md.deleted_at FROM media md WHERE md.id = $7::text AND $7::text <> '' FOR SHARE
		), ok AS (
			SELECT n.seq FROM next n WHERE n.member AND NOT EXISTS (SELECT 1 FROM dup)
			  AND NOT EXISTS (SELECT 1 FROM med WHERE med.deleted_at > 0)
		), key AS (
			INSERT INTO message_keys (sender_id, client_message_id, conversation_id, seq)
			SELECT $2::text, $3::text, $1::text, ok.seq FROM ok WHERE $3::text IS NOT NULL
			ON CONFLICT (sender_id, client_message_id) DO NOTHING
			RETURNING seq
		), ins AS (
			INSERT INTO messages (` + msgCols + `)
			SELECT $1::text, ok.seq, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
			       $8::bigint, $9::bigint, $10::bigint, $11::text, $12::text
			FROM ok WHERE $3::text IS NULL OR EXISTS (SELECT 1 FROM key)
			RETURNING seq
		), bump AS (
			UPDATE conversations c SET last_seq = ins.seq, updated_at = $9::bigint
			FROM ins WHERE c.id = $1::text
		)
		SELECT n.seq IS NOT NULL, coalesce(n.member, false), (SELECT seq FROM ins),
		       EXISTS (SELECT 1 FROM med WHERE med.deleted_at > 0), ` + msgColsX + `
		FROM (VALUES (1)) AS one (x0)
		LEFT JOIN next n ON true
		LEFT JOIN dup x ON true`
)

// appendKind is how AppendBatch treats one message.
type appendKind int

const (
	appendFull    appendKind = iota // qAppend
	appendDupOnly                   // not storable text: only a duplicate can succeed
	appendInvalid                   // not storable text, and cannot be a duplicate
)

// classify decides how to append m. PostgreSQL text cannot hold NUL bytes or
// invalid UTF-8, and sending such a parameter would abort the whole batch's
// transaction, so such messages never reach qAppend.
func classify(m chat.Message) appendKind {
	keysOK := validKeys(m.SenderID, m.ClientID)
	if keysOK && validKeys(m.ConversationID, m.ID, m.SenderDeviceID, m.ContentType, m.MediaID, m.Content) {
		return appendFull
	}
	if keysOK && m.ClientID != "" {
		return appendDupOnly
	}
	return appendInvalid
}

func invalidText(m chat.Message) error {
	return fmt.Errorf("postgres: append: message %q: %w: text with a NUL byte or invalid UTF-8", m.ID, chat.ErrInvalid)
}

// AppendBatch stores msgs in one transaction and returns one result per
// message, in order. The batch is sent as one pipeline, committed as one
// implicit transaction (one round trip, one commit):
//
//  1. the row lock of every conversation the batch writes to, in id order
//     (a fixed order, so concurrent batches cannot deadlock on each other);
//  2. the members of those conversations, read under the locks (so they
//     are the members at commit time: membership changes take the same lock);
//  3. qAppend per message, in batch order.
//
// Per-message failures are chat.ErrNotFound (no such conversation),
// chat.ErrForbidden (the sender is not a member) and chat.ErrInvalid (text
// PostgreSQL cannot store); they write nothing and fail no other message.
// Any other failure aborts the transaction: the batch stores nothing and the
// error (chat.ErrUnavailable) is returned.
//
// A message with an empty ClientID is never a duplicate.
func (s *Store) AppendBatch(ctx context.Context, msgs []chat.Message) ([]chat.AppendResult, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	var results []chat.AppendResult
	var lost []int
	err := retry(ctx, func() error {
		var err error
		results, lost, err = s.appendOnce(ctx, msgs)
		return err
	})
	if err != nil {
		return nil, mapErr("append batch", err)
	}
	// Messages whose idempotency key another transaction (another node)
	// committed while this one ran: that one is now visible.
	for _, i := range lost {
		m := msgs[i]
		orig, err := scanMessage(s.pool.QueryRow(ctx, qDuplicate, m.SenderID, m.ClientID))
		switch {
		case err == nil:
			results[i] = chat.AppendResult{Message: orig, Duplicate: true}
		case errors.Is(err, pgx.ErrNoRows):
			results[i] = chat.AppendResult{Err: fmt.Errorf("postgres: append: message %q: %w: its client id was taken concurrently", m.ID, chat.ErrConflict)}
		default:
			results[i] = chat.AppendResult{Err: mapErr("append: load duplicate", err)}
		}
	}
	return results, nil
}

// appendOnce runs AppendBatch's transaction once. lost lists the messages
// whose idempotency key was committed by a concurrent transaction.
func (s *Store) appendOnce(ctx context.Context, msgs []chat.Message) (results []chat.AppendResult, lost []int, err error) {
	kinds := make([]appendKind, len(msgs))
	var convs []string
	for i, m := range msgs {
		kinds[i] = classify(m)
		if kinds[i] == appendFull {
			convs = append(convs, m.ConversationID)
		}
	}
	slices.Sort(convs)
	convs = slices.Compact(convs)

	b := &pgx.Batch{}
	for _, c := range convs {
		b.Queue(qLockConversation, c)
	}
	for _, c := range convs {
		b.Queue(qConvMembers, c)
	}
	for i, m := range msgs {
		switch kinds[i] {
		case appendFull:
			var clientID *string
			if m.ClientID != "" {
				clientID = &m.ClientID
			}
			b.Queue(qAppend, m.ConversationID, m.SenderID, clientID, m.ID, m.SenderDeviceID,
				m.ContentType, m.MediaID, m.ReplyToSeq, m.Timestamp, m.ClientTimestamp, m.Content,
				encodeMediaInfo(m.Media))
		case appendDupOnly:
			b.Queue(qDuplicate, m.SenderID, m.ClientID)
		}
	}
	if b.Len() == 0 {
		results = make([]chat.AppendResult, len(msgs))
		for i, m := range msgs {
			results[i].Err = invalidText(m)
		}
		return results, nil, nil
	}

	br := s.pool.SendBatch(ctx, b)
	results, lost, err = readAppend(br, msgs, kinds, convs)
	// Close reads up to the end of the pipeline: the implicit transaction
	// committed only if it reports no error. (Were decoding a result to fail
	// here, a bug, after the server committed, the caller would see an error
	// for stored messages; retried with their ClientIDs they come back as
	// duplicates, so nothing is stored twice.)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	return results, lost, nil
}

// readAppend reads the results of appendOnce's pipeline, in queue order.
func readAppend(br pgx.BatchResults, msgs []chat.Message, kinds []appendKind, convs []string) ([]chat.AppendResult, []int, error) {
	for range convs {
		if _, err := br.Exec(); err != nil {
			return nil, nil, err
		}
	}
	members := make(map[string][]string, len(convs))
	for _, c := range convs {
		rows, err := br.Query()
		if err != nil {
			return nil, nil, err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, nil, err
		}
		members[c] = ids
	}

	results := make([]chat.AppendResult, len(msgs))
	var lost []int
	for i, m := range msgs {
		switch kinds[i] {
		case appendInvalid:
			results[i].Err = invalidText(m)

		case appendDupOnly:
			orig, err := scanMessage(br.QueryRow())
			switch {
			case err == nil:
				results[i] = chat.AppendResult{Message: orig, Duplicate: true}
			case errors.Is(err, pgx.ErrNoRows):
				results[i].Err = invalidText(m)
			default:
				return nil, nil, err
			}

		case appendFull:
			var found, member, mediaGone bool
			var seq *int64
			var dup nullMessage
			if err := br.QueryRow().Scan(append([]any{&found, &member, &seq, &mediaGone}, dup.dest()...)...); err != nil {
				return nil, nil, err
			}
			switch {
			case dup.message() != nil:
				results[i] = chat.AppendResult{Message: *dup.message(), Duplicate: true}
			case !found:
				results[i].Err = fmt.Errorf("postgres: append: conversation %q: %w", m.ConversationID, chat.ErrNotFound)
			case !member:
				results[i].Err = fmt.Errorf("postgres: append: %q is not a member of conversation %q: %w",
					m.SenderID, m.ConversationID, chat.ErrForbidden)
			case mediaGone:
				results[i].Err = fmt.Errorf("postgres: append: message %q: %w: its media %q was deleted; upload it again",
					m.ID, chat.ErrInvalid, m.MediaID)
			case seq != nil:
				m.Seq = *seq
				results[i] = chat.AppendResult{Message: m, Recipients: slices.Clone(members[m.ConversationID])}
			default:
				lost = append(lost, i)
			}
		}
	}
	return results, lost, nil
}

// Messages returns a page of a conversation's history and whether more
// messages lie beyond it in the paging direction: with p.Forward the
// messages with seq > p.After oldest first, else with p.Before > 0 those with
// seq < p.Before newest first, else the newest. p.Limit <= 0 means
// DefaultPageLimit. chat.ErrNotFound for an unknown conversation.
func (s *Store) Messages(ctx context.Context, conversationID string, p chat.Page) ([]chat.Message, bool, error) {
	if !validKeys(conversationID) {
		return nil, false, fmt.Errorf("postgres: messages of conversation %q: %w", conversationID, chat.ErrNotFound)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, math.MaxInt32-1)
	var rows pgx.Rows
	var err error
	switch {
	case p.Forward:
		rows, err = s.pool.Query(ctx, qPageForward, conversationID, p.After, limit+1)
	case p.Before > 0:
		rows, err = s.pool.Query(ctx, qPageBefore, conversationID, p.Before, limit+1)
	default:
		rows, err = s.pool.Query(ctx, qPageNewest, conversationID, limit+1)
	}
	if err != nil {
		return nil, false, mapErr("messages", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.Message, error) { return scanMessage(row) })
	if err != nil {
		return nil, false, mapErr("messages", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	if len(out) == 0 {
		var one int
		err := s.pool.QueryRow(ctx, `SELECT 1 FROM conversations WHERE id = $1`, conversationID).Scan(&one)
		if err != nil {
			return nil, false, mapErr(fmt.Sprintf("messages of conversation %q", conversationID), err)
		}
	}
	return out, more, nil
}

const (
	qPageNewest = `SELECT ` + msgCols + ` FROM messages
		WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2`
	qPageBefore = `SELECT ` + msgCols + ` FROM messages
		WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`
	qPageForward = `SELECT ` + msgCols + ` FROM messages
		WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`

	// qWatermark raises one member's watermarks (never lowering them, read
	// implying delivered, both capped at last_seq) and returns the new ones;
	// no row if the user is not a member or nothing would move.
	qWatermark = `UPDATE members m SET
			read_seq = greatest(m.read_seq, least($4::bigint, c.last_seq)),
			delivered_seq = greatest(m.delivered_seq, least(greatest($3::bigint, $4::bigint), c.last_seq),
			                         least($4::bigint, c.last_seq))
		FROM conversations c
		WHERE m.conversation_id = $1 AND m.user_id = $2 AND c.id = m.conversation_id
		  AND (least($4::bigint, c.last_seq) > m.read_seq
		       OR least(greatest($3::bigint, $4::bigint), c.last_seq) > m.delivered_seq)
		RETURNING m.delivered_seq, m.read_seq`
)

// UpdateWatermarks raises receipt watermarks in one transaction (one
// pipeline) and returns those that moved, with their new values, in input
// order. A watermark never goes down, read implies delivered, both are
// capped at the conversation's last seq, and watermarks of non-members (or
// unknown conversations) are ignored. Rows are updated in (conversation,
// user) order so that concurrent calls cannot deadlock on each other.
func (s *Store) UpdateWatermarks(ctx context.Context, ws []chat.Watermark) ([]chat.Watermark, error) {
	order := make([]int, 0, len(ws))
	for i, w := range ws {
		if validKeys(w.ConversationID, w.UserID) {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(ws[a].ConversationID, ws[b].ConversationID), cmp.Compare(ws[a].UserID, ws[b].UserID))
	})
	var moved []chat.Watermark
	err := retry(ctx, func() error {
		b := &pgx.Batch{}
		for _, i := range order {
			w := ws[i]
			b.Queue(qWatermark, w.ConversationID, w.UserID, w.DeliveredSeq, w.ReadSeq)
		}
		br := s.pool.SendBatch(ctx, b)
		got := make(map[int]chat.Watermark, len(order))
		var err error
		for _, i := range order {
			var nw chat.Watermark
			err = br.QueryRow().Scan(&nw.DeliveredSeq, &nw.ReadSeq)
			if errors.Is(err, pgx.ErrNoRows) {
				err = nil
				continue
			}
			if err != nil {
				break
			}
			nw.ConversationID, nw.UserID = ws[i].ConversationID, ws[i].UserID
			got[i] = nw
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		moved = moved[:0]
		for i := range ws {
			if w, ok := got[i]; ok {
				moved = append(moved, w)
			}
		}
		return nil
	})
	if err != nil {
		return nil, mapErr("update watermarks", err)
	}
	return moved, nil
}
