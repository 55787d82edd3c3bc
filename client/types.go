package client

import (
	"bytes"
	"encoding/json"
	"time"
)

// Content types of a message (PROTOCOL.md section 2).
const (
	ContentText  = "text"
	ContentImage = "image"
	ContentVideo = "video"
	ContentVoice = "voice"
	ContentFile  = "file"
	ContentE2EE  = "e2ee"
)

// Conversation types.
const (
	TypeDirect = "direct"
	TypeGroup  = "group"
)

// Member roles.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Receipt statuses carried by message_status frames.
const (
	StatusDelivered = "delivered"
	StatusRead      = "read"
)

// Presence statuses.
const (
	PresenceOnline  = "online"
	PresenceOffline = "offline"
)

// Changes announced by conversation_updated frames.
const (
	ChangeCreated       = "created"
	ChangeMemberAdded   = "member_added"
	ChangeMemberRemoved = "member_removed"
	ChangeRenamed       = "renamed"
)

// User is the public view of an account.
type User struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// Device is one of the caller's logged-in devices.
type Device struct {
	DeviceID   string `json:"device_id"`
	DeviceName string `json:"device_name"`
	LastSeen   int64  `json:"last_seen"` // ms since the epoch
}

// Account is the answer of GET /api/v1/users/me: the caller and its devices.
type Account struct {
	UserID      string   `json:"user_id"`
	Username    string   `json:"username"`
	DisplayName string   `json:"display_name"`
	Devices     []Device `json:"devices"`
}

// LoginRequest is the body of POST /api/v1/auth/login. Leave DeviceID empty to
// create a new device; set it to one of the user's own device ids to give that
// device a new token.
type LoginRequest struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	DeviceName string `json:"device_name,omitempty"`
	DeviceID   string `json:"device_id,omitempty"`
}

// Session is the answer of a successful login.
type Session struct {
	Token     string `json:"token"`
	UserID    string `json:"user_id"`
	DeviceID  string `json:"device_id"`
	ExpiresAt int64  `json:"expires_at"` // ms since the epoch
}

// Expires returns ExpiresAt as a time.Time.
func (s Session) Expires() time.Time { return time.UnixMilli(s.ExpiresAt) }

// Member is a user's membership in a conversation with its receipt watermarks.
type Member struct {
	UserID       string `json:"user_id"`
	Role         string `json:"role"`
	DeliveredSeq int64  `json:"delivered_seq"`
	ReadSeq      int64  `json:"read_seq"`
}

// Conversation is a direct conversation or a group.
type Conversation struct {
	ConversationID string   `json:"conversation_id"`
	Type           string   `json:"type"`
	Name           string   `json:"name,omitempty"`
	Members        []Member `json:"members"`
	LastSeq        int64    `json:"last_seq"`
	LastMessage    *Message `json:"last_message"`
	UnreadCount    int64    `json:"unread_count"`
	UpdatedAt      int64    `json:"updated_at"` // ms since the epoch
}

// Member returns the membership of userID, if any.
func (c *Conversation) Member(userID string) (Member, bool) {
	for _, m := range c.Members {
		if m.UserID == userID {
			return m, true
		}
	}
	return Member{}, false
}

// Message is one message of a conversation, as stored by the server.
type Message struct {
	MessageID       string `json:"message_id"`        // server-issued, time-ordered
	ClientMessageID string `json:"client_message_id"` // the sender's idempotency key
	ConversationID  string `json:"conversation_id"`
	Seq             int64  `json:"seq"`
	SenderID        string `json:"sender_id"`
	SenderDeviceID  string `json:"sender_device_id"`
	// Content is the message body. For content type "e2ee" it is the JSON text
	// of the envelope; a server that sends the envelope as a JSON object rather
	// than a string is accepted too (Content then holds the object's JSON text).
	Content     string `json:"content"`
	ContentType string `json:"content_type"`
	MediaID     string `json:"media_id,omitempty"`
	// Media describes the media MediaID names (type, size, dimensions, file
	// name, inline thumbnail), as it was when the message was sent: enough
	// for a preview without downloading. Nil without media and for e2ee.
	Media      *Media `json:"media,omitempty"`
	ReplyToSeq int64  `json:"reply_to_seq,omitempty"`
	Timestamp  int64  `json:"timestamp"` // ms since the epoch, server time of acceptance
}

// Time returns Timestamp as a time.Time.
func (m *Message) Time() time.Time { return time.UnixMilli(m.Timestamp) }

// UnmarshalJSON accepts content given either as a JSON string or as a raw JSON
// object or array (as an e2ee envelope may be).
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	var aux struct {
		plain
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*m = Message(aux.plain)
	m.Content = rawToContent(aux.Content)
	return nil
}

// rawToContent turns a JSON value into content text: strings are unquoted,
// objects and arrays are kept as their JSON text, null is empty.
func rawToContent(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// Ack is the server's acknowledgement of a sent message: it was stored durably.
type Ack struct {
	MessageID       string `json:"message_id"`        // the client's id
	ServerMessageID string `json:"server_message_id"` // the server's id
	ConversationID  string `json:"conversation_id"`
	Seq             int64  `json:"seq"`
	Status          string `json:"status"`
	Timestamp       int64  `json:"timestamp"`
}

// Ready is the first frame of every connection.
type Ready struct {
	UserID            string `json:"user_id"`
	DeviceID          string `json:"device_id"`
	HeartbeatInterval int64  `json:"heartbeat_interval"` // ms
	// URL is the server base URL this connection was made to (not on the wire).
	URL string `json:"-"`
}

// StatusUpdate is a message_status frame: a member's receipt watermark moved.
type StatusUpdate struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	Seq            int64  `json:"seq"`
	Status         string `json:"status"` // StatusDelivered or StatusRead
	Timestamp      int64  `json:"timestamp"`
}

// TypingUpdate is a typing frame.
type TypingUpdate struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	State          string `json:"state"` // "typing" or "stopped"
}

// Typing reports whether the state is "typing".
func (t *TypingUpdate) Typing() bool { return t.State == "typing" }

// Presence is a presence frame.
type Presence struct {
	UserID   string `json:"user_id"`
	Status   string `json:"status"` // PresenceOnline or PresenceOffline
	LastSeen int64  `json:"last_seen"`
}

// ConversationUpdate is a conversation_updated frame.
type ConversationUpdate struct {
	ConversationID string       `json:"conversation_id"`
	Change         string       `json:"change"`
	Conversation   Conversation `json:"conversation"`
}

// UnmarshalJSON accepts the new conversation either nested under
// "conversation" or flattened into the frame itself.
func (u *ConversationUpdate) UnmarshalJSON(b []byte) error {
	var aux struct {
		ConversationID string          `json:"conversation_id"`
		Change         string          `json:"change"`
		Conversation   json.RawMessage `json:"conversation"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	u.ConversationID, u.Change = aux.ConversationID, aux.Change
	u.Conversation = Conversation{}
	src := []byte(aux.Conversation)
	if len(bytes.TrimSpace(src)) == 0 || string(bytes.TrimSpace(src)) == "null" {
		src = b // flattened form
	}
	if err := json.Unmarshal(src, &u.Conversation); err != nil {
		return err
	}
	if u.Conversation.ConversationID == "" {
		u.Conversation.ConversationID = u.ConversationID
	}
	if u.ConversationID == "" {
		u.ConversationID = u.Conversation.ConversationID
	}
	return nil
}

// SyncComplete is a sync_complete frame: the server has sent every message
// after the client's cursors (up to the limit). Conversations listed in
// Truncated are filled by the client over REST in the background.
type SyncComplete struct {
	Conversations map[string]int64 `json:"conversations"`
	Truncated     []string         `json:"truncated"`
}

// HistoryQuery selects a page of history. With Before > 0 it returns messages
// with seq < Before, newest first. With After > 0 or Forward set it returns
// messages with seq > After, oldest first (After 0 and Forward: from the
// start). With neither it returns the newest messages, newest first. Limit 0
// lets the server choose (50); the server caps it at 200.
type HistoryQuery struct {
	Before  int64
	After   int64
	Forward bool
	Limit   int
}

// HistoryPage is a page of history.
type HistoryPage struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}
