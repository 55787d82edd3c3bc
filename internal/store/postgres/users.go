package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat"
)

// CreateUser stores a new user; chat.ErrConflict if the username (or id) is
// taken, chat.ErrInvalid if a field is not valid text (a NUL byte).
func (s *Store) CreateUser(ctx context.Context, u chat.User, passwordHash []byte) error {
	if passwordHash == nil {
		passwordHash = []byte{}
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO users (id, username, display_name, created_at, last_seen, password_hash)
		 VALUES ($1, $2, $3, $4, $5, $6)`,
		u.ID, u.Username, u.DisplayName, u.CreatedAt, u.LastSeen, passwordHash)
	return mapErr("create user", err)
}

const userCols = `id, username, display_name, created_at, last_seen`

func scanUser(row pgx.Row, extra ...any) (chat.User, error) {
	var u chat.User
	err := row.Scan(append([]any{&u.ID, &u.Username, &u.DisplayName, &u.CreatedAt, &u.LastSeen}, extra...)...)
	return u, err
}

// User returns a user by id; chat.ErrNotFound.
func (s *Store) User(ctx context.Context, id string) (chat.User, error) {
	op := fmt.Sprintf("user %q", id)
	if !validKeys(id) {
		return chat.User{}, fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return chat.User{}, mapErr(op, err)
	}
	return u, nil
}

// UserByUsername returns a user and its password hash; chat.ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (chat.User, []byte, error) {
	op := fmt.Sprintf("user %q", username)
	if !validKeys(username) {
		return chat.User{}, nil, fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	var hash []byte
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userCols+`, password_hash FROM users WHERE username = $1`, username), &hash)
	if err != nil {
		return chat.User{}, nil, mapErr(op, err)
	}
	return u, hash, nil
}

// SetLastSeen records when the user's last device went away;
// chat.ErrNotFound for an unknown user.
func (s *Store) SetLastSeen(ctx context.Context, userID string, at int64) error {
	op := fmt.Sprintf("set last seen of user %q", userID)
	if !validKeys(userID) {
		return fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET last_seen = $1 WHERE id = $2`, at, userID)
	return rowsAffectedOne(op, tag, err)
}

// CreateDevice stores a new device of d.UserID: chat.ErrNotFound if the user
// does not exist, chat.ErrConflict if the id is taken.
func (s *Store) CreateDevice(ctx context.Context, d chat.Device) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO devices (id, user_id, name, created_at, last_seen) VALUES ($1, $2, $3, $4, $5)`,
		d.ID, d.UserID, d.Name, d.CreatedAt, d.LastSeen)
	return mapErr("create device", err)
}

const deviceCols = `id, user_id, name, created_at, last_seen`

func scanDevice(row pgx.Row) (chat.Device, error) {
	var d chat.Device
	err := row.Scan(&d.ID, &d.UserID, &d.Name, &d.CreatedAt, &d.LastSeen)
	return d, err
}

// Device returns a device by id; chat.ErrNotFound.
func (s *Store) Device(ctx context.Context, id string) (chat.Device, error) {
	op := fmt.Sprintf("device %q", id)
	if !validKeys(id) {
		return chat.Device{}, fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	if err != nil {
		return chat.Device{}, mapErr(op, err)
	}
	return d, nil
}

// Devices lists a user's devices, oldest first (ties in creation order).
func (s *Store) Devices(ctx context.Context, userID string) ([]chat.Device, error) {
	if !validKeys(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE user_id = $1 ORDER BY created_at, ord`, userID)
	if err != nil {
		return nil, mapErr("devices", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.Device, error) { return scanDevice(row) })
	if err != nil {
		return nil, mapErr("devices", err)
	}
	return out, nil
}

// TouchDevices implements chat.Store: one statement for the batch.
func (s *Store) TouchDevices(ctx context.Context, seen map[string]int64) error {
	ids := make([]string, 0, len(seen))
	ats := make([]int64, 0, len(seen))
	for id, at := range seen {
		if validKeys(id) {
			ids, ats = append(ids, id), append(ats, at)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE devices d SET last_seen = GREATEST(d.last_seen, v.at)
		FROM unnest($1::text[], $2::bigint[]) AS v(id, at) WHERE d.id = v.id`, ids, ats)
	return mapErr("touch devices", err)
}

// TouchDevice sets a device's last_seen; chat.ErrNotFound for an unknown device.
func (s *Store) TouchDevice(ctx context.Context, deviceID string, at int64) error {
	op := fmt.Sprintf("touch device %q", deviceID)
	if !validKeys(deviceID) {
		return fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET last_seen = $1 WHERE id = $2`, at, deviceID)
	return rowsAffectedOne(op, tag, err)
}

// CreateSession stores a session keyed by its token hash: chat.ErrNotFound if
// the user or device does not exist, chat.ErrConflict if the hash is taken.
func (s *Store) CreateSession(ctx context.Context, se chat.Session) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO sessions (token_hash, user_id, device_id, expires_at) VALUES ($1, $2, $3, $4)`,
		se.TokenHash, se.UserID, se.DeviceID, se.ExpiresAt)
	return mapErr("create session", err)
}

// Session returns the session of a token hash; chat.ErrNotFound.
func (s *Store) Session(ctx context.Context, tokenHash string) (chat.Session, error) {
	if !validKeys(tokenHash) {
		return chat.Session{}, fmt.Errorf("postgres: session: %w", chat.ErrNotFound)
	}
	var se chat.Session
	err := s.pool.QueryRow(ctx,
		`SELECT token_hash, user_id, device_id, expires_at FROM sessions WHERE token_hash = $1`, tokenHash).
		Scan(&se.TokenHash, &se.UserID, &se.DeviceID, &se.ExpiresAt)
	if err != nil {
		return chat.Session{}, mapErr("session", err)
	}
	return se, nil
}

// DeleteSession revokes one token. Deleting a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	if !validKeys(tokenHash) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash)
	return mapErr("delete session", err)
}

// DeleteDeviceSessions revokes every token of a device.
func (s *Store) DeleteDeviceSessions(ctx context.Context, deviceID string) error {
	if !validKeys(deviceID) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE device_id = $1`, deviceID)
	return mapErr("delete device sessions", err)
}
