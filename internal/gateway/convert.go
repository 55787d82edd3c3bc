package gateway

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// wireMessage converts a stored message to its wire form as deviceID may see
// it: of an e2ee envelope only that device's own ciphertext.
func wireMessage(m *chat.Message, deviceID string) proto.Message {
	return proto.Message{
		MessageID:       m.ID,
		ClientMessageID: m.ClientID,
		ConversationID:  m.ConversationID,
		Seq:             m.Seq,
		SenderID:        m.SenderID,
		SenderDeviceID:  m.SenderDeviceID,
		Content:         wireContent(m, deviceID),
		ContentType:     m.ContentType,
		MediaID:         m.MediaID,
		Media:           wireMessageMedia(m),
		ReplyToSeq:      m.ReplyToSeq,
		Timestamp:       m.Timestamp,
	}
}

// wireMessageMedia is the media object of a message: nil without media, and
// always for e2ee messages (a preview in clear would leak what the
// ciphertext hides; the send path keeps none, this holds even if one was).
func wireMessageMedia(m *chat.Message) *proto.MessageMedia {
	mi := m.Media
	if mi == nil || m.MediaID == "" || m.ContentType == chat.ContentE2EE {
		return nil
	}
	return &proto.MessageMedia{MediaID: m.MediaID, ContentType: mi.ContentType, Size: mi.Size,
		Width: mi.Width, Height: mi.Height, DurationMS: mi.DurationMS, Name: mi.Name, Thumbnail: mi.Thumbnail}
}

// wireContent is the content as JSON: a string, except an e2ee envelope sent
// as an object, which goes out as the object it was.
func wireContent(m *chat.Message, deviceID string) json.RawMessage {
	content := chat.ContentFor(m, deviceID)
	if m.ContentType == chat.ContentE2EE && len(content) > 0 && content[0] == '{' && json.Valid([]byte(content)) {
		return json.RawMessage(content)
	}
	b, _ := json.Marshal(content) // a string always marshals
	return b
}

func wireMessages(ms []chat.Message, deviceID string) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i := range ms {
		out[i] = wireMessage(&ms[i], deviceID)
	}
	return out
}

// wireConversation converts a conversation; its last message is shown as
// deviceID may see it ("" for a view shared by several devices).
func wireConversation(c *chat.Conversation, deviceID string) proto.Conversation {
	out := proto.Conversation{
		ConversationID: c.ID,
		Type:           c.Type,
		Name:           c.Name,
		Members:        make([]proto.Member, len(c.Members)),
		LastSeq:        c.LastSeq,
		UnreadCount:    c.UnreadCount,
		CreatedAt:      c.CreatedAt,
		UpdatedAt:      c.UpdatedAt,
	}
	for i, m := range c.Members {
		out.Members[i] = proto.Member{UserID: m.UserID, Role: m.Role, DeliveredSeq: m.DeliveredSeq, ReadSeq: m.ReadSeq}
	}
	if c.LastMessage != nil {
		lm := wireMessage(c.LastMessage, deviceID)
		out.LastMessage = &lm
	}
	return out
}

func wireUser(u chat.User) proto.User {
	return proto.User{UserID: u.ID, Username: u.Username, DisplayName: u.DisplayName}
}

// encodeEvent is the shared wire encoding of a bus event (see perDevice).
func encodeEvent(ev *chat.Event) []byte {
	switch ev.Kind {
	case chat.EventMessage:
		return newMessageFrame(ev.Message, "")
	case chat.EventStatus:
		s := ev.Status
		return proto.Encode(proto.MessageStatus{Type: proto.TypeMessageStatus, ConversationID: s.ConversationID, UserID: s.UserID, Seq: s.Seq, Status: s.Status, Timestamp: s.Timestamp})
	case chat.EventTyping:
		t := ev.Typing
		return proto.Encode(proto.Typing{Type: proto.TypeTyping, ConversationID: t.ConversationID, UserID: t.UserID, State: t.State})
	case chat.EventConversation:
		c := ev.Conversation
		return proto.Encode(proto.ConversationUpdated{Type: proto.TypeConversationUpdated, ConversationID: c.Conversation.ID, Change: c.Change, Conversation: wireConversation(&c.Conversation, "")})
	}
	return nil
}

// perDevice reports whether an event must be encoded for each device: an
// e2ee message carries a different ciphertext to each.
func perDevice(ev *chat.Event) bool {
	return ev.Kind == chat.EventMessage && ev.Message.ContentType == chat.ContentE2EE
}

// newMessageFrame encodes a new_message frame. Every live delivery and every
// message of a sync goes through here, so a plain (not e2ee) message is
// encoded by hand, byte for byte what encoding/json writes for
// proto.NewMessage (TestNewMessageFrameMatchesEncodingJSON), at a fraction
// of the cost of reflection; an e2ee envelope takes the general path.
func newMessageFrame(m *chat.Message, deviceID string) []byte {
	if m.ContentType == chat.ContentE2EE {
		return proto.Encode(proto.NewMessage{Type: proto.TypeNewMessage, Message: wireMessage(m, deviceID)})
	}
	n := 200 + len(m.ID) + len(m.ClientID) + len(m.ConversationID) + len(m.SenderID) + len(m.SenderDeviceID) +
		len(m.Content) + len(m.Content)/8 + len(m.ContentType) + len(m.MediaID)
	b := make([]byte, 0, n)
	b = append(b, `{"type":"new_message","message_id":`...)
	b = appendJSONString(b, m.ID)
	b = append(b, `,"client_message_id":`...)
	b = appendJSONString(b, m.ClientID)
	b = append(b, `,"conversation_id":`...)
	b = appendJSONString(b, m.ConversationID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, m.Seq, 10)
	b = append(b, `,"sender_id":`...)
	b = appendJSONString(b, m.SenderID)
	b = append(b, `,"sender_device_id":`...)
	b = appendJSONString(b, m.SenderDeviceID)
	b = append(b, `,"content":`...)
	b = appendJSONString(b, m.Content)
	b = append(b, `,"content_type":`...)
	b = appendJSONString(b, m.ContentType)
	if m.MediaID != "" {
		b = append(b, `,"media_id":`...)
		b = appendJSONString(b, m.MediaID)
	}
	if mm := wireMessageMedia(m); mm != nil {
		// Rare next to text, and mostly a base64 thumbnail: encoding/json.
		b = append(b, `,"media":`...)
		b = append(b, proto.Encode(mm)...)
	}
	if m.ReplyToSeq != 0 {
		b = append(b, `,"reply_to_seq":`...)
		b = strconv.AppendInt(b, m.ReplyToSeq, 10)
	}
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, m.Timestamp, 10)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: HTML-safe (<, > and & escaped), control characters escaped,
// invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func presenceFrame(p *chat.PresenceChange) []byte {
	status := "offline"
	if p.Online {
		status = "online"
	}
	return proto.Encode(proto.Presence{Type: proto.TypePresence, UserID: p.UserID, Status: status, LastSeen: p.LastSeen})
}
