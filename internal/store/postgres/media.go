package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.MediaStore = (*Store)(nil)

const mediaCols = `id, uploader_id, content_type, size, width, height, duration_ms, name, blob_key, created_at, thumbnail`

// The media queries. Conditions on media_id <> ” and on deleted_at and
// referenced repeat the partial indexes' conditions so that the generic
// plans (plan_cache_mode = force_generic_plan) may use them.
const (
	qMediaCreate = `INSERT INTO media (` + mediaCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	qMedia       = `SELECT ` + mediaCols + ` FROM media WHERE id = $1 AND deleted_at = 0`

	// One statement, one snapshot: the uploader, or a member of a
	// conversation where a message references the item. No row: unknown or
	// deleted.
	qMediaCanRead = `SELECT m.uploader_id = $2::text OR EXISTS (SELECT 1 FROM messages x
			JOIN members mb ON mb.conversation_id = x.conversation_id AND mb.user_id = $2::text
			WHERE x.media_id = $1::text AND x.media_id <> '')
		FROM media m WHERE m.id = $1::text AND m.deleted_at = 0`

	// qMediaMarkReferenced flags the candidates that a message references,
	// so that they leave the garbage index for good. Rows a concurrent
	// transaction holds (a send, a delete) are left for the next run.
	qMediaMarkReferenced = `UPDATE media SET referenced = true WHERE id IN (
		SELECT c.id FROM media c
		WHERE c.deleted_at = 0 AND NOT c.referenced AND c.created_at < $1
		  AND EXISTS (SELECT 1 FROM messages x WHERE x.media_id = c.id AND x.media_id <> '')
		FOR NO KEY UPDATE SKIP LOCKED)`
	qMediaGarbage = `SELECT ` + mediaCols + ` FROM media c
		WHERE c.deleted_at = 0 AND NOT c.referenced AND c.created_at < $1
		  AND NOT EXISTS (SELECT 1 FROM messages x WHERE x.media_id = c.id AND x.media_id <> '')
		ORDER BY c.created_at, c.id LIMIT $2`

	// The delete: lock the live, old enough row first (a send holding it
	// FOR SHARE is waited for), then check messages in a later statement,
	// whose snapshot sees every message committed before the lock was
	// granted; a send that locks the row after it sees the tombstone.
	qMediaLock       = `SELECT 1 FROM media WHERE id = $1 AND deleted_at = 0 AND created_at < $2 FOR NO KEY UPDATE`
	qMediaReferenced = `SELECT EXISTS (SELECT 1 FROM messages x WHERE x.media_id = $1::text AND x.media_id <> '')`
	qMediaSetRef     = `UPDATE media SET referenced = true WHERE id = $1`
	qMediaTombstone  = `UPDATE media SET deleted_at = $2, thumbnail = '' WHERE id = $1`
	qMediaPurge      = `DELETE FROM media WHERE deleted_at > 0 AND deleted_at < $1`
)

func scanMedia(row pgx.Row) (chat.Media, error) {
	var m chat.Media
	err := row.Scan(&m.ID, &m.UploaderID, &m.ContentType, &m.Size, &m.Width, &m.Height, &m.DurationMS,
		&m.Name, &m.BlobKey, &m.CreatedAt, &m.Thumbnail)
	return m, err
}

// CreateMedia implements chat.MediaStore.
func (s *Store) CreateMedia(ctx context.Context, m chat.Media) error {
	_, err := s.pool.Exec(ctx, qMediaCreate, m.ID, m.UploaderID, m.ContentType, m.Size, m.Width, m.Height,
		m.DurationMS, m.Name, m.BlobKey, m.CreatedAt, m.Thumbnail)
	return mapErr(fmt.Sprintf("create media %q", m.ID), err)
}

// Media implements chat.MediaStore.
func (s *Store) Media(ctx context.Context, id string) (chat.Media, error) {
	if !validKeys(id) {
		return chat.Media{}, fmt.Errorf("postgres: media %q: %w", id, chat.ErrNotFound)
	}
	m, err := scanMedia(s.pool.QueryRow(ctx, qMedia, id))
	if err != nil {
		return chat.Media{}, mapErr(fmt.Sprintf("media %q", id), err)
	}
	return m, nil
}

// CanReadMedia implements chat.MediaStore.
func (s *Store) CanReadMedia(ctx context.Context, mediaID, userID string) (bool, error) {
	if !validKeys(mediaID) {
		return false, fmt.Errorf("postgres: media %q: %w", mediaID, chat.ErrNotFound)
	}
	if !validKeys(userID) {
		_, err := s.Media(ctx, mediaID)
		return false, err
	}
	var ok bool
	err := s.pool.QueryRow(ctx, qMediaCanRead, mediaID, userID).Scan(&ok)
	return ok, mapErr(fmt.Sprintf("media %q", mediaID), err)
}

// UnreferencedMedia implements chat.MediaStore. Candidates found
// referenced are flagged on the way, so each item is looked at by
// collection until it is either deleted or found referenced, not forever.
func (s *Store) UnreferencedMedia(ctx context.Context, before int64, limit int) ([]chat.Media, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []chat.Media
	err := s.write(ctx, "unreferenced media", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qMediaMarkReferenced, before); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, qMediaGarbage, before, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.Media, error) { return scanMedia(row) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUnreferencedMedia implements chat.MediaStore. The item's row lock
// orders it against every send referencing it (AppendBatch locks the row
// FOR SHARE in the message's statement): a send committed before the lock
// was granted is seen by the reference check, which runs in a later
// statement of this read-committed transaction, and a send that locks the
// row after this commits finds the tombstone and is refused. Tombstones
// deleted before before are purged in the same transaction.
func (s *Store) DeleteUnreferencedMedia(ctx context.Context, id string, before, now int64) (bool, error) {
	if !validKeys(id) {
		return false, nil
	}
	var deleted bool
	err := s.write(ctx, "delete media", func(tx pgx.Tx) error {
		deleted = false
		var one int
		err := tx.QueryRow(ctx, qMediaLock, id, before).Scan(&one)
		if err == pgx.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		var referenced bool
		if err := tx.QueryRow(ctx, qMediaReferenced, id).Scan(&referenced); err != nil {
			return err
		}
		if referenced {
			_, err := tx.Exec(ctx, qMediaSetRef, id)
			return err
		}
		if _, err := tx.Exec(ctx, qMediaTombstone, id, now); err != nil {
			return err
		}
		deleted = true
		_, err = tx.Exec(ctx, qMediaPurge, before)
		return err
	})
	if err != nil {
		return false, err
	}
	return deleted, nil
}
