package pushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// WebPush is a local Web Push service (RFC 8030) that checks VAPID (RFC
// 8292) and decrypts payloads (RFC 8291), or a UnifiedPush distributor's
// endpoint when created with NewUnifiedPush.
type WebPush struct {
	*recorder
	Server *httptest.Server
	// Subject, when set, is the VAPID "sub" every JWT must carry.
	Subject string
	// VAPIDKey, when set, is the only application server key accepted in k=.
	VAPIDKey string
	unified  bool

	mu   sync.Mutex
	subs map[string]*Subscription
}

// Subscription is a user agent's subscription: its endpoint, its keys as a
// browser hands them to the application, and the private half.
type Subscription struct {
	ID       string
	Endpoint string
	P256dh   string // base64url, uncompressed point
	Auth     string // base64url, 16 bytes
	priv     *ecdh.PrivateKey
	auth     []byte
}

// NewWebPush starts a Web Push service over HTTPS with HTTP/2.
func NewWebPush(t testing.TB) *WebPush { return newWebPush(t, false) }

// NewUnifiedPush starts a UnifiedPush distributor endpoint: no VAPID, and
// plaintext bodies for subscriptions without keys.
func NewUnifiedPush(t testing.TB) *WebPush { return newWebPush(t, true) }

func newWebPush(t testing.TB, unified bool) *WebPush {
	w := &WebPush{recorder: newRecorder(t), unified: unified, subs: map[string]*Subscription{}}
	w.Server = startTLS(t, http.HandlerFunc(w.serve), true)
	return w
}

// Subscribe creates a subscription (with RFC 8291 keys when keys is set;
// Web Push subscriptions always have them).
func (w *WebPush) Subscribe(keys bool) Subscription {
	id := rand.Text()[:16]
	s := &Subscription{ID: id, Endpoint: w.Server.URL + "/push/" + id}
	if keys || !w.unified {
		priv, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		s.priv, s.auth = priv, make([]byte, 16)
		_, _ = rand.Read(s.auth)
		s.P256dh, s.Auth = b64.EncodeToString(priv.PublicKey().Bytes()), b64.EncodeToString(s.auth)
	}
	w.mu.Lock()
	w.subs[id] = s
	w.mu.Unlock()
	return *s
}

// Forget expires a subscription: its endpoint answers 410 Gone from now on,
// as when the user revoked the permission.
func (w *WebPush) Forget(id string) {
	w.mu.Lock()
	delete(w.subs, id)
	w.mu.Unlock()
}

func (w *WebPush) serve(rw http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	rec := Received{Target: id, Header: r.Header.Clone()}
	answer := func(status int, retryAfter string) {
		if retryAfter != "" {
			rw.Header().Set("Retry-After", retryAfter)
		}
		if status == http.StatusCreated {
			rw.Header().Set("Location", w.Server.URL+"/message/"+rand.Text()[:12])
		}
		rw.WriteHeader(status)
		rec.Status = status
		w.add(rec)
	}
	refuse := func(status int, format string, args ...any) {
		w.failf("%s %s: "+format, append([]any{r.Method, r.URL.Path}, args...)...)
		answer(status, "")
	}
	if r.Method != http.MethodPost || !ok {
		refuse(http.StatusMethodNotAllowed, "push services take POST /push/<id>")
		return
	}
	w.mu.Lock()
	sub := w.subs[id]
	w.mu.Unlock()
	if sub == nil {
		answer(http.StatusGone, "") // expired or unsubscribed: not a failed check
		return
	}
	if err := w.checkAuthorization(r); err != nil {
		refuse(http.StatusUnauthorized, "VAPID: %v", err)
		return
	}
	if err := checkHeaders(r.Header); err != nil {
		refuse(http.StatusBadRequest, "%v", err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil || len(body) > 4096 {
		refuse(http.StatusRequestEntityTooLarge, "body over 4096 bytes")
		return
	}
	plain := body
	switch enc := r.Header.Get("Content-Encoding"); {
	case sub.priv != nil:
		if enc != "aes128gcm" {
			refuse(http.StatusBadRequest, "Content-Encoding %q, want aes128gcm", enc)
			return
		}
		if plain, err = Decrypt(body, sub.priv, sub.auth); err != nil {
			refuse(http.StatusBadRequest, "decrypting: %v", err)
			return
		}
	case enc != "":
		refuse(http.StatusBadRequest, "Content-Encoding %q for a subscription without keys", enc)
		return
	}
	rec.Raw = plain
	if err := json.Unmarshal(plain, &rec.Note); err != nil {
		refuse(http.StatusBadRequest, "the payload is not JSON: %q", plain)
		return
	}
	if s, ok := w.scripted(id); ok {
		if s.Hold != nil {
			s.Hold()
		}
		if s.Status != 0 {
			answer(s.Status, s.RetryAfter)
			return
		}
	}
	answer(http.StatusCreated, "")
}

// checkAuthorization verifies "vapid t=<jwt>, k=<key>" (Web Push), or its
// absence (UnifiedPush).
func (w *WebPush) checkAuthorization(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if w.unified {
		if h != "" {
			return errors.New("UnifiedPush distributors get no Authorization header")
		}
		return nil
	}
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return fmt.Errorf("Authorization %q is not the vapid scheme", h)
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	if w.VAPIDKey != "" && params["k"] != w.VAPIDKey {
		return fmt.Errorf("k=%q is not the server's key %q", params["k"], w.VAPIDKey)
	}
	point, err := b64.DecodeString(params["k"])
	if err != nil {
		return errors.New("k is not base64url")
	}
	pub, err := ecdsaFromPoint(point)
	if err != nil {
		return fmt.Errorf("k: %v", err)
	}
	j, err := parseJWT(params["t"])
	if err != nil {
		return fmt.Errorf("t: %v", err)
	}
	if err := j.verifyES256(pub); err != nil {
		return err
	}
	if typ, _ := j.header["typ"].(string); typ != "" && typ != "JWT" {
		return fmt.Errorf("typ %q", typ)
	}
	if aud, origin := j.str("aud"), "https://"+r.Host; aud != origin {
		return fmt.Errorf("aud %q is not this service's origin %q", aud, origin)
	}
	exp, ok := j.num("exp")
	now := w.clock()
	if !ok || exp <= now.Unix() || exp > now.Add(24*time.Hour).Unix() {
		return fmt.Errorf("exp %d must be in the future and within 24 h", exp)
	}
	sub := j.str("sub")
	if sub != "" && !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https://") {
		return fmt.Errorf("sub %q is neither mailto: nor https:", sub)
	}
	if w.Subject != "" && sub != w.Subject {
		return fmt.Errorf("sub %q, want %q", sub, w.Subject)
	}
	return nil
}

// checkHeaders checks the RFC 8030 headers: TTL required, Urgency and Topic
// well formed.
func checkHeaders(h http.Header) error {
	if ttl, err := strconv.Atoi(h.Get("TTL")); err != nil || ttl < 0 {
		return fmt.Errorf("TTL %q must be a non-negative integer", h.Get("TTL"))
	}
	switch u := h.Get("Urgency"); u {
	case "", "very-low", "low", "normal", "high":
	default:
		return fmt.Errorf("Urgency %q", u)
	}
	if t := h.Get("Topic"); t != "" {
		if len(t) > 32 || strings.Trim(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return fmt.Errorf("Topic %q must be at most 32 base64url characters", t)
		}
	}
	return nil
}

// Decrypt opens an aes128gcm body (RFC 8188) sealed for the user agent's
// key per RFC 8291. It derives the keys with HMAC-SHA-256 step by step, as
// the RFC writes them, independently of the sender's code.
func Decrypt(body []byte, ua *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("keyid is %d bytes, want the sender's 65-byte public key", idlen)
	}
	keyid, ct := body[21:21+idlen], body[21+idlen:]
	if rs < 18 || uint32(len(ct)) > rs {
		return nil, fmt.Errorf("one record of %d bytes does not fit record size %d", len(ct), rs)
	}
	as, err := ecdh.P256().NewPublicKey(keyid)
	if err != nil {
		return nil, fmt.Errorf("keyid is not a P-256 point: %v", err)
	}
	shared, err := ua.ECDH(as)
	if err != nil {
		return nil, err
	}
	mac := func(key []byte, parts ...[]byte) []byte {
		h := hmac.New(sha256.New, key)
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	prkKey := mac(authSecret, shared)
	ikm := mac(prkKey, []byte("WebPush: info\x00"), ua.PublicKey().Bytes(), keyid, []byte{1})
	prk := mac(salt, ikm)
	cek := mac(prk, []byte("Content-Encoding: aes128gcm\x00"), []byte{1})[:16]
	nonce := mac(prk, []byte("Content-Encoding: nonce\x00"), []byte{1})[:12]
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, errors.New("the record does not authenticate")
	}
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("the record does not end with the last-record delimiter 0x02")
	}
	return plain[:i], nil
}

// Decrypt opens a body sealed for this subscription.
func (s Subscription) Decrypt(body []byte) ([]byte, error) { return Decrypt(body, s.priv, s.auth) }
