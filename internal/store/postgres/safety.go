package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.SafetyStore = (*Store)(nil)

// validList keeps the ids that can match a stored row.
func validList(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if validKeys(id) {
			out = append(out, id)
		}
	}
	return out
}

// Block records that blocker blocks blocked (idempotent).
func (s *Store) Block(ctx context.Context, blocker, blocked string, at int64) error {
	if !validKeys(blocker, blocked) {
		return fmt.Errorf("postgres: block: %w", chat.ErrNotFound)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (blocker_id, blocked_id) DO NOTHING`, blocker, blocked, at)
	return mapErr("block", err)
}

// Unblock removes a block (missing is fine).
func (s *Store) Unblock(ctx context.Context, blocker, blocked string) error {
	if !validKeys(blocker, blocked) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2`, blocker, blocked)
	return mapErr("unblock", err)
}

// Blocks lists whom blocker blocks, oldest first.
func (s *Store) Blocks(ctx context.Context, blocker string) ([]string, error) {
	if !validKeys(blocker) {
		return []string{}, nil
	}
	return s.strings(ctx, "blocks", `SELECT blocked_id FROM blocks WHERE blocker_id = $1 ORDER BY created_at, ord`, blocker)
}

// BlockedAmong returns those of others in a block with userID, either way.
func (s *Store) BlockedAmong(ctx context.Context, userID string, others []string) ([]string, error) {
	others = validList(others)
	if !validKeys(userID) || len(others) == 0 {
		return []string{}, nil
	}
	return s.strings(ctx, "blocked among", `SELECT blocked_id FROM blocks WHERE blocker_id = $1 AND blocked_id = ANY ($2::text[])
		UNION SELECT blocker_id FROM blocks WHERE blocked_id = $1 AND blocker_id = ANY ($2::text[])`, userID, others)
}

// BlockersAmong returns those of others that block userID.
func (s *Store) BlockersAmong(ctx context.Context, userID string, others []string) ([]string, error) {
	others = validList(others)
	if !validKeys(userID) || len(others) == 0 {
		return []string{}, nil
	}
	return s.strings(ctx, "blockers among", `SELECT blocker_id FROM blocks WHERE blocked_id = $1 AND blocker_id = ANY ($2::text[])`, userID, others)
}

// DirectBlocked says whether a direct conversation's members are in a block.
func (s *Store) DirectBlocked(ctx context.Context, conversationID string) (bool, error) {
	if !validKeys(conversationID) {
		return false, nil
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM direct_pairs d JOIN blocks b
		ON (b.blocker_id = d.user_lo AND b.blocked_id = d.user_hi) OR (b.blocker_id = d.user_hi AND b.blocked_id = d.user_lo)
		WHERE d.conversation_id = $1`, conversationID).Scan(&n)
	return n > 0, mapErr("direct blocked", err)
}

// SharingWith returns those of others sharing a conversation with userID.
func (s *Store) SharingWith(ctx context.Context, userID string, others []string) ([]string, error) {
	others = validList(others)
	if !validKeys(userID) || len(others) == 0 {
		return []string{}, nil
	}
	return s.strings(ctx, "sharing with", `SELECT DISTINCT m2.user_id FROM members m1
		JOIN members m2 ON m2.conversation_id = m1.conversation_id
		WHERE m1.user_id = $1 AND m2.user_id = ANY ($2::text[])`, userID, others)
}

func (s *Store) strings(ctx context.Context, op, q string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr(op, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, mapErr(op, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// MediaBytes sums the sizes of a user's media that is not deleted.
func (s *Store) MediaBytes(ctx context.Context, userID string) (int64, error) {
	if !validKeys(userID) {
		return 0, nil
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(size), 0)::bigint FROM media WHERE uploader_id = $1 AND deleted_at = 0`, userID).Scan(&n)
	return n, mapErr("media bytes", err)
}

// KeyBundles returns a user's key bundles without claiming prekeys.
func (s *Store) KeyBundles(ctx context.Context, userID string) ([]chat.KeyBundle, error) {
	if !validKeys(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, qKeyBundles, userID)
	if err != nil {
		return nil, mapErr("key bundles", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.KeyBundle, error) {
		var b chat.KeyBundle
		err := row.Scan(&b.DeviceID, &b.IdentityKey, &b.SigningKey, &b.SignedPreKey.KeyID,
			&b.SignedPreKey.PublicKey, &b.SignedPreKey.Signature)
		return b, err
	})
	return out, mapErr("key bundles", err)
}

// CreateInvite stores an invitation.
func (s *Store) CreateInvite(ctx context.Context, tokenHash string, createdAt, expiresAt int64) error {
	if !validKeys(tokenHash) {
		return fmt.Errorf("postgres: create invite: %w", chat.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO invites (token_hash, created_at, expires_at) VALUES ($1, $2, $3)`, tokenHash, createdAt, expiresAt)
	return mapErr("create invite", err)
}

// UseInvite deletes an unexpired invitation and reports whether there was one.
func (s *Store) UseInvite(ctx context.Context, tokenHash string, now int64) (bool, error) {
	if !validKeys(tokenHash) {
		return false, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM invites WHERE token_hash = $1 AND expires_at > $2`, tokenHash, now)
	if err != nil {
		return false, mapErr("use invite", err)
	}
	return tag.RowsAffected() == 1, nil
}

// CreateReport stores a report.
func (s *Store) CreateReport(ctx context.Context, r chat.Report) error {
	if !validKeys(r.ID, r.ReporterID, r.ConversationID, r.Reason) {
		return fmt.Errorf("postgres: create report: %w: text with NUL or invalid UTF-8", chat.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO reports (id, reporter_id, conversation_id, seq, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.ID, r.ReporterID, r.ConversationID, r.Seq, r.Reason, r.CreatedAt)
	return mapErr("create report", err)
}

// Reports lists reports, oldest first; open ones only unless all.
func (s *Store) Reports(ctx context.Context, all bool, limit int) ([]chat.Report, error) {
	q := `SELECT id, reporter_id, conversation_id, seq, reason, created_at, resolved_at, resolution FROM reports`
	if !all {
		q += ` WHERE resolved_at = 0`
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY created_at, ord LIMIT $1`, limit)
	if err != nil {
		return nil, mapErr("reports", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.Report, error) {
		var r chat.Report
		err := row.Scan(&r.ID, &r.ReporterID, &r.ConversationID, &r.Seq, &r.Reason, &r.CreatedAt, &r.ResolvedAt, &r.Resolution)
		return r, err
	})
	return out, mapErr("reports", err)
}

// ResolveReport marks a report resolved.
func (s *Store) ResolveReport(ctx context.Context, id, resolution string, at int64) error {
	if !validKeys(id, resolution) {
		return fmt.Errorf("postgres: resolve report: %w", chat.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE reports SET resolved_at = $1, resolution = $2 WHERE id = $3`, at, resolution, id)
	return rowsAffectedOne(fmt.Sprintf("resolve report %q", id), tag, err)
}

// Suspend marks a user suspended and deletes its sessions.
func (s *Store) Suspend(ctx context.Context, userID, reason string, at int64) error {
	if !validKeys(userID, reason) {
		return fmt.Errorf("postgres: suspend: %w", chat.ErrNotFound)
	}
	return s.write(ctx, "suspend", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO suspensions (user_id, reason, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason`, userID, reason, at); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
		return err
	})
}

// Unsuspend lifts a suspension.
func (s *Store) Unsuspend(ctx context.Context, userID string) error {
	if !validKeys(userID) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM suspensions WHERE user_id = $1`, userID)
	return mapErr("unsuspend", err)
}

// SuspendedSince lists users suspended at or after since.
func (s *Store) SuspendedSince(ctx context.Context, since int64) ([]string, error) {
	return s.strings(ctx, "suspended since", `SELECT user_id FROM suspensions WHERE created_at >= $1 ORDER BY created_at`, since)
}

// Suspended says whether the user is suspended.
func (s *Store) Suspended(ctx context.Context, userID string) (bool, error) {
	if !validKeys(userID) {
		return false, nil
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM suspensions WHERE user_id = $1`, userID).Scan(&n)
	return n > 0, mapErr("suspended", err)
}
