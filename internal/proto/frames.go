package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Frame types, client to server and server to client.
const (
	TypeSendMessage         = "send_message"
	TypeMessageStatus       = "message_status"
	TypeTyping              = "typing"
	TypeSync                = "sync"
	TypePresenceSubscribe   = "presence_subscribe"
	TypePing                = "ping"
	TypeReady               = "ready"
	TypeAck                 = "ack"
	TypeNewMessage          = "new_message"
	TypePresence            = "presence"
	TypeSyncComplete        = "sync_complete"
	TypeConversationUpdated = "conversation_updated"
	TypeError               = "error"
	TypePong                = "pong"
)

// ErrMalformed is returned for frames that are not valid JSON objects, lack a
// required field, or have a field of the wrong type. ErrUnknownType for a
// frame type the server does not know. Both are status 400 on the wire.
var (
	ErrMalformed   = errors.New("malformed frame")
	ErrUnknownType = errors.New("unknown frame type")
)

// MaxPresenceSubscribe is the most user ids one presence_subscribe may name.
const MaxPresenceSubscribe = 1000

// Inbound is a decoded client frame. Only the fields of its Type are set.
type Inbound struct {
	Type           string
	MessageID      string // send_message: the idempotency key; also the ref of errors
	ConversationID string
	Content        string // a JSON string's value, or the raw text of a JSON object (e2ee)
	ContentType    string
	MediaID        string
	ReplyToSeq     int64
	Timestamp      int64
	Seq            int64
	Status         string
	State          string
	Cursors        map[string]int64
	Limit          int
	UserIDs        []string
}

// rawInbound mirrors every field a client frame may carry. Unknown fields are
// ignored.
type rawInbound struct {
	Type           *string          `json:"type"`
	MessageID      *string          `json:"message_id"`
	ConversationID *string          `json:"conversation_id"`
	Content        json.RawMessage  `json:"content"`
	ContentType    *string          `json:"content_type"`
	MediaID        *string          `json:"media_id"`
	ReplyToSeq     *int64           `json:"reply_to_seq"`
	Timestamp      *int64           `json:"timestamp"`
	Seq            *int64           `json:"seq"`
	Status         *string          `json:"status"`
	State          *string          `json:"state"`
	Cursors        map[string]int64 `json:"cursors"`
	Limit          *int             `json:"limit"`
	UserIDs        []string         `json:"user_ids"`
}

// DecodeInbound parses one client frame. On error it still returns what it
// could read of the frame's type and message_id, so the answer can carry the
// right ref.
func DecodeInbound(data []byte) (*Inbound, error) {
	if !utf8.Valid(data) {
		return &Inbound{}, fmt.Errorf("%w: frame is not valid UTF-8", ErrMalformed)
	}
	var raw rawInbound
	if err := json.Unmarshal(data, &raw); err != nil {
		in := &Inbound{}
		salvageRef(data, in)
		return in, fmt.Errorf("%w: %s", ErrMalformed, jsonProblem(err))
	}
	in := &Inbound{
		Type:           deref(raw.Type),
		MessageID:      deref(raw.MessageID),
		ConversationID: deref(raw.ConversationID),
		ContentType:    deref(raw.ContentType),
		MediaID:        deref(raw.MediaID),
		Status:         deref(raw.Status),
		State:          deref(raw.State),
		Cursors:        raw.Cursors,
		UserIDs:        raw.UserIDs,
	}
	if raw.ReplyToSeq != nil {
		in.ReplyToSeq = *raw.ReplyToSeq
	}
	if raw.Timestamp != nil {
		in.Timestamp = *raw.Timestamp
	}
	if raw.Seq != nil {
		in.Seq = *raw.Seq
	}
	if raw.Limit != nil {
		in.Limit = *raw.Limit
	}
	missing := func(field string) (*Inbound, error) {
		return in, fmt.Errorf("%w: %s requires %q", ErrMalformed, in.Type, field)
	}
	switch in.Type {
	case "":
		return in, fmt.Errorf("%w: missing \"type\"", ErrMalformed)
	case TypeSendMessage:
		if raw.MessageID == nil || in.MessageID == "" {
			return missing("message_id")
		}
		if raw.ConversationID == nil || in.ConversationID == "" {
			return missing("conversation_id")
		}
		if len(raw.Content) == 0 || bytes.Equal(raw.Content, []byte("null")) {
			if in.ContentType == "" || in.ContentType == "text" || in.ContentType == "e2ee" {
				return missing("content")
			}
		} else {
			content, err := decodeContent(raw.Content)
			if err != nil {
				return in, err
			}
			in.Content = content
		}
	case TypeMessageStatus:
		if in.ConversationID == "" {
			return missing("conversation_id")
		}
		if raw.Seq == nil {
			return missing("seq")
		}
		if in.Status == "" {
			return missing("status")
		}
	case TypeTyping:
		if in.ConversationID == "" {
			return missing("conversation_id")
		}
		if in.State == "" {
			return missing("state")
		}
	case TypeSync:
		if in.Limit < 0 {
			return in, fmt.Errorf("%w: limit must not be negative", ErrMalformed)
		}
	case TypePresenceSubscribe:
		if raw.UserIDs == nil {
			return missing("user_ids")
		}
		if len(raw.UserIDs) > MaxPresenceSubscribe {
			return in, fmt.Errorf("%w: at most %d user_ids per presence_subscribe", ErrMalformed, MaxPresenceSubscribe)
		}
	case TypePing:
	default:
		return in, fmt.Errorf("%w: %q", ErrUnknownType, in.Type)
	}
	return in, nil
}

// decodeContent accepts a JSON string (its value) or a JSON object (its
// compact text, used by e2ee envelopes).
func decodeContent(raw json.RawMessage) (string, error) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: content: %s", ErrMalformed, jsonProblem(err))
		}
		return s, nil
	case '{':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return "", fmt.Errorf("%w: content: %s", ErrMalformed, jsonProblem(err))
		}
		return buf.String(), nil
	}
	return "", fmt.Errorf("%w: content must be a string or an object", ErrMalformed)
}

// salvageRef reads type and message_id from a frame that failed to decode as
// a whole (a field of the wrong type elsewhere).
func salvageRef(data []byte, in *Inbound) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) != nil {
		return
	}
	_ = json.Unmarshal(probe["type"], &in.Type)
	_ = json.Unmarshal(probe["message_id"], &in.MessageID)
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %q must be of type %s", te.Field, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	return "frame must be a JSON object"
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Outgoing frames.

// Ready is the first frame on a new socket.
type Ready struct {
	Type              string `json:"type"`
	UserID            string `json:"user_id"`
	DeviceID          string `json:"device_id"`
	HeartbeatInterval int64  `json:"heartbeat_interval"`
}

// Ack answers a stored send_message.
type Ack struct {
	Type            string `json:"type"`
	MessageID       string `json:"message_id"`
	ServerMessageID string `json:"server_message_id"`
	ConversationID  string `json:"conversation_id"`
	Seq             int64  `json:"seq"`
	Status          string `json:"status"`
	Timestamp       int64  `json:"timestamp"`
}

// NewMessage carries a message to a device.
type NewMessage struct {
	Type string `json:"type"`
	Message
}

// MessageStatus tells that a member's watermark moved.
type MessageStatus struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	Seq            int64  `json:"seq"`
	Status         string `json:"status"`
	Timestamp      int64  `json:"timestamp"`
}

// Typing tells that a member started or stopped typing.
type Typing struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	State          string `json:"state"`
}

// Presence tells a user's online state.
type Presence struct {
	Type     string `json:"type"`
	UserID   string `json:"user_id"`
	Status   string `json:"status"`
	LastSeen int64  `json:"last_seen"`
}

// SyncComplete closes a sync.
type SyncComplete struct {
	Type          string           `json:"type"`
	Conversations map[string]int64 `json:"conversations"`
	Truncated     []string         `json:"truncated"`
}

// ConversationUpdated tells members that a conversation changed.
type ConversationUpdated struct {
	Type           string       `json:"type"`
	ConversationID string       `json:"conversation_id"`
	Change         string       `json:"change"`
	Conversation   Conversation `json:"conversation"`
}

// Error answers a frame that failed, or tells of a fault.
type Error struct {
	Type       string `json:"type"`
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Ref        string `json:"ref,omitempty"`
	RetryAfter int64  `json:"retry_after,omitempty"`
	// With status 409 for an e2ee envelope: the devices it must add or drop.
	MissingDevices *[]string `json:"missing_devices,omitempty"`
	ExtraDevices   *[]string `json:"extra_devices,omitempty"`
}

// Pong answers ping.
type Pong struct {
	Type string `json:"type"`
}

// Encode marshals an outgoing frame. Frames are plain structs, so it cannot
// fail; a failure is a programming error and panics.
func Encode(frame any) []byte {
	b, err := json.Marshal(frame)
	if err != nil {
		panic(fmt.Sprintf("proto: encoding %T: %v", frame, err))
	}
	return b
}
