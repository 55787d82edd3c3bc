package pushtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
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

// FCM is a local FCM: the OAuth2 token endpoint of a service account
// (token_uri) and the HTTP v1 send endpoint.
type FCM struct {
	*recorder
	Server          *httptest.Server
	CredentialsFile string // the service-account JSON, token_uri pointing here
	ProjectID       string
	ClientEmail     string
	KeyID           string
	// TokenLifetime is the expires_in of issued access tokens (1 h).
	TokenLifetime time.Duration
	key           *rsa.PrivateKey

	mu        sync.Mutex
	issued    map[string]time.Time // access token -> expiry
	exchanges int
}

// NewFCM starts the service and writes a service-account key file for it.
func NewFCM(t testing.TB) *FCM {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &FCM{recorder: newRecorder(t), key: key, ProjectID: "parley-test", KeyID: rand.Text()[:20],
		ClientEmail: "firebase-adminsdk@parley-test.iam.gserviceaccount.com", TokenLifetime: time.Hour,
		issued: map[string]time.Time{}, CredentialsFile: filepath.Join(t.TempDir(), "service-account.json")}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", f.token)
	mux.HandleFunc("/v1/projects/{project}/messages:send", f.send)
	f.Server = startTLS(t, mux, true)
	creds, _ := json.MarshalIndent(map[string]string{
		"type": "service_account", "project_id": f.ProjectID, "private_key_id": f.KeyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": f.ClientEmail, "token_uri": f.Server.URL + "/token",
	}, "", "  ")
	if err := os.WriteFile(f.CredentialsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Config is the push configuration that points at this service.
func (f *FCM) Config() push.FCMConfig {
	return push.FCMConfig{CredentialsFile: f.CredentialsFile, Endpoint: f.Server.URL}
}

// Exchanges counts the access tokens issued.
func (f *FCM) Exchanges() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exchanges
}

// RevokeTokens invalidates every access token issued so far.
func (f *FCM) RevokeTokens() {
	f.mu.Lock()
	clear(f.issued)
	f.mu.Unlock()
}

// token serves the JWT bearer grant (RFC 7523) as Google's token_uri does.
func (f *FCM) token(rw http.ResponseWriter, r *http.Request) {
	fail := func(format string, args ...any) {
		f.failf("FCM token exchange: "+format, args...)
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(rw).Encode(map[string]string{"error": "invalid_grant", "error_description": fmt.Sprintf(format, args...)})
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		fail("want a form POST, got %s %s", r.Method, r.Header.Get("Content-Type"))
		return
	}
	if err := r.ParseForm(); err != nil {
		fail("form: %v", err)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail("grant_type %q", g)
		return
	}
	j, err := parseJWT(r.PostForm.Get("assertion"))
	if err != nil {
		fail("assertion: %v", err)
		return
	}
	if err := j.verifyRS256(&f.key.PublicKey); err != nil {
		fail("assertion: %v", err)
		return
	}
	if kid, ok := j.header["kid"]; ok && kid != f.KeyID {
		fail("kid %v, want the private_key_id %s", kid, f.KeyID)
		return
	}
	iat, iok := j.num("iat")
	exp, eok := j.num("exp")
	now := f.clock().Unix()
	switch {
	case j.str("iss") != f.ClientEmail:
		fail("iss %q, want the client_email %q", j.str("iss"), f.ClientEmail)
	case !strings.Contains(" "+j.str("scope")+" ", " "+push.FCMScope+" "):
		fail("scope %q lacks %s", j.str("scope"), push.FCMScope)
	case j.str("aud") != f.Server.URL+"/token":
		fail("aud %q, want the token_uri", j.str("aud"))
	case !iok || !eok || iat > now+60 || now-iat > 300 || exp <= iat || exp-iat > 3600:
		fail("iat %d / exp %d: iat must be now and exp within an hour after it", iat, exp)
	default:
		tok := "ya29." + rand.Text()
		f.mu.Lock()
		f.issued[tok] = f.clock().Add(f.TokenLifetime)
		f.exchanges++
		f.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"access_token": tok, "expires_in": int(f.TokenLifetime / time.Second), "token_type": "Bearer"})
	}
}

// send serves POST /v1/projects/<project>/messages:send.
func (f *FCM) send(rw http.ResponseWriter, r *http.Request) {
	rec := Received{Header: r.Header.Clone()}
	answer := func(status int, errStatus, errorCode, retryAfter string) {
		rw.Header().Set("Content-Type", "application/json")
		if retryAfter != "" {
			rw.Header().Set("Retry-After", retryAfter)
		}
		rw.WriteHeader(status)
		if status == http.StatusOK {
			_ = json.NewEncoder(rw).Encode(map[string]string{"name": "projects/" + f.ProjectID + "/messages/" + rand.Text()[:16]})
		} else {
			e := map[string]any{"code": status, "message": errStatus, "status": errStatus}
			if errorCode != "" {
				e["details"] = []map[string]string{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": errorCode}}
			}
			_ = json.NewEncoder(rw).Encode(map[string]any{"error": e})
		}
		rec.Status = status
		f.add(rec)
	}
	refuse := func(status int, errStatus, format string, args ...any) {
		f.failf("FCM send: "+format, args...)
		answer(status, errStatus, "", "")
	}
	if r.Method != http.MethodPost || r.PathValue("project") != f.ProjectID {
		refuse(http.StatusNotFound, "NOT_FOUND", "%s %s: want POST for project %s", r.Method, r.URL.Path, f.ProjectID)
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	exp, ok := f.issued[tok]
	f.mu.Unlock()
	if !ok || !f.clock().Before(exp) {
		answer(http.StatusUnauthorized, "UNAUTHENTICATED", "", "") // a revoked or stale token: the sender renews
		return
	}
	var body struct {
		Message struct {
			Token        string `json:"token"`
			Notification *struct {
				Title string `json:"title"`
				Body  string `json:"body"`
			} `json:"notification"`
			Data    map[string]any `json:"data"`
			Android struct {
				CollapseKey string `json:"collapse_key"`
				Priority    string `json:"priority"`
				TTL         string `json:"ttl"`
			} `json:"android"`
		} `json:"message"`
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 8192))
	if err := json.Unmarshal(raw, &body); err != nil || body.Message.Token == "" {
		refuse(http.StatusBadRequest, "INVALID_ARGUMENT", "body %q: a message with a token is required", raw)
		return
	}
	m := body.Message
	rec.Target, rec.Raw = m.Token, raw
	data := map[string]string{}
	for k, v := range m.Data {
		s, ok := v.(string)
		if !ok {
			refuse(http.StatusBadRequest, "INVALID_ARGUMENT", "data[%q] is %T: FCM data values are strings", k, v)
			return
		}
		data[k] = s
	}
	if p := m.Android.Priority; p != "" && p != "NORMAL" && p != "HIGH" {
		refuse(http.StatusBadRequest, "INVALID_ARGUMENT", "android.priority %q", p)
		return
	}
	if ttl := m.Android.TTL; ttl != "" && !strings.HasSuffix(ttl, "s") {
		refuse(http.StatusBadRequest, "INVALID_ARGUMENT", "android.ttl %q is not a duration in seconds", ttl)
		return
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(data[k], 10, 64); return n }
	rec.Note = push.Notification{Type: data["type"], ConversationID: data["conversation_id"], Count: num("count"),
		Badge: num("badge"), Seq: num("seq"), Tag: m.Android.CollapseKey}
	if n := m.Notification; n != nil {
		rec.Note.Title, rec.Note.Body = n.Title, n.Body
	}
	if s, ok := f.scripted(m.Token); ok {
		status := map[int]string{400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}[s.Status]
		answer(s.Status, status, s.Reason, s.RetryAfter)
		return
	}
	answer(http.StatusOK, "", "", "")
}
