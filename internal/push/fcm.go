package push

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// FCM's OAuth2 scope, and how long before expiry a cached access token is
// replaced.
const (
	FCMScope        = "https://www.googleapis.com/auth/firebase.messaging"
	fcmTokenMargin  = 5 * time.Minute
	fcmAssertionTTL = time.Hour
)

// fcmCredentials is the part of a service-account key file FCM needs.
type fcmCredentials struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// fcmSender speaks FCM HTTP v1: POST .../v1/projects/<project>/messages:send
// with an OAuth2 access token obtained from the service account (a JWT
// bearer grant signed RS256) and cached until shortly before it expires.
type fcmSender struct {
	client  *http.Client
	sendURL string
	creds   fcmCredentials
	key     *rsa.PrivateKey
	ttl     time.Duration
	now     func() time.Time
	mu      sync.Mutex // held through an exchange: one at a time
	access  string
	expires time.Time
}

func newFCM(c FCMConfig, client *http.Client, ttl time.Duration, now func() time.Time) (*fcmSender, error) {
	raw, err := os.ReadFile(c.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("push: --fcm-credentials: %w", err)
	}
	var cr fcmCredentials
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, fmt.Errorf("push: --fcm-credentials: not a service-account JSON file: %w", err)
	}
	if cr.ClientEmail == "" || cr.PrivateKey == "" || cr.ProjectID == "" || cr.TokenURI == "" {
		return nil, fmt.Errorf("push: --fcm-credentials: client_email, private_key, project_id and token_uri are required")
	}
	signer, err := parsePKCS8([]byte(cr.PrivateKey), "push: --fcm-credentials private_key")
	if err != nil {
		return nil, err
	}
	key, ok := signer.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("push: --fcm-credentials private_key is not an RSA key")
	}
	return &fcmSender{client: client, creds: cr, key: key, ttl: ttl, now: now,
		sendURL: strings.TrimRight(c.Endpoint, "/") + "/v1/projects/" + url.PathEscape(cr.ProjectID) + "/messages:send"}, nil
}

// accessToken returns a cached access token or exchanges a fresh assertion
// for one (RFC 7523). A failure says whether retrying can help.
func (f *fcmSender) accessToken(ctx context.Context) (string, *result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.access != "" && now.Before(f.expires.Add(-fcmTokenMargin)) {
		return f.access, nil
	}
	header := map[string]any{"alg": "RS256", "typ": "JWT"}
	if f.creds.PrivateKeyID != "" {
		header["kid"] = f.creds.PrivateKeyID
	}
	assertion, err := signJWT(f.key, header, map[string]any{
		"iss": f.creds.ClientEmail, "scope": FCMScope, "aud": f.creds.TokenURI,
		"iat": now.Unix(), "exp": now.Add(fcmAssertionTTL).Unix(),
	})
	if err != nil {
		return "", &result{verdict: vFailed, reason: "signing the assertion: " + err.Error()}
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.creds.TokenURI, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &result{verdict: vFailed, reason: "token_uri: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client.Do(req)
	if err != nil {
		r := networkFailure(err)
		return "", &r
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		r := byStatus(resp, time.Now())
		if r.verdict != vRetry {
			r.verdict = vFailed // the credentials are refused: nothing a retry fixes
		}
		r.reason = "token exchange: " + resp.Status
		return "", &r
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", &result{verdict: vRetry, reason: "token exchange: unreadable answer"}
	}
	f.access, f.expires = tok.AccessToken, now.Add(time.Duration(tok.ExpiresIn)*time.Second)
	return f.access, nil
}

// dropToken forgets a token FCM refused.
func (f *fcmSender) dropToken(tok string) {
	f.mu.Lock()
	if f.access == tok {
		f.access = ""
	}
	f.mu.Unlock()
}

// fcmMessage builds the v1 message: an alert carries a notification (shown
// by the system, collapsed by tag) and data; a clear is data only.
func (f *fcmSender) fcmMessage(token string, n *Notification) []byte {
	data := map[string]string{"type": n.Type, "conversation_id": n.ConversationID, "badge": strconv.FormatInt(n.Badge, 10),
		"count": strconv.FormatInt(n.Count, 10), "seq": strconv.FormatInt(n.Seq, 10), "tag": n.Tag}
	android := map[string]any{"collapse_key": n.Tag, "ttl": fmt.Sprintf("%ds", int(f.ttl/time.Second)), "priority": "HIGH"}
	aps := map[string]any{"badge": n.Badge, "thread-id": n.Tag}
	msg := map[string]any{"token": token, "data": data}
	if n.Type == TypeClear {
		android["priority"] = "NORMAL"
		aps["content-available"] = 1
	} else {
		msg["notification"] = map[string]string{"title": n.Title, "body": n.Body}
		android["notification"] = map[string]any{"tag": n.Tag, "notification_count": n.Badge}
	}
	msg["android"] = android
	msg["apns"] = map[string]any{"headers": map[string]string{"apns-collapse-id": n.Tag}, "payload": map[string]any{"aps": aps}}
	b, _ := json.Marshal(map[string]any{"message": msg})
	return b
}

func (f *fcmSender) send(ctx context.Context, sub *chat.PushSubscription, n *Notification) result {
	for attempt := 0; ; attempt++ {
		tok, fail := f.accessToken(ctx)
		if fail != nil {
			return *fail
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.sendURL, bytes.NewReader(f.fcmMessage(sub.Endpoint, n)))
		if err != nil {
			return result{verdict: vFailed, reason: err.Error()}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		resp, err := f.client.Do(req)
		if err != nil {
			return networkFailure(err)
		}
		r := f.verdict(resp)
		drain(resp.Body)
		if resp.StatusCode == http.StatusUnauthorized {
			f.dropToken(tok) // revoked or expired early: one fresh token, once
			if attempt == 0 {
				continue
			}
			r.verdict = vRetry
		}
		return r
	}
}

// verdict reads an FCM answer: UNREGISTERED (404) and SENDER_ID_MISMATCH
// mean the token is gone; QUOTA_EXCEEDED (429), UNAVAILABLE and INTERNAL
// (5xx) are retried; INVALID_ARGUMENT and the rest are dropped.
func (f *fcmSender) verdict(resp *http.Response) result {
	r := byStatus(resp, time.Now())
	if resp.StatusCode == http.StatusOK {
		return r
	}
	var body struct {
		Error struct {
			Status  string `json:"status"`
			Details []struct {
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	r.reason = body.Error.Status
	for _, d := range body.Error.Details {
		if d.ErrorCode != "" {
			r.reason = d.ErrorCode
		}
	}
	switch r.reason {
	case "UNREGISTERED", "SENDER_ID_MISMATCH":
		r.verdict = vGone
	case "NOT_FOUND":
		r.verdict = vGone
	}
	if r.reason == "" {
		r.reason = resp.Status
	}
	return r
}
