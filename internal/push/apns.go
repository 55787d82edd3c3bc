package push

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// APNs provider tokens: Apple refuses one older than an hour and one
// renewed more often than every 20 minutes, so a token is renewed after 50.
const (
	apnsTokenRefresh = 50 * time.Minute
	apnsTokenMinAge  = 20 * time.Minute
)

// apnsSender speaks the APNs provider API: HTTP/2 POST /3/device/<token>,
// authenticated by an ES256 JWT (iss = team id, kid = key id) that is
// cached and renewed before its hour runs out.
type apnsSender struct {
	client   *http.Client
	endpoint string
	topic    string
	keyID    string
	teamID   string
	key      *ecdsa.PrivateKey
	ttl      time.Duration
	now      func() time.Time

	mu     sync.Mutex
	token  string
	issued time.Time
}

func newAPNs(c APNsConfig, client *http.Client, ttl time.Duration, now func() time.Time) (*apnsSender, error) {
	signer, err := readKeyFile(c.KeyFile, "push: --apns-key-file")
	if err != nil {
		return nil, err
	}
	key, err := ecP256(signer, "push: --apns-key-file")
	if err != nil {
		return nil, err
	}
	return &apnsSender{client: client, endpoint: strings.TrimRight(c.Endpoint, "/"), topic: c.Topic,
		keyID: c.KeyID, teamID: c.TeamID, key: key, ttl: ttl, now: now}, nil
}

// providerToken returns the cached JWT, signing a new one when it is 50
// minutes old, or when Apple said it expired (renew) and it is old enough
// to be renewed.
func (a *apnsSender) providerToken(renew bool) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	age := now.Sub(a.issued)
	if a.token != "" && age < apnsTokenRefresh && !(renew && age >= apnsTokenMinAge) {
		return a.token, nil
	}
	tok, err := signJWT(a.key, map[string]any{"alg": "ES256", "kid": a.keyID}, map[string]any{"iss": a.teamID, "iat": now.Unix()})
	if err != nil {
		return "", err
	}
	a.token, a.issued = tok, now
	return tok, nil
}

// apnsPayload is the JSON APNs delivers: aps for the system, the rest for
// the app.
func apnsPayload(n *Notification) []byte {
	aps := map[string]any{"badge": n.Badge, "thread-id": n.Tag}
	if n.Type == TypeClear {
		// No alert: the badge changes and the app, woken in the background,
		// removes the conversation's delivered notifications.
		aps["content-available"] = 1
	} else {
		aps["alert"] = map[string]string{"title": n.Title, "body": n.Body}
		aps["sound"] = "default"
	}
	b, _ := json.Marshal(map[string]any{"aps": aps, "type": n.Type, "conversation_id": n.ConversationID, "count": n.Count, "seq": n.Seq})
	return b
}

func (a *apnsSender) send(ctx context.Context, sub *chat.PushSubscription, n *Notification) result {
	r := a.post(ctx, sub.Endpoint, n, false)
	if r.reason == "ExpiredProviderToken" {
		r = a.post(ctx, sub.Endpoint, n, true)
	}
	return r
}

func (a *apnsSender) post(ctx context.Context, deviceToken string, n *Notification, renew bool) result {
	tok, err := a.providerToken(renew)
	if err != nil {
		return result{verdict: vFailed, reason: "signing the provider token: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint+"/3/device/"+deviceToken, bytes.NewReader(apnsPayload(n)))
	if err != nil {
		return result{verdict: vGone, reason: err.Error()}
	}
	h := req.Header
	h.Set("Authorization", "bearer "+tok)
	h.Set("Content-Type", "application/json")
	h.Set("apns-topic", a.topic)
	// A badge-only notification is still an "alert" for Apple: background
	// pushes may carry content-available alone.
	h.Set("apns-push-type", "alert")
	h.Set("apns-collapse-id", n.Tag)
	h.Set("apns-expiration", strconv.FormatInt(a.now().Add(a.ttl).Unix(), 10))
	if n.Type == TypeClear {
		h.Set("apns-priority", "5")
	} else {
		h.Set("apns-priority", "10")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return networkFailure(err)
	}
	defer drain(resp.Body)
	r := byStatus(resp, time.Now())
	if resp.StatusCode == http.StatusOK {
		return r
	}
	var body struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
	r.reason = body.Reason
	switch {
	case resp.StatusCode == http.StatusGone, body.Reason == "BadDeviceToken", body.Reason == "Unregistered",
		body.Reason == "DeviceTokenNotForTopic":
		r.verdict = vGone
	case body.Reason == "ExpiredProviderToken":
		r.verdict = vRetry
	case resp.StatusCode == http.StatusNotFound:
		r.verdict = vFailed // a bad path or method, not a gone device
	}
	if r.reason == "" {
		r.reason = fmt.Sprint(resp.Status)
	}
	return r
}
