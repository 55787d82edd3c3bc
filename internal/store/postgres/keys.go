package postgres

import (
	"bytes"
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.KeyStore = (*Store)(nil)

const (
	// qKeysLock serializes uploads of one device's keys (the identity check
	// and the upsert), across nodes, for the rest of the transaction.
	qKeysLock = `SELECT pg_advisory_xact_lock(hashtextextended('parley/keys/' || $1::text, 0))`

	qKeysUpsert = `INSERT INTO device_keys (device_id, user_id, identity_key, signing_key, spk_id, spk_public, spk_signature, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (device_id) DO UPDATE SET identity_key = excluded.identity_key, signing_key = excluded.signing_key,
			spk_id = excluded.spk_id, spk_public = excluded.spk_public, spk_signature = excluded.spk_signature,
			updated_at = excluded.updated_at`

	qPrekeysAdd = `INSERT INTO one_time_prekeys (device_id, key_id, public_key)
		SELECT $1::text, k.id, k.pub FROM unnest($2::bigint[], $3::bytea[]) AS k (id, pub)
		ON CONFLICT (device_id, key_id) DO NOTHING`

	qKeyBundles = `SELECT device_id, identity_key, signing_key, spk_id, spk_public, spk_signature
		FROM device_keys WHERE user_id = $1 ORDER BY device_id`

	// qPrekeyClaim takes the device's lowest unclaimed one-time prekey.
	// SKIP LOCKED: a concurrent claim holding the lowest one makes this one
	// take the next, instead of waiting and then finding it gone.
	qPrekeyClaim = `DELETE FROM one_time_prekeys
		WHERE device_id = $1 AND key_id = (
			SELECT key_id FROM one_time_prekeys WHERE device_id = $1
			ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING key_id, public_key`
)

// PutKeys implements chat.KeyStore.
func (s *Store) PutKeys(ctx context.Context, k chat.DeviceKeys) error {
	if !validKeys(k.UserID, k.DeviceID) {
		return mapErr("put keys", chat.ErrNotFound)
	}
	ids := make([]int64, len(k.OneTimePreKeys))
	pubs := make([][]byte, len(k.OneTimePreKeys))
	for i, p := range k.OneTimePreKeys {
		ids[i], pubs[i] = p.KeyID, p.PublicKey
	}
	return s.write(ctx, "put keys", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qKeysLock, k.DeviceID); err != nil {
			return err
		}
		var old []byte
		err := tx.QueryRow(ctx, `SELECT identity_key FROM device_keys WHERE device_id = $1`, k.DeviceID).Scan(&old)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case !bytes.Equal(old, k.IdentityKey):
			// A new identity is a new installation: its old prekeys are useless.
			if _, err := tx.Exec(ctx, `DELETE FROM one_time_prekeys WHERE device_id = $1`, k.DeviceID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, qKeysUpsert, k.DeviceID, k.UserID, k.IdentityKey, k.SigningKey,
			k.SignedPreKey.KeyID, k.SignedPreKey.PublicKey, k.SignedPreKey.Signature, k.UpdatedAt); err != nil {
			return err
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, qPrekeysAdd, k.DeviceID, ids, pubs); err != nil {
				return err
			}
		}
		return nil
	})
}

// ClaimKeys implements chat.KeyStore: one transaction; every prekey is
// removed with DELETE ... RETURNING, so no two claims get the same one.
func (s *Store) ClaimKeys(ctx context.Context, userID string) ([]chat.KeyBundle, error) {
	if !validKeys(userID) {
		return nil, nil
	}
	var out []chat.KeyBundle
	err := s.write(ctx, "claim keys", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, qKeyBundles, userID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.KeyBundle, error) {
			var b chat.KeyBundle
			err := row.Scan(&b.DeviceID, &b.IdentityKey, &b.SigningKey, &b.SignedPreKey.KeyID,
				&b.SignedPreKey.PublicKey, &b.SignedPreKey.Signature)
			return b, err
		})
		if err != nil {
			return err
		}
		for i := range out {
			var p chat.PreKey
			err := tx.QueryRow(ctx, qPrekeyClaim, out[i].DeviceID).Scan(&p.KeyID, &p.PublicKey)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			default:
				out[i].OneTimePreKey = &p
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PrekeyCount implements chat.KeyStore.
func (s *Store) PrekeyCount(ctx context.Context, deviceID string) (int, error) {
	if !validKeys(deviceID) {
		return 0, nil
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM one_time_prekeys WHERE device_id = $1`, deviceID).Scan(&n)
	return n, mapErr("count prekeys", err)
}

// KeyedDevices implements chat.KeyStore.
func (s *Store) KeyedDevices(ctx context.Context, userIDs []string) ([]chat.DeviceRef, error) {
	ids := make([]string, 0, len(userIDs))
	for _, id := range userIDs {
		if validKeys(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return []chat.DeviceRef{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT user_id, device_id FROM device_keys
		WHERE user_id = ANY ($1::text[]) ORDER BY user_id, device_id`, ids)
	if err != nil {
		return nil, mapErr("keyed devices", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.DeviceRef, error) {
		var d chat.DeviceRef
		err := row.Scan(&d.UserID, &d.DeviceID)
		return d, err
	})
	return out, mapErr("keyed devices", err)
}

// DeleteKeys implements chat.KeyStore; the device's prekeys go with it.
func (s *Store) DeleteKeys(ctx context.Context, deviceID string) error {
	if !validKeys(deviceID) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM device_keys WHERE device_id = $1`, deviceID)
	return mapErr("delete keys", err)
}
