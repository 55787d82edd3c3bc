package chat

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeyStore is the end-to-end encryption key directory: public keys only
// (X3DH identity, signed and one-time prekeys); private keys never leave the
// devices. It is an optional ability of a Store, found by type assertion.
type KeyStore interface {
	// PutKeys stores a device's identity key, signing key and signed prekey,
	// and adds its one-time prekeys (a key id already present is kept). A new
	// identity key drops the device's remaining one-time prekeys.
	PutKeys(ctx context.Context, k DeviceKeys) error
	// ClaimKeys returns a bundle for every device of userID that has keys,
	// each with one one-time prekey (nil when none is left) removed in the
	// same transaction, so that no two claims ever get the same one.
	ClaimKeys(ctx context.Context, userID string) ([]KeyBundle, error)
	// PrekeyCount counts a device's unclaimed one-time prekeys.
	PrekeyCount(ctx context.Context, deviceID string) (int, error)
	// KeyedDevices lists the devices (with their users) that have keys,
	// among the devices of userIDs.
	KeyedDevices(ctx context.Context, userIDs []string) ([]DeviceRef, error)
	// DeleteKeys removes a device from the directory (revocation, logout).
	DeleteKeys(ctx context.Context, deviceID string) error
}

// PreKey is a one-time X25519 prekey.
type PreKey struct {
	KeyID     int64
	PublicKey []byte
}

// SignedPreKey is an X25519 prekey signed (Ed25519) by the device's signing key.
type SignedPreKey struct {
	KeyID     int64
	PublicKey []byte
	Signature []byte
}

// DeviceKeys is what a device publishes.
type DeviceKeys struct {
	UserID         string
	DeviceID       string
	IdentityKey    []byte // X25519, 32 bytes
	SigningKey     []byte // Ed25519, 32 bytes
	SignedPreKey   SignedPreKey
	OneTimePreKeys []PreKey
	UpdatedAt      int64
}

// KeyBundle is what a sender fetches to start a session with a device.
type KeyBundle struct {
	DeviceID      string
	IdentityKey   []byte
	SigningKey    []byte
	SignedPreKey  SignedPreKey
	OneTimePreKey *PreKey
}

// DeviceRef names a device and its user.
type DeviceRef struct {
	UserID   string
	DeviceID string
}

// MaxOneTimePreKeys is the most one-time prekeys one upload may carry.
const MaxOneTimePreKeys = 500

// MaxStoredPreKeys is the most unclaimed one-time prekeys kept per device:
// an upload past it keeps only as many as fit (the others are dropped).
const MaxStoredPreKeys = 1000

// errNoKeys is returned when the store has no key directory.
var errNoKeys = errf(ErrInvalid, "end-to-end encryption is not available on this server's store")

// PublishKeys validates and stores the caller's device keys: 422 if a key has
// the wrong size or the signed prekey's signature does not verify.
func (s *Service) PublishKeys(ctx context.Context, sess Session, k DeviceKeys) error {
	if s.keys == nil {
		return errNoKeys
	}
	switch {
	case len(k.IdentityKey) != 32:
		return errf(ErrInvalid, "identity_key must be a 32-byte X25519 public key")
	case len(k.SigningKey) != ed25519.PublicKeySize:
		return errf(ErrInvalid, "signing_key must be a 32-byte Ed25519 public key")
	case len(k.SignedPreKey.PublicKey) != 32:
		return errf(ErrInvalid, "signed_prekey.public_key must be a 32-byte X25519 public key")
	case len(k.SignedPreKey.Signature) != ed25519.SignatureSize:
		return errf(ErrInvalid, "signed_prekey.signature must be a 64-byte Ed25519 signature")
	case !ed25519.Verify(k.SigningKey, k.SignedPreKey.PublicKey, k.SignedPreKey.Signature):
		return errf(ErrInvalid, "signed_prekey.signature does not verify with signing_key")
	case len(k.OneTimePreKeys) > MaxOneTimePreKeys:
		return errf(ErrInvalid, "at most %d one_time_prekeys per upload", MaxOneTimePreKeys)
	}
	for _, p := range k.OneTimePreKeys {
		if len(p.PublicKey) != 32 {
			return errf(ErrInvalid, "one_time_prekeys[key_id=%d].public_key must be a 32-byte X25519 public key", p.KeyID)
		}
	}
	if len(k.OneTimePreKeys) > 0 {
		n, err := s.keys.PrekeyCount(ctx, sess.DeviceID)
		if err != nil {
			return err
		}
		k.OneTimePreKeys = k.OneTimePreKeys[:max(0, min(len(k.OneTimePreKeys), MaxStoredPreKeys-n))]
	}
	k.UserID, k.DeviceID, k.UpdatedAt = sess.UserID, sess.DeviceID, s.now().UnixMilli()
	return s.keys.PutKeys(ctx, k)
}

// ClaimKeys returns the key bundles of a user's devices, claiming one
// one-time prekey of each.
func (s *Service) ClaimKeys(ctx context.Context, userID string) ([]KeyBundle, error) {
	if s.keys == nil {
		return nil, errNoKeys
	}
	if _, err := s.User(ctx, userID); err != nil {
		return nil, err
	}
	return s.keys.ClaimKeys(ctx, userID)
}

// KeyBundles returns the key bundles of a user's devices without claiming a
// one-time prekey (for a claimer past the per-target rate).
func (s *Service) KeyBundles(ctx context.Context, userID string) ([]KeyBundle, error) {
	st, ok := s.store.(SafetyStore)
	if !ok || s.keys == nil {
		return s.ClaimKeys(ctx, userID)
	}
	if _, err := s.User(ctx, userID); err != nil {
		return nil, err
	}
	return st.KeyBundles(ctx, userID)
}

// PrekeyCount counts the caller's device's unclaimed one-time prekeys.
func (s *Service) PrekeyCount(ctx context.Context, sess Session) (int, error) {
	if s.keys == nil {
		return 0, errNoKeys
	}
	return s.keys.PrekeyCount(ctx, sess.DeviceID)
}

// Envelope is the content of an e2ee message: one ciphertext per device.
type Envelope struct {
	V           int                        `json:"v"`
	Ciphertexts map[string]json.RawMessage `json:"ciphertexts"`
}

type ciphertext struct {
	Type string `json:"type"`
	Body string `json:"body"`
}

// EnvelopeMismatchError is ErrConflict for an envelope that does not cover
// exactly the current devices of the members.
type EnvelopeMismatchError struct {
	Missing []string
	Extra   []string
}

func (e *EnvelopeMismatchError) Error() string {
	return fmt.Sprintf("the envelope does not match the members' devices: %d missing, %d extra; fetch the keys again", len(e.Missing), len(e.Extra))
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *EnvelopeMismatchError) Unwrap() error { return ErrConflict }

// parseEnvelope checks an e2ee envelope's shape.
func parseEnvelope(content string) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal([]byte(content), &env); err != nil || env.Ciphertexts == nil {
		return env, errf(ErrBadRequest, `e2ee content must be {"v":1,"ciphertexts":{device_id:{"type","body"}}}`)
	}
	if env.V != 1 {
		return env, errf(ErrBadRequest, "unsupported e2ee envelope version %d", env.V)
	}
	for dev, raw := range env.Ciphertexts {
		var c ciphertext
		if err := json.Unmarshal(raw, &c); err != nil || (c.Type != "prekey" && c.Type != "message") || c.Body == "" {
			return env, errf(ErrBadRequest, `ciphertexts[%q] must be {"type":"prekey"|"message","body":base64}`, dev)
		}
		if len(c.Body) > MaxContentBytes {
			return env, errf(ErrTooLarge, "the ciphertext for device %q is over %d bytes", dev, MaxContentBytes)
		}
	}
	return env, nil
}

// checkEnvelope verifies that an e2ee message covers exactly the current
// devices of the conversation's members, the sender's other devices
// included and the sending device excluded.
func (s *Service) checkEnvelope(ctx context.Context, sess Session, req *SendRequest) error {
	if s.keys == nil {
		return errNoKeys
	}
	env, err := parseEnvelope(req.Content)
	if err != nil {
		return err
	}
	conv, err := s.memberConversation(ctx, sess.UserID, req.ConversationID)
	if err != nil {
		return err
	}
	devs, err := s.keys.KeyedDevices(ctx, conv.MemberIDs())
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(devs))
	for _, d := range devs {
		if d.DeviceID != sess.DeviceID {
			want[d.DeviceID] = true
		}
	}
	var mis EnvelopeMismatchError
	for d := range want {
		if _, ok := env.Ciphertexts[d]; !ok {
			mis.Missing = append(mis.Missing, d)
		}
	}
	for d := range env.Ciphertexts {
		if !want[d] {
			mis.Extra = append(mis.Extra, d)
		}
	}
	if len(mis.Missing)+len(mis.Extra) > 0 {
		slices.Sort(mis.Missing)
		slices.Sort(mis.Extra)
		return &mis
	}
	return nil
}

// ContentFor returns what deviceID may see of a message's content: for an
// e2ee envelope, only the device's own ciphertext (an empty map if it has
// none); any other content unchanged.
func ContentFor(m *Message, deviceID string) string {
	if m.ContentType != ContentE2EE || !strings.HasPrefix(m.Content, "{") {
		return m.Content
	}
	var env Envelope
	if json.Unmarshal([]byte(m.Content), &env) != nil {
		return m.Content
	}
	own := map[string]json.RawMessage{}
	if c, ok := env.Ciphertexts[deviceID]; ok {
		own[deviceID] = c
	}
	out, err := json.Marshal(Envelope{V: env.V, Ciphertexts: own})
	if err != nil {
		return `{"v":1,"ciphertexts":{}}`
	}
	return string(out)
}

// forgetDeviceKeys drops a device from the directory; failures are logged,
// since the session is already gone.
func (s *Service) forgetDeviceKeys(ctx context.Context, deviceID string) {
	if s.keys == nil {
		return
	}
	if err := s.keys.DeleteKeys(ctx, deviceID); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("removing device keys", "device", deviceID, "err", err)
	}
}
