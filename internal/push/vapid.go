package push

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// vapidTokenLife is how long a VAPID JWT is valid (RFC 8292 allows at most
// 24 hours); one is reused for an origin until an hour before it expires.
const vapidTokenLife = 12 * time.Hour

// vapidKey is the application server's identity (RFC 8292): a P-256 key
// generated on first start and kept in the data directory.
type vapidKey struct {
	key     *ecdsa.PrivateKey
	public  string // uncompressed point, base64url
	subject string
	now     func() time.Time

	mu     sync.Mutex
	tokens map[string]vapidToken // by audience (the endpoint's origin)
}

type vapidToken struct {
	header string
	exp    time.Time
}

// loadVAPID reads the key at path, or creates it (mode 0600) if there is
// none yet.
func loadVAPID(path, subject string, now func() time.Time) (*vapidKey, error) {
	if path == "" {
		return nil, errors.New("push: the VAPID key file path is empty")
	}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if raw, err = createVAPIDKey(path); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("push: reading the VAPID key: %w", err)
	default:
		// A private key readable by others is repaired, not trusted blindly.
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("push: VAPID key %s is readable by others and cannot be made private: %w", path, err)
			}
		}
	}
	signer, err := parsePKCS8(raw, "push: VAPID key "+path)
	if err != nil {
		return nil, err
	}
	key, err := ecP256(signer, "push: VAPID key "+path)
	if err != nil {
		return nil, err
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, fmt.Errorf("push: VAPID key: %w", err)
	}
	return &vapidKey{key: key, public: b64.EncodeToString(pub.Bytes()), subject: subject, now: now, tokens: map[string]vapidToken{}}, nil
}

// createVAPIDKey generates a key and writes it atomically with mode 0600.
func createVAPIDKey(path string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	raw := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("push: creating the VAPID key: %w", err)
	}
	// CreateTemp makes the file 0600; the rename publishes it whole.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vapid-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("push: creating the VAPID key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(raw)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path)) // the rename survives a power loss
	}
	if err != nil {
		return nil, fmt.Errorf("push: writing the VAPID key: %w", err)
	}
	return raw, nil
}

// authorization returns the Authorization header for a push to endpoint:
// "vapid t=<ES256 JWT>, k=<public key>" with aud the endpoint's origin.
func (v *vapidKey) authorization(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	aud := u.Scheme + "://" + u.Host
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if t, ok := v.tokens[aud]; ok && now.Add(time.Hour).Before(t.exp) {
		return t.header, nil
	}
	exp := now.Add(vapidTokenLife)
	claims := map[string]any{"aud": aud, "exp": exp.Unix()}
	if v.subject != "" {
		claims["sub"] = v.subject
	}
	jwt, err := signJWT(v.key, map[string]any{"typ": "JWT", "alg": "ES256"}, claims)
	if err != nil {
		return "", err
	}
	h := "vapid t=" + jwt + ", k=" + v.public
	if len(v.tokens) > 1024 { // many origins: start over rather than grow
		clear(v.tokens)
	}
	v.tokens[aud] = vapidToken{header: h, exp: exp}
	return h, nil
}

// syncDir fsyncs a directory, making a rename into it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
