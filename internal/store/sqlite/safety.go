package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.SafetyStore = (*Store)(nil)

// Block records that blocker blocks blocked (idempotent).
func (s *Store) Block(ctx context.Context, blocker, blocked string, at int64) error {
	_, err := s.exec(ctx, `INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)
		ON CONFLICT (blocker_id, blocked_id) DO NOTHING`, blocker, blocked, at)
	return mapErr("block", err)
}

// Unblock removes a block (missing is fine).
func (s *Store) Unblock(ctx context.Context, blocker, blocked string) error {
	_, err := s.exec(ctx, `DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?`, blocker, blocked)
	return mapErr("unblock", err)
}

// Blocks lists whom blocker blocks, oldest first.
func (s *Store) Blocks(ctx context.Context, blocker string) ([]string, error) {
	return s.strings(ctx, "blocks", `SELECT blocked_id FROM blocks WHERE blocker_id = ? ORDER BY created_at, blocked_id`, blocker)
}

// inList returns "?, ?, ?" for n parameters.
func inList(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// chunked runs q (with one %s for an IN list) over others in chunks and
// collects the first column.
func (s *Store) chunked(ctx context.Context, op, q, userID string, others []string, twice bool) ([]string, error) {
	var out []string
	for len(others) > 0 {
		n := min(len(others), 400)
		args := []any{userID}
		for _, o := range others[:n] {
			args = append(args, o)
		}
		if twice {
			args = append(args, userID)
			for _, o := range others[:n] {
				args = append(args, o)
			}
		}
		list := inList(n)
		query := q
		if twice {
			query = fmt.Sprintf(q, list, list)
		} else {
			query = fmt.Sprintf(q, list)
		}
		got, err := s.strings(ctx, op, query, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		others = others[n:]
	}
	return out, nil
}

// BlockedAmong returns those of others in a block with userID, either way.
func (s *Store) BlockedAmong(ctx context.Context, userID string, others []string) ([]string, error) {
	return s.chunked(ctx, "blocked among", `SELECT blocked_id FROM blocks WHERE blocker_id = ? AND blocked_id IN (%s)
		UNION SELECT blocker_id FROM blocks WHERE blocked_id = ? AND blocker_id IN (%s)`, userID, others, true)
}

// BlockersAmong returns those of others that block userID.
func (s *Store) BlockersAmong(ctx context.Context, userID string, others []string) ([]string, error) {
	return s.chunked(ctx, "blockers among", `SELECT blocker_id FROM blocks WHERE blocked_id = ? AND blocker_id IN (%s)`, userID, others, false)
}

// DirectBlocked says whether a direct conversation's members are in a block.
func (s *Store) DirectBlocked(ctx context.Context, conversationID string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM direct_pairs d JOIN blocks b
		ON (b.blocker_id = d.user_lo AND b.blocked_id = d.user_hi) OR (b.blocker_id = d.user_hi AND b.blocked_id = d.user_lo)
		WHERE d.conversation_id = ?`, conversationID).Scan(&n)
	return n > 0, mapErr("direct blocked", err)
}

// SharingWith returns those of others sharing a conversation with userID.
func (s *Store) SharingWith(ctx context.Context, userID string, others []string) ([]string, error) {
	return s.chunked(ctx, "sharing with", `SELECT DISTINCT m2.user_id FROM members m1
		JOIN members m2 ON m2.conversation_id = m1.conversation_id
		WHERE m1.user_id = ? AND m2.user_id IN (%s)`, userID, others, false)
}

func (s *Store) strings(ctx context.Context, op, q string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(op, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, v)
	}
	return out, mapErr(op, rows.Err())
}

// MediaBytes sums the sizes of a user's media that is not deleted.
func (s *Store) MediaBytes(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0) FROM media WHERE uploader_id = ? AND deleted_at = 0`, userID).Scan(&n)
	return n, mapErr("media bytes", err)
}

// KeyBundles returns a user's key bundles without claiming prekeys.
func (s *Store) KeyBundles(ctx context.Context, userID string) ([]chat.KeyBundle, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT device_id, identity_key, signing_key, spk_id, spk_public, spk_signature
		FROM device_keys WHERE user_id = ? ORDER BY device_id`, userID)
	if err != nil {
		return nil, mapErr("key bundles", err)
	}
	defer rows.Close()
	var out []chat.KeyBundle
	for rows.Next() {
		var b chat.KeyBundle
		if err := rows.Scan(&b.DeviceID, &b.IdentityKey, &b.SigningKey, &b.SignedPreKey.KeyID,
			&b.SignedPreKey.PublicKey, &b.SignedPreKey.Signature); err != nil {
			return nil, mapErr("key bundles", err)
		}
		out = append(out, b)
	}
	return out, mapErr("key bundles", rows.Err())
}

// CreateInvite stores an invitation.
func (s *Store) CreateInvite(ctx context.Context, tokenHash string, createdAt, expiresAt int64) error {
	_, err := s.exec(ctx, `INSERT INTO invites (token_hash, created_at, expires_at) VALUES (?, ?, ?)`, tokenHash, createdAt, expiresAt)
	return mapErr("create invite", err)
}

// UseInvite deletes an unexpired invitation and reports whether there was one.
func (s *Store) UseInvite(ctx context.Context, tokenHash string, now int64) (bool, error) {
	res, err := s.exec(ctx, `DELETE FROM invites WHERE token_hash = ? AND expires_at > ?`, tokenHash, now)
	if err != nil {
		return false, mapErr("use invite", err)
	}
	n, err := res.RowsAffected()
	return n == 1, mapErr("use invite", err)
}

// CreateReport stores a report.
func (s *Store) CreateReport(ctx context.Context, r chat.Report) error {
	_, err := s.exec(ctx, `INSERT INTO reports (id, reporter_id, conversation_id, seq, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		r.ID, r.ReporterID, r.ConversationID, r.Seq, r.Reason, r.CreatedAt)
	return mapErr("create report", err)
}

// Reports lists reports, oldest first; open ones only unless all.
func (s *Store) Reports(ctx context.Context, all bool, limit int) ([]chat.Report, error) {
	q := `SELECT id, reporter_id, conversation_id, seq, reason, created_at, resolved_at, resolution FROM reports`
	if !all {
		q += ` WHERE resolved_at = 0`
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY created_at, rowid LIMIT ?`, limit)
	if err != nil {
		return nil, mapErr("reports", err)
	}
	defer rows.Close()
	var out []chat.Report
	for rows.Next() {
		var r chat.Report
		if err := rows.Scan(&r.ID, &r.ReporterID, &r.ConversationID, &r.Seq, &r.Reason, &r.CreatedAt, &r.ResolvedAt, &r.Resolution); err != nil {
			return nil, mapErr("reports", err)
		}
		out = append(out, r)
	}
	return out, mapErr("reports", rows.Err())
}

// ResolveReport marks a report resolved.
func (s *Store) ResolveReport(ctx context.Context, id, resolution string, at int64) error {
	res, err := s.exec(ctx, `UPDATE reports SET resolved_at = ?, resolution = ? WHERE id = ?`, at, resolution, id)
	return affectedOne(fmt.Sprintf("resolve report %q", id), res, err)
}

// Suspend marks a user suspended and deletes its sessions.
func (s *Store) Suspend(ctx context.Context, userID, reason string, at int64) error {
	return s.write(ctx, "suspend", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO suspensions (user_id, reason, created_at) VALUES (?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason`, userID, reason, at); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		return err
	})
}

// Unsuspend lifts a suspension.
func (s *Store) Unsuspend(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM suspensions WHERE user_id = ?`, userID)
	return mapErr("unsuspend", err)
}

// SuspendedSince lists users suspended at or after since.
func (s *Store) SuspendedSince(ctx context.Context, since int64) ([]string, error) {
	return s.strings(ctx, "suspended since", `SELECT user_id FROM suspensions WHERE created_at >= ? ORDER BY created_at`, since)
}

// Suspended says whether the user is suspended.
func (s *Store) Suspended(ctx context.Context, userID string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM suspensions WHERE user_id = ?`, userID).Scan(&n)
	return n > 0, mapErr("suspended", err)
}
