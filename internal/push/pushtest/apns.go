package pushtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/push"
)

// APNs is a local APNs provider API: HTTP/2 only, POST /3/device/<token>,
// with the provider token and the apns-* headers checked as Apple does.
type APNs struct {
	*recorder
	Server  *httptest.Server
	KeyFile string // the .p8 (PKCS #8 P-256) a provider would download
	KeyID   string
	TeamID  string
	Topic   string
	key     *ecdsa.PrivateKey

	mu     sync.Mutex
	tokens map[string]int64 // provider tokens seen, with their iat
}

// NewAPNs starts the service and writes its provider key.
func NewAPNs(t testing.TB) *APNs {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	a := &APNs{recorder: newRecorder(t), key: key, KeyFile: filepath.Join(t.TempDir(), "AuthKey.p8"),
		KeyID: "KEY" + rand.Text()[:7], TeamID: "TEAM" + rand.Text()[:6], Topic: "chat.parley.ios", tokens: map[string]int64{}}
	if err := os.WriteFile(a.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Server = startTLS(t, http.HandlerFunc(a.serve), true)
	return a
}

// Config is the push configuration that points at this service.
func (a *APNs) Config() push.APNsConfig {
	return push.APNsConfig{KeyFile: a.KeyFile, KeyID: a.KeyID, TeamID: a.TeamID, Topic: a.Topic, Endpoint: a.Server.URL}
}

// DeviceToken makes a device token (32 random bytes, hex).
func DeviceToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ProviderTokens returns the distinct provider tokens seen, by iat.
func (a *APNs) ProviderTokens() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int64, len(a.tokens))
	for k, v := range a.tokens {
		out[k] = v
	}
	return out
}

func (a *APNs) serve(rw http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	rec := Received{Target: token, Header: r.Header.Clone()}
	answer := func(status int, reason, retryAfter string) {
		rw.Header().Set("apns-id", rand.Text()[:20])
		if retryAfter != "" {
			rw.Header().Set("Retry-After", retryAfter)
		}
		rw.WriteHeader(status)
		if reason != "" {
			_ = json.NewEncoder(rw).Encode(map[string]any{"reason": reason, "timestamp": time.Now().UnixMilli()})
		}
		rec.Status = status
		a.add(rec)
	}
	refuse := func(status int, reason, format string, args ...any) {
		a.failf("APNs %s %s: "+format, append([]any{r.Method, r.URL.Path}, args...)...)
		answer(status, reason, "")
	}
	if r.ProtoMajor != 2 {
		refuse(http.StatusHTTPVersionNotSupported, "", "HTTP/%d.%d: APNs speaks HTTP/2 only", r.ProtoMajor, r.ProtoMinor)
		return
	}
	if r.Method != http.MethodPost || !ok {
		refuse(http.StatusMethodNotAllowed, "MethodNotAllowed", "want POST /3/device/<token>")
		return
	}
	if reason, err := a.checkToken(r.Header.Get("Authorization")); err != nil {
		refuse(http.StatusForbidden, reason, "provider token: %v", err)
		return
	}
	h := r.Header
	if h.Get("apns-topic") != a.Topic {
		refuse(http.StatusBadRequest, "DeviceTokenNotForTopic", "apns-topic %q, want %q", h.Get("apns-topic"), a.Topic)
		return
	}
	pushType, prio := h.Get("apns-push-type"), h.Get("apns-priority")
	if pushType != "alert" && pushType != "background" {
		refuse(http.StatusBadRequest, "InvalidPushType", "apns-push-type %q", pushType)
		return
	}
	if prio != "" && prio != "5" && prio != "10" && prio != "1" {
		refuse(http.StatusBadRequest, "BadPriority", "apns-priority %q", prio)
		return
	}
	if pushType == "background" && prio != "5" {
		refuse(http.StatusBadRequest, "BadPriority", "a background push must have priority 5")
		return
	}
	if exp := h.Get("apns-expiration"); exp != "" {
		if _, err := strconv.ParseInt(exp, 10, 64); err != nil {
			refuse(http.StatusBadRequest, "BadExpirationDate", "apns-expiration %q", exp)
			return
		}
	}
	if len(h.Get("apns-collapse-id")) > 64 {
		refuse(http.StatusBadRequest, "BadCollapseId", "apns-collapse-id over 64 bytes")
		return
	}
	if _, err := hex.DecodeString(token); err != nil || len(token) < 64 {
		answer(http.StatusBadRequest, "BadDeviceToken", "")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4097))
	if len(body) > 4096 {
		refuse(http.StatusRequestEntityTooLarge, "PayloadTooLarge", "payload over 4096 bytes")
		return
	}
	var p struct {
		APS struct {
			Alert *struct {
				Title string `json:"title"`
				Body  string `json:"body"`
			} `json:"alert"`
			Badge            *int64 `json:"badge"`
			ContentAvailable int    `json:"content-available"`
		} `json:"aps"`
		Type           string `json:"type"`
		ConversationID string `json:"conversation_id"`
		Count          int64  `json:"count"`
		Seq            int64  `json:"seq"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		refuse(http.StatusBadRequest, "PayloadEmpty", "payload is not JSON: %v", err)
		return
	}
	if pushType == "background" && (p.APS.Alert != nil || p.APS.ContentAvailable != 1) {
		refuse(http.StatusBadRequest, "BadPayload", "a background push carries content-available only")
		return
	}
	if p.APS.Alert == nil && p.APS.Badge == nil && p.APS.ContentAvailable == 0 {
		refuse(http.StatusBadRequest, "PayloadEmpty", "aps has no alert, badge or content-available")
		return
	}
	rec.Raw = body
	rec.Note = push.Notification{Type: p.Type, ConversationID: p.ConversationID, Count: p.Count, Seq: p.Seq, Tag: h.Get("apns-collapse-id")}
	if p.APS.Badge != nil {
		rec.Note.Badge = *p.APS.Badge
	}
	if p.APS.Alert != nil {
		rec.Note.Title, rec.Note.Body = p.APS.Alert.Title, p.APS.Alert.Body
	}
	if s, ok := a.scripted(token); ok {
		answer(s.Status, s.Reason, s.RetryAfter)
		return
	}
	answer(http.StatusOK, "", "")
}

// checkToken verifies "bearer <jwt>": ES256 by the team's key, kid the key
// id, iss the team id, iat no older than an hour (and not in the future).
func (a *APNs) checkToken(h string) (reason string, err error) {
	tok, ok := strings.CutPrefix(h, "bearer ")
	if !ok {
		return "MissingProviderToken", fmt.Errorf("Authorization %q is not a bearer token", h)
	}
	j, err := parseJWT(tok)
	if err != nil {
		return "InvalidProviderToken", err
	}
	if err := j.verifyES256(&a.key.PublicKey); err != nil {
		return "InvalidProviderToken", err
	}
	if j.header["kid"] != a.KeyID {
		return "InvalidProviderToken", fmt.Errorf("kid %v, want %s", j.header["kid"], a.KeyID)
	}
	if j.str("iss") != a.TeamID {
		return "InvalidProviderToken", fmt.Errorf("iss %q, want %s", j.str("iss"), a.TeamID)
	}
	iat, ok := j.num("iat")
	now := a.clock().Unix()
	if !ok || iat > now+60 {
		return "InvalidProviderToken", fmt.Errorf("iat %d is missing or in the future", iat)
	}
	if now-iat > 3600 {
		return "ExpiredProviderToken", fmt.Errorf("iat %d is over an hour old", iat)
	}
	a.mu.Lock()
	a.tokens[tok] = iat
	a.mu.Unlock()
	return "", nil
}
