package push

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/parley-chat/parley/internal/chat"
)

// Notification is what every platform carries, in its own envelope. It never
// holds message text: only who wrote, how many messages, the badge and
// where to look.
type Notification struct {
	Type           string `json:"type"` // "message" or "clear"
	ConversationID string `json:"conversation_id"`
	Title          string `json:"title,omitempty"`
	Body           string `json:"body,omitempty"`
	Count          int64  `json:"count,omitempty"` // messages the alert stands for
	Badge          int64  `json:"badge"`           // the user's total unread count
	Seq            int64  `json:"seq,omitempty"`   // the newest seq it covers (message), or read up to (clear)
	Tag            string `json:"tag"`             // the collapse key: one notification per conversation
}

// Notification types.
const (
	TypeMessage = "message"
	TypeClear   = "clear"
)

// AppName is the title of every alert.
const AppName = "Parley"

// notificationFor builds a job's notification.
func notificationFor(j *chat.PushJob) Notification {
	n := Notification{ConversationID: j.ConversationID, Badge: j.Badge, Seq: j.Seq, Tag: CollapseKey(j.ConversationID)}
	if j.Kind == chat.PushClear {
		n.Type = TypeClear
		return n
	}
	n.Type, n.Title, n.Count = TypeMessage, AppName, j.Count
	n.Body = AlertText(j.SenderName, j.Count)
	return n
}

// AlertText is "Alice sent you a message" or "Alice sent you 5 messages".
func AlertText(sender string, count int64) string {
	if sender == "" {
		sender = "Someone"
	}
	if count <= 1 {
		return sender + " sent you a message"
	}
	return fmt.Sprintf("%s sent you %d messages", sender, count)
}

// CollapseKey names a conversation's notifications for the services'
// collapsing (Web Push Topic, apns-collapse-id, FCM collapse_key and tag):
// at most 32 characters of the base64url alphabet, as Topic requires. Ids
// that already fit are used as they are; others are hashed.
func CollapseKey(conversationID string) string {
	if len(conversationID) > 0 && len(conversationID) <= 32 && isB64URL(conversationID) {
		return conversationID
	}
	sum := sha256.Sum256([]byte(conversationID))
	return b64.EncodeToString(sum[:])[:32]
}

func isB64URL(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (n *Notification) json() []byte {
	b, _ := json.Marshal(n) // plain fields: cannot fail
	return b
}
