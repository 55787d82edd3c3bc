package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.KeyStore = (*Store)(nil)

// PutKeys implements chat.KeyStore.
func (s *Store) PutKeys(ctx context.Context, k chat.DeviceKeys) error {
	return s.write(ctx, "put keys", func(tx *sql.Tx) error {
		var old []byte
		err := tx.QueryRowContext(ctx, `SELECT identity_key FROM device_keys WHERE device_id = ?`, k.DeviceID).Scan(&old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case !bytes.Equal(old, k.IdentityKey):
			// A new identity is a new installation: its old prekeys are useless.
			if _, err := tx.ExecContext(ctx, `DELETE FROM one_time_prekeys WHERE device_id = ?`, k.DeviceID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO device_keys (device_id, user_id, identity_key, signing_key, spk_id, spk_public, spk_signature, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET identity_key = excluded.identity_key, signing_key = excluded.signing_key,
				spk_id = excluded.spk_id, spk_public = excluded.spk_public, spk_signature = excluded.spk_signature,
				updated_at = excluded.updated_at`,
			k.DeviceID, k.UserID, k.IdentityKey, k.SigningKey, k.SignedPreKey.KeyID, k.SignedPreKey.PublicKey,
			k.SignedPreKey.Signature, k.UpdatedAt)
		if err != nil {
			return err
		}
		for _, p := range k.OneTimePreKeys {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO one_time_prekeys (device_id, key_id, public_key) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				k.DeviceID, p.KeyID, p.PublicKey); err != nil {
				return err
			}
		}
		return nil
	})
}

// ClaimKeys implements chat.KeyStore: one write transaction, so two claims
// never get the same one-time prekey.
func (s *Store) ClaimKeys(ctx context.Context, userID string) ([]chat.KeyBundle, error) {
	var out []chat.KeyBundle
	err := s.write(ctx, "claim keys", func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `
			SELECT device_id, identity_key, signing_key, spk_id, spk_public, spk_signature
			FROM device_keys WHERE user_id = ? ORDER BY device_id`, userID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var b chat.KeyBundle
			if err := rows.Scan(&b.DeviceID, &b.IdentityKey, &b.SigningKey, &b.SignedPreKey.KeyID,
				&b.SignedPreKey.PublicKey, &b.SignedPreKey.Signature); err != nil {
				_ = rows.Close()
				return err
			}
			out = append(out, b)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		for i := range out {
			var p chat.PreKey
			err := tx.QueryRowContext(ctx, `
				DELETE FROM one_time_prekeys WHERE device_id = ? AND key_id =
					(SELECT key_id FROM one_time_prekeys WHERE device_id = ? ORDER BY key_id LIMIT 1)
				RETURNING key_id, public_key`, out[i].DeviceID, out[i].DeviceID).Scan(&p.KeyID, &p.PublicKey)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			default:
				out[i].OneTimePreKey = &p
			}
		}
		return nil
	})
	return out, err
}

// PrekeyCount implements chat.KeyStore.
func (s *Store) PrekeyCount(ctx context.Context, deviceID string) (int, error) {
	var n int
	err := s.read(ctx, "count prekeys", func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM one_time_prekeys WHERE device_id = ?`, deviceID).Scan(&n)
	})
	return n, err
}

// KeyedDevices implements chat.KeyStore.
func (s *Store) KeyedDevices(ctx context.Context, userIDs []string) ([]chat.DeviceRef, error) {
	var out []chat.DeviceRef
	if len(userIDs) == 0 {
		return out, nil
	}
	err := s.read(ctx, "keyed devices", func(tx *sql.Tx) error {
		args := make([]any, len(userIDs))
		for i, id := range userIDs {
			args[i] = id
		}
		q := fmt.Sprintf(`SELECT user_id, device_id FROM device_keys WHERE user_id IN (?%s) ORDER BY user_id, device_id`,
			strings.Repeat(", ?", len(userIDs)-1))
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d chat.DeviceRef
			if err := rows.Scan(&d.UserID, &d.DeviceID); err != nil {
				_ = rows.Close()
				return err
			}
			out = append(out, d)
		}
		return closeRows(rows)
	})
	return out, err
}

// DeleteKeys implements chat.KeyStore.
func (s *Store) DeleteKeys(ctx context.Context, deviceID string) error {
	return s.write(ctx, "delete keys", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM device_keys WHERE device_id = ?`, deviceID)
		return err
	})
}
