package proto

// PushSubscribeRequest is POST /api/v1/push/subscriptions:
// {"platform":"webpush","endpoint","keys":{"p256dh","auth"}},
// {"platform":"apns","token"}, {"platform":"fcm","token"} or
// {"platform":"unifiedpush","endpoint","keys"?}. Keys are base64url (the
// standard alphabet and padding are accepted too).
type PushSubscribeRequest struct {
	Platform string    `json:"platform"`
	Endpoint string    `json:"endpoint,omitempty"`
	Token    string    `json:"token,omitempty"`
	Keys     *PushKeys `json:"keys,omitempty"`
}

// PushKeys are a Web Push subscription's keys (RFC 8291): the user agent's
// P-256 public key and the authentication secret.
type PushKeys struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// PushSubscribed answers a subscription.
type PushSubscribed struct {
	SubscriptionID string `json:"subscription_id"`
}

// VAPIDKey answers GET /api/v1/push/vapid-public-key: the application
// server key (an uncompressed P-256 point, base64url without padding).
type VAPIDKey struct {
	Key string `json:"key"`
}
