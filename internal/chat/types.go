// Package chat is Parley's domain: users, devices, conversations, messages and
// receipts, the sentinel errors every layer maps to protocol status codes, the
// small interfaces the domain needs from the outside world (Store, Bus, Hasher,
// Limiter), and the Service that implements every use case on top of them.
//
// It imports only the standard library. Adapters (stores, buses, the gateway)
// import chat; chat never imports them.
package chat

import "time"

// Roles a member can hold in a conversation.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Conversation types.
const (
	TypeDirect = "direct"
	TypeGroup  = "group"
)

// Receipt statuses a member can report for a conversation.
const (
	StatusDelivered = "delivered"
	StatusRead      = "read"
)

// Content types a message can carry.
const (
	ContentText  = "text"
	ContentImage = "image"
	ContentVideo = "video"
	ContentVoice = "voice"
	ContentFile  = "file"
	ContentE2EE  = "e2ee"
)

// ValidContentType reports whether t is one of the content types of the protocol.
func ValidContentType(t string) bool {
	switch t {
	case ContentText, ContentImage, ContentVideo, ContentVoice, ContentFile, ContentE2EE:
		return true
	}
	return false
}

// MaxContentBytes is the largest message content accepted (64 KiB).
const MaxContentBytes = 65536

// User is an account.
type User struct {
	ID          string
	Username    string
	DisplayName string
	CreatedAt   int64 // ms since the epoch
	LastSeen    int64 // ms since the epoch when the user's last device went away; 0 never
}

// Device is one of a user's logged-in clients (phone, laptop, browser tab).
type Device struct {
	ID        string
	UserID    string
	Name      string
	CreatedAt int64
	LastSeen  int64
}

// Session is what a bearer token stands for. Tokens are stored hashed.
type Session struct {
	TokenHash string
	UserID    string
	DeviceID  string
	ExpiresAt int64 // ms since the epoch
}

// Expired reports whether the session has expired at now.
func (s Session) Expired(now time.Time) bool { return now.UnixMilli() >= s.ExpiresAt }

// Member is a user's membership in a conversation with its receipt watermarks.
type Member struct {
	UserID       string
	Role         string
	DeliveredSeq int64
	ReadSeq      int64
	JoinedAt     int64
}

// Conversation is a direct chat between two users or a group.
type Conversation struct {
	ID          string
	Type        string
	Name        string
	Members     []Member
	LastSeq     int64
	LastMessage *Message
	CreatedAt   int64
	UpdatedAt   int64
	// UnreadCount is filled for the user the conversation was loaded for.
	UnreadCount int64
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

// MemberIDs lists the user ids of the members.
func (c *Conversation) MemberIDs() []string {
	ids := make([]string, len(c.Members))
	for i, m := range c.Members {
		ids[i] = m.UserID
	}
	return ids
}

// Message is one stored message of a conversation.
type Message struct {
	ID              string // server-issued, time-ordered (ULID)
	ClientID        string // the sender's idempotency key
	ConversationID  string
	Seq             int64
	SenderID        string
	SenderDeviceID  string
	Content         string
	ContentType     string
	MediaID         string
	ReplyToSeq      int64
	Timestamp       int64 // server time of acceptance, ms
	ClientTimestamp int64 // what the client claimed, ms; informational

	// Media describes the item MediaID names, copied from the catalogue when
	// the message was accepted and stored with it, so that every delivery
	// carries its preview without a lookup. Nil without a media id, and for
	// e2ee messages (a preview in clear would leak what the ciphertext hides).
	Media *MediaInfo
}

// MediaInfo is what a message carries about its media: enough for a
// recipient to show a preview (or a file card) before downloading. Stores
// keep it as this JSON.
type MediaInfo struct {
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	DurationMS  int64  `json:"duration_ms,omitempty"`
	Name        string `json:"name,omitempty"`
	Thumbnail   string `json:"thumbnail,omitempty"` // a data: URL
}

// Page selects a slice of a conversation's history. Exactly one of Before and
// After is used: Before > 0 pages backwards (newest first), After >= 0 with
// Forward set pages forwards (oldest first). Neither: the newest messages.
type Page struct {
	Before  int64
	After   int64
	Forward bool
	Limit   int
}

// Watermark is a member's receipt position in a conversation.
type Watermark struct {
	ConversationID string
	UserID         string
	DeliveredSeq   int64
	ReadSeq        int64
}

// ConversationCursor is a conversation id with its last seq, used by sync.
type ConversationCursor struct {
	ConversationID string
	LastSeq        int64
}
