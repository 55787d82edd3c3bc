package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/parley-chat/parley/internal/chat"
)

// CreateUser stores a new user; chat.ErrConflict if the username (or id) is taken.
func (s *Store) CreateUser(ctx context.Context, u chat.User, passwordHash []byte) error {
	if passwordHash == nil {
		passwordHash = []byte{}
	}
	_, err := s.exec(ctx,
		`INSERT INTO users (id, username, display_name, created_at, last_seen, password_hash)
		 VALUES (?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.DisplayName, u.CreatedAt, u.LastSeen, passwordHash)
	return mapErr("create user", err)
}

const userCols = `id, username, display_name, created_at, last_seen`

func scanUser(row interface{ Scan(...any) error }, extra ...any) (chat.User, error) {
	var u chat.User
	err := row.Scan(append([]any{&u.ID, &u.Username, &u.DisplayName, &u.CreatedAt, &u.LastSeen}, extra...)...)
	return u, err
}

// User returns a user by id; chat.ErrNotFound.
func (s *Store) User(ctx context.Context, id string) (chat.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return chat.User{}, mapErr(fmt.Sprintf("user %q", id), err)
	}
	return u, nil
}

// UserByUsername returns a user and its password hash; chat.ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (chat.User, []byte, error) {
	var hash []byte
	u, err := scanUser(s.r.QueryRowContext(ctx,
		`SELECT `+userCols+`, password_hash FROM users WHERE username = ?`, username), &hash)
	if err != nil {
		return chat.User{}, nil, mapErr(fmt.Sprintf("user %q", username), err)
	}
	return u, hash, nil
}

// SetLastSeen records when the user's last device went away;
// chat.ErrNotFound for an unknown user.
func (s *Store) SetLastSeen(ctx context.Context, userID string, at int64) error {
	res, err := s.exec(ctx, `UPDATE users SET last_seen = ? WHERE id = ?`, at, userID)
	return affectedOne(fmt.Sprintf("set last seen of user %q", userID), res, err)
}

// CreateDevice stores a new device of d.UserID: chat.ErrNotFound if the user
// does not exist, chat.ErrConflict if the id is taken.
func (s *Store) CreateDevice(ctx context.Context, d chat.Device) error {
	_, err := s.exec(ctx,
		`INSERT INTO devices (id, user_id, name, created_at, last_seen) VALUES (?, ?, ?, ?, ?)`,
		d.ID, d.UserID, d.Name, d.CreatedAt, d.LastSeen)
	return mapErr("create device", err)
}

const (
	deviceCols = `id, user_id, name, created_at, last_seen`
	qDevices   = `SELECT ` + deviceCols + ` FROM devices WHERE user_id = ? ORDER BY created_at, rowid`
	qSession   = `SELECT token_hash, user_id, device_id, expires_at FROM sessions WHERE token_hash = ?`
)

func scanDevice(row interface{ Scan(...any) error }) (chat.Device, error) {
	var d chat.Device
	err := row.Scan(&d.ID, &d.UserID, &d.Name, &d.CreatedAt, &d.LastSeen)
	return d, err
}

// Device returns a device by id; chat.ErrNotFound.
func (s *Store) Device(ctx context.Context, id string) (chat.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
	if err != nil {
		return chat.Device{}, mapErr(fmt.Sprintf("device %q", id), err)
	}
	return d, nil
}

// Devices lists a user's devices, oldest first (ties in creation order).
func (s *Store) Devices(ctx context.Context, userID string) ([]chat.Device, error) {
	rows, err := s.r.QueryContext(ctx, qDevices, userID)
	if err != nil {
		return nil, mapErr("devices", err)
	}
	var out []chat.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			rows.Close()
			return nil, mapErr("devices", err)
		}
		out = append(out, d)
	}
	return out, mapErr("devices", closeRows(rows))
}

// TouchDevice sets a device's last_seen; chat.ErrNotFound for an unknown device.
func (s *Store) TouchDevice(ctx context.Context, deviceID string, at int64) error {
	res, err := s.exec(ctx, `UPDATE devices SET last_seen = ? WHERE id = ?`, at, deviceID)
	return affectedOne(fmt.Sprintf("touch device %q", deviceID), res, err)
}

// TouchDevices implements chat.Store: one transaction for the batch.
func (s *Store) TouchDevices(ctx context.Context, seen map[string]int64) error {
	if len(seen) == 0 {
		return nil
	}
	return s.write(ctx, "touch devices", func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE devices SET last_seen = max(last_seen, ?) WHERE id = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for id, at := range seen {
			if _, err := st.ExecContext(ctx, at, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateSession stores a session keyed by its token hash: chat.ErrNotFound if
// the user or device does not exist, chat.ErrConflict if the hash is taken.
func (s *Store) CreateSession(ctx context.Context, se chat.Session) error {
	_, err := s.exec(ctx,
		`INSERT INTO sessions (token_hash, user_id, device_id, expires_at) VALUES (?, ?, ?, ?)`,
		se.TokenHash, se.UserID, se.DeviceID, se.ExpiresAt)
	return mapErr("create session", err)
}

// Session returns the session of a token hash; chat.ErrNotFound.
func (s *Store) Session(ctx context.Context, tokenHash string) (chat.Session, error) {
	var se chat.Session
	err := s.r.QueryRowContext(ctx, qSession, tokenHash).Scan(&se.TokenHash, &se.UserID, &se.DeviceID, &se.ExpiresAt)
	if err != nil {
		return chat.Session{}, mapErr("session", err)
	}
	return se, nil
}

// DeleteSession revokes one token. Deleting a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash)
	return mapErr("delete session", err)
}

// DeleteDeviceSessions revokes every token of a device.
func (s *Store) DeleteDeviceSessions(ctx context.Context, deviceID string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE device_id = ?`, deviceID)
	return mapErr("delete device sessions", err)
}

// affectedOne maps the outcome of an UPDATE of one row by key: no row
// affected means the key does not exist.
func affectedOne(op string, res sql.Result, err error) error {
	if err != nil {
		return mapErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %s: %w", op, chat.ErrNotFound)
	}
	return nil
}
