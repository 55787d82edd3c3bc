package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.MediaStore = (*Store)(nil)

const mediaCols = `id, uploader_id, content_type, size, width, height, duration_ms, name, blob_key, created_at, thumbnail`

// The media queries (checked by TestMediaQueryPlans). Conditions on
// media_id <> ” and deleted_at repeat the partial indexes' conditions so
// that SQLite may use them.
const (
	qMedia         = `SELECT ` + mediaCols + ` FROM media WHERE id = ? AND deleted_at = 0`
	qMediaUploader = `SELECT uploader_id FROM media WHERE id = ? AND deleted_at = 0`
	// Is userID a member of a conversation where a message references the item?
	qMediaShared = `SELECT EXISTS (SELECT 1 FROM messages x
		JOIN members mb ON mb.conversation_id = x.conversation_id AND mb.user_id = ?
		WHERE x.media_id = ? AND x.media_id <> '')`
	qMediaGarbage = `SELECT ` + mediaCols + ` FROM media
		WHERE deleted_at = 0 AND referenced = 0 AND created_at < ?
		ORDER BY created_at LIMIT ?`
	// The delete re-checks messages itself (referenced is only a hint), in
	// the same transaction as the update.
	qMediaDelete = `UPDATE media SET deleted_at = ?, thumbnail = ''
		WHERE id = ? AND deleted_at = 0 AND created_at < ?
		AND NOT EXISTS (SELECT 1 FROM messages x WHERE x.media_id = ? AND x.media_id <> '')`
	qMediaPurge = `DELETE FROM media WHERE deleted_at > 0 AND deleted_at < ?`
)

func scanMedia(row interface{ Scan(...any) error }) (chat.Media, error) {
	var m chat.Media
	err := row.Scan(&m.ID, &m.UploaderID, &m.ContentType, &m.Size, &m.Width, &m.Height, &m.DurationMS,
		&m.Name, &m.BlobKey, &m.CreatedAt, &m.Thumbnail)
	return m, err
}

// CreateMedia implements chat.MediaStore.
func (s *Store) CreateMedia(ctx context.Context, m chat.Media) error {
	return s.write(ctx, "create media", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO media (`+mediaCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.UploaderID, m.ContentType, m.Size, m.Width, m.Height, m.DurationMS, m.Name, m.BlobKey, m.CreatedAt, m.Thumbnail)
		return err
	})
}

// Media implements chat.MediaStore.
func (s *Store) Media(ctx context.Context, id string) (chat.Media, error) {
	m, err := scanMedia(s.r.QueryRowContext(ctx, qMedia, id))
	if err != nil {
		return chat.Media{}, mapErr(fmt.Sprintf("media %q", id), err)
	}
	return m, nil
}

// CanReadMedia implements chat.MediaStore: one read snapshot.
func (s *Store) CanReadMedia(ctx context.Context, mediaID, userID string) (bool, error) {
	var ok bool
	err := s.read(ctx, fmt.Sprintf("media %q", mediaID), func(tx *sql.Tx) error {
		var uploader string
		if err := tx.QueryRowContext(ctx, qMediaUploader, mediaID).Scan(&uploader); err != nil {
			return err
		}
		if uploader == userID {
			ok = true
			return nil
		}
		return tx.QueryRowContext(ctx, qMediaShared, userID, mediaID).Scan(&ok)
	})
	return ok, err
}

// UnreferencedMedia implements chat.MediaStore.
func (s *Store) UnreferencedMedia(ctx context.Context, before int64, limit int) ([]chat.Media, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, qMediaGarbage, before, limit)
	if err != nil {
		return nil, mapErr("unreferenced media", err)
	}
	var out []chat.Media
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			rows.Close()
			return nil, mapErr("unreferenced media", err)
		}
		out = append(out, m)
	}
	return out, mapErr("unreferenced media", closeRows(rows))
}

// DeleteUnreferencedMedia implements chat.MediaStore. It runs on the one
// writer connection in an immediate transaction, like every AppendBatch: a
// message insert is either committed before it (and then the NOT EXISTS
// sees it and nothing is deleted) or after it (and then the
// messages_media_alive trigger refuses the message). Tombstones deleted
// before before are purged in the same transaction.
func (s *Store) DeleteUnreferencedMedia(ctx context.Context, id string, before, now int64) (bool, error) {
	var deleted bool
	err := s.write(ctx, "delete media", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qMediaDelete, now, id, before, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		deleted = n == 1
		_, err = tx.ExecContext(ctx, qMediaPurge, before)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return deleted, err
}
