package chat

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9_.-]{3,32}$`)

// Limits on account fields.
const (
	MinPasswordLen    = 8
	MaxPasswordBytes  = 72 // bcrypt's limit; longer passwords are refused, not silently cut
	MaxDisplayNameLen = 64
	MaxDeviceNameLen  = 64
)

// ValidUsername says whether name can be a username at all.
func ValidUsername(name string) bool { return usernameRE.MatchString(name) }

// acquireHash waits for one of the password-hashing slots of registration,
// so a registration flood queues behind itself instead of taking every CPU
// from logins and messages.
func (s *Service) acquireHash(ctx context.Context) (release func(), err error) {
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-ctx.Done():
		return nil, errf(ErrUnavailable, "waiting to hash the password: %v", ctx.Err())
	}
}

// DeviceOf says whether deviceID is a device of the user named username.
func (s *Service) DeviceOf(ctx context.Context, username, deviceID string) (bool, error) {
	u, _, err := s.store.UserByUsername(ctx, username)
	if err != nil {
		return false, err
	}
	d, err := s.store.Device(ctx, deviceID)
	if err != nil {
		return false, err
	}
	return d.UserID == u.ID, nil
}

// Register creates an account.
func (s *Service) Register(ctx context.Context, username, password, displayName string) (User, error) {
	if username == "" || password == "" {
		return User{}, errf(ErrBadRequest, "username and password are required")
	}
	if !usernameRE.MatchString(username) {
		return User{}, errf(ErrInvalid, "username must be 3-32 characters of a-z, 0-9, _ . -")
	}
	if utf8.RuneCountInString(password) < MinPasswordLen {
		return User{}, errf(ErrInvalid, "password must have at least %d characters", MinPasswordLen)
	}
	if len(password) > MaxPasswordBytes {
		return User{}, errf(ErrInvalid, "password must have at most %d bytes", MaxPasswordBytes)
	}
	displayName = strings.TrimSpace(displayName)
	if displayName == "" {
		displayName = username
	}
	if utf8.RuneCountInString(displayName) > MaxDisplayNameLen || !utf8.ValidString(displayName) {
		return User{}, errf(ErrInvalid, "display_name must be valid UTF-8 of at most %d characters", MaxDisplayNameLen)
	}
	if err := CheckName("display_name", displayName); err != nil {
		return User{}, err
	}
	// The name is checked before the slow hash: a taken name costs no CPU.
	if _, _, err := s.store.UserByUsername(ctx, username); err == nil {
		return User{}, errf(ErrConflict, "username %q is taken", username)
	} else if !errors.Is(err, ErrNotFound) {
		return User{}, err
	}
	release, err := s.acquireHash(ctx)
	if err != nil {
		return User{}, err
	}
	hash, err := s.hasher.Hash(password)
	release()
	if err != nil {
		return User{}, err
	}
	now := s.now()
	u := User{ID: s.ids.New(now), Username: username, DisplayName: displayName, CreatedAt: now.UnixMilli()}
	if err := s.store.CreateUser(ctx, u, hash); err != nil {
		if errors.Is(err, ErrConflict) {
			return User{}, errf(ErrConflict, "username %q is taken", username)
		}
		return User{}, err
	}
	return u, nil
}

// LoginResult is a new session with its token (shown once, stored hashed).
type LoginResult struct {
	Token   string
	Session Session
}

// Login checks credentials and issues a token for a new device, or for one of
// the user's existing devices when deviceID is set.
func (s *Service) Login(ctx context.Context, username, password, deviceName, deviceID string) (LoginResult, error) {
	if username == "" || password == "" {
		return LoginResult{}, errf(ErrBadRequest, "username and password are required")
	}
	u, hash, err := s.store.UserByUsername(ctx, username)
	if errors.Is(err, ErrNotFound) {
		s.hasher.Verify(nil, password) // spend the same time as a real check
		return LoginResult{}, errf(ErrUnauthorized, "wrong username or password")
	}
	if err != nil {
		return LoginResult{}, err
	}
	if !s.hasher.Verify(hash, password) {
		return LoginResult{}, errf(ErrUnauthorized, "wrong username or password")
	}
	if st, ok := s.store.(SafetyStore); ok {
		if suspended, err := st.Suspended(ctx, u.ID); err != nil {
			return LoginResult{}, err
		} else if suspended {
			return LoginResult{}, errf(ErrSuspended, "this account is suspended")
		}
	}
	now := s.now()
	if deviceID != "" {
		d, err := s.store.Device(ctx, deviceID)
		if errors.Is(err, ErrNotFound) || (err == nil && d.UserID != u.ID) {
			return LoginResult{}, errf(ErrNotFound, "no device %q for this user", deviceID)
		}
		if err != nil {
			return LoginResult{}, err
		}
	} else {
		deviceName = strings.TrimSpace(deviceName)
		if deviceName == "" {
			deviceName = "device"
		}
		if utf8.RuneCountInString(deviceName) > MaxDeviceNameLen {
			return LoginResult{}, errf(ErrInvalid, "device_name must have at most %d characters", MaxDeviceNameLen)
		}
		if err := CheckName("device_name", deviceName); err != nil {
			return LoginResult{}, err
		}
		deviceID = s.ids.New(now)
		d := Device{ID: deviceID, UserID: u.ID, Name: deviceName, CreatedAt: now.UnixMilli(), LastSeen: now.UnixMilli()}
		if err := s.store.CreateDevice(ctx, d); err != nil {
			return LoginResult{}, err
		}
	}
	token := newToken()
	sess := Session{TokenHash: HashToken(token), UserID: u.ID, DeviceID: deviceID, ExpiresAt: now.Add(s.cfg.TokenTTL).UnixMilli()}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Token: token, Session: sess}, nil
}

// Authenticate returns the live session of a bearer token.
func (s *Service) Authenticate(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, errf(ErrUnauthorized, "missing bearer token")
	}
	sess, err := s.store.Session(ctx, HashToken(token))
	if errors.Is(err, ErrNotFound) {
		return Session{}, errf(ErrUnauthorized, "invalid or revoked token")
	}
	if err != nil {
		return Session{}, err
	}
	if sess.Expired(s.now()) {
		return Session{}, errf(ErrUnauthorized, "token expired")
	}
	return sess, nil
}

// Logout revokes the session's token at once, closing its open sockets.
func (s *Service) Logout(ctx context.Context, sess Session) error {
	if err := s.store.DeleteSession(ctx, sess.TokenHash); err != nil {
		return err
	}
	s.forgetDeviceKeys(ctx, sess.DeviceID)
	s.forgetPushSubscriptions(ctx, sess.DeviceID)
	s.publishTo(ctx, []string{sess.UserID}, &Event{Kind: EventRevoke, Revoke: &Revoke{DeviceID: sess.DeviceID, TokenHash: sess.TokenHash}})
	return nil
}

// RevokeDevice revokes every token of one of the user's devices and closes
// its open sockets.
func (s *Service) RevokeDevice(ctx context.Context, sess Session, deviceID string) error {
	d, err := s.store.Device(ctx, deviceID)
	if errors.Is(err, ErrNotFound) || (err == nil && d.UserID != sess.UserID) {
		return errf(ErrNotFound, "no device %q", deviceID)
	}
	if err != nil {
		return err
	}
	if err := s.store.DeleteDeviceSessions(ctx, deviceID); err != nil {
		return err
	}
	s.forgetDeviceKeys(ctx, deviceID)
	s.forgetPushSubscriptions(ctx, deviceID)
	s.publishTo(ctx, []string{sess.UserID}, &Event{Kind: EventRevoke, Revoke: &Revoke{DeviceID: deviceID}})
	return nil
}

// Me returns the caller's account and devices.
func (s *Service) Me(ctx context.Context, sess Session) (User, []Device, error) {
	u, err := s.store.User(ctx, sess.UserID)
	if err != nil {
		return User{}, nil, err
	}
	devs, err := s.store.Devices(ctx, sess.UserID)
	return u, devs, err
}

// User returns any user by id.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	u, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, errf(ErrNotFound, "no user %q", id)
	}
	return u, err
}

// UserByUsername looks a user up by exact username.
func (s *Service) UserByUsername(ctx context.Context, username string) (User, error) {
	u, _, err := s.store.UserByUsername(ctx, username)
	return u, err
}

type deviceSeen struct {
	id string
	at int64
}

// DeviceSeen records that a device was active now (its socket closed). The
// write is coalesced with others: a storm of closing sockets costs a few
// transactions, not one fsync each queued behind message commits.
func (s *Service) DeviceSeen(ctx context.Context, deviceID string) error {
	d := deviceSeen{deviceID, s.now().UnixMilli()}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return errf(ErrUnavailable, "server is shutting down")
	}
	select {
	case s.seen <- d:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// seenLoop writes device last_seen times in batches: each round takes every
// waiting one (the latest per device) and writes them in one transaction.
func (s *Service) seenLoop() {
	defer s.wg.Done()
	for {
		batch := map[string]int64{}
		select {
		case d := <-s.seen:
			batch[d.id] = d.at
		case <-s.stop:
		}
	fill:
		for len(batch) < 1024 {
			select {
			case d := <-s.seen:
				batch[d.id] = max(batch[d.id], d.at)
			default:
				break fill
			}
		}
		if len(batch) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := s.store.TouchDevices(ctx, batch); err != nil {
				s.log.Warn("recording device last_seen", "devices", len(batch), "err", err)
			}
			cancel()
		}
		select {
		case <-s.stop:
			if len(s.seen) == 0 {
				return
			}
		default:
		}
	}
}

// UserGone records the user's last_seen when its last device went away.
func (s *Service) UserGone(ctx context.Context, userID string, at int64) error {
	return s.store.SetLastSeen(ctx, userID, at)
}

// HashToken is how tokens are stored: SHA-256, hex. Tokens carry 256 random
// bits, so a fast hash is enough; a leaked table gives no usable token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
