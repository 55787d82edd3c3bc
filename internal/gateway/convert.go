package gateway

import (
	"encoding/json"

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
		ReplyToSeq:      m.ReplyToSeq,
		Timestamp:       m.Timestamp,
	}
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
	case chat.EventPresence:
		return presenceFrame(ev.Presence)
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

func newMessageFrame(m *chat.Message, deviceID string) []byte {
	return proto.Encode(proto.NewMessage{Type: proto.TypeNewMessage, Message: wireMessage(m, deviceID)})
}

func presenceFrame(p *chat.PresenceChange) []byte {
	status := "offline"
	if p.Online {
		status = "online"
	}
	return proto.Encode(proto.Presence{Type: proto.TypePresence, UserID: p.UserID, Status: status, LastSeen: p.LastSeen})
}
