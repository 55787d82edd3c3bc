// Package proto is Parley's wire format: the JSON objects of the REST API and
// the WebSocket frames of PROTOCOL.md, with a strict, fuzzed decoder for
// incoming frames. It is a leaf package: it imports only the standard library.
package proto

import "encoding/json"

// Message is a stored message on the wire.
type Message struct {
	MessageID       string          `json:"message_id"`
	ClientMessageID string          `json:"client_message_id"`
	ConversationID  string          `json:"conversation_id"`
	Seq             int64           `json:"seq"`
	SenderID        string          `json:"sender_id"`
	SenderDeviceID  string          `json:"sender_device_id"`
	Content         json.RawMessage `json:"content"`
	ContentType     string          `json:"content_type"`
	MediaID         string          `json:"media_id,omitempty"`
	Media           *MessageMedia   `json:"media,omitempty"`
	ReplyToSeq      int64           `json:"reply_to_seq,omitempty"`
	Timestamp       int64           `json:"timestamp"`
}

// MessageMedia is what a message carries about the media it references,
// as it was when the message was sent: enough to show a preview (the
// thumbnail, a data: URL) or a file card before downloading.
type MessageMedia struct {
	MediaID     string `json:"media_id"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	DurationMS  int64  `json:"duration_ms,omitempty"`
	Name        string `json:"name,omitempty"`
	Thumbnail   string `json:"thumbnail,omitempty"`
}

// Member is a conversation member with its receipt watermarks.
type Member struct {
	UserID       string `json:"user_id"`
	Role         string `json:"role"`
	DeliveredSeq int64  `json:"delivered_seq"`
	ReadSeq      int64  `json:"read_seq"`
}

// Conversation is a direct chat or a group.
type Conversation struct {
	ConversationID string   `json:"conversation_id"`
	Type           string   `json:"type"`
	Name           string   `json:"name,omitempty"`
	Members        []Member `json:"members"`
	LastSeq        int64    `json:"last_seq"`
	LastMessage    *Message `json:"last_message"`
	UnreadCount    int64    `json:"unread_count"`
	CreatedAt      int64    `json:"created_at"`
	UpdatedAt      int64    `json:"updated_at"`
}

// User is a public account view.
type User struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	LastSeen    int64  `json:"last_seen,omitempty"`
}

// Device is one of the caller's devices.
type Device struct {
	DeviceID   string `json:"device_id"`
	DeviceName string `json:"device_name"`
	LastSeen   int64  `json:"last_seen"`
	Current    bool   `json:"current,omitempty"`
}

// Me is GET /api/v1/users/me.
type Me struct {
	User
	Devices []Device `json:"devices"`
}

// RegisterRequest is POST /api/v1/auth/register.
type RegisterRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	Invite      string `json:"invite,omitempty"` // with --registration invite
}

// LoginRequest is POST /api/v1/auth/login.
type LoginRequest struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	DeviceName string `json:"device_name"`
	DeviceID   string `json:"device_id"`
}

// LoginResponse answers a login.
type LoginResponse struct {
	Token     string `json:"token"`
	UserID    string `json:"user_id"`
	DeviceID  string `json:"device_id"`
	ExpiresAt int64  `json:"expires_at"`
}

// CreateConversationRequest is POST /api/v1/conversations.
type CreateConversationRequest struct {
	Type   string `json:"type"`
	UserID string `json:"user_id"`
}

// CreateGroupRequest is POST /api/v1/groups.
type CreateGroupRequest struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// AddMembersRequest is POST /api/v1/groups/{id}/members.
type AddMembersRequest struct {
	UserIDs []string `json:"user_ids"`
}

// RenameGroupRequest is PATCH /api/v1/groups/{id}.
type RenameGroupRequest struct {
	Name *string `json:"name"`
}

// MessagePage answers a history query.
type MessagePage struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

// ErrorBody is the body of every HTTP error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error.
type ErrorDetail struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// KeysUpload is PUT /api/v1/keys. Keys are base64.
type KeysUpload struct {
	IdentityKey    *string       `json:"identity_key"`
	SigningKey     *string       `json:"signing_key"`
	SignedPrekey   *SignedPrekey `json:"signed_prekey"`
	OneTimePrekeys []Prekey      `json:"one_time_prekeys"`
}

// SignedPrekey is an X25519 prekey with its Ed25519 signature.
type SignedPrekey struct {
	KeyID     int64  `json:"key_id"`
	PublicKey string `json:"public_key"`
	Signature string `json:"signature"`
}

// Prekey is a one-time X25519 prekey.
type Prekey struct {
	KeyID     int64  `json:"key_id"`
	PublicKey string `json:"public_key"`
}

// KeyBundle is one device's keys in GET /api/v1/keys/{user_id}.
type KeyBundle struct {
	DeviceID      string       `json:"device_id"`
	IdentityKey   string       `json:"identity_key"`
	SigningKey    string       `json:"signing_key"`
	SignedPrekey  SignedPrekey `json:"signed_prekey"`
	OneTimePrekey *Prekey      `json:"one_time_prekey"`
}
