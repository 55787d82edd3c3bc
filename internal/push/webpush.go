package push

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// webPushSender speaks the Web Push protocol (RFC 8030): a POST of the
// RFC 8291-encrypted notification to the subscription's endpoint, with TTL,
// Urgency and Topic (the collapse key: a newer message with the same topic
// replaces an undelivered older one). With a VAPID key it adds the RFC 8292
// Authorization; UnifiedPush distributors get the same request without it
// (their endpoints are capability URLs, and some treat Authorization as
// their own login), encrypted when the subscription gave keys.
type webPushSender struct {
	client *http.Client
	vapid  *vapidKey // nil for UnifiedPush
	ttl    time.Duration
}

func (w *webPushSender) send(ctx context.Context, sub *chat.PushSubscription, n *Notification) result {
	body, contentType, encoding := n.json(), "application/json", ""
	if len(sub.P256dh) > 0 {
		sealed, err := encrypt(body, sub.P256dh, sub.Auth)
		if err != nil {
			return result{verdict: vFailed, reason: "encrypting: " + err.Error()}
		}
		body, contentType, encoding = sealed, "application/octet-stream", "aes128gcm"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return result{verdict: vGone, reason: "unusable endpoint: " + err.Error()}
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	req.Header.Set("TTL", strconv.Itoa(int(w.ttl/time.Second)))
	req.Header.Set("Topic", n.Tag)
	if n.Type == TypeClear {
		req.Header.Set("Urgency", "normal")
	} else {
		req.Header.Set("Urgency", "high")
	}
	if w.vapid != nil {
		auth, err := w.vapid.authorization(sub.Endpoint)
		if err != nil {
			return result{verdict: vFailed, reason: "signing VAPID: " + err.Error()}
		}
		req.Header.Set("Authorization", auth)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return networkFailure(err)
	}
	defer drain(resp.Body)
	return byStatus(resp, time.Now())
}
