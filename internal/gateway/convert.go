package gateway

import (
	"encoding/json"
	"strconv"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// wireMessage converts a stored message to its wire form.
func wireMessage(m *chat.Message) proto.Message {
	return proto.Message{
		MessageID:       m.ID,
		ClientMessageID: m.ClientID,
		ConversationID:  m.ConversationID,
		Seq:             m.Seq,
		SenderID:        m.SenderID,
		SenderDeviceID:  m.SenderDeviceID,
		Content:         wireContent(m),
		ContentType:     m.ContentType,
		MediaID:         m.MediaID,
		ReplyToSeq:      m.ReplyToSeq,
		Timestamp:       m.Timestamp,
	}
}

// wireContent is the content as JSON: a string, except an e2ee envelope sent
// as an object, which goes out as the object it was.
func wireContent(m *chat.Message) json.RawMessage {
	if m.ContentType == chat.ContentE2EE && len(m.Content) > 0 && m.Content[0] == '{' && json.Valid([]byte(m.Content)) {
		return json.RawMessage(m.Content)
	}
	return json.RawMessage(strconv.Quote(m.Content))
}

func wireMessages(ms []chat.Message) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i := range ms {
		out[i] = wireMessage(&ms[i])
	}
	return out
}

func wireConversation(c *chat.Conversation) proto.Conversation {
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
		lm := wireMessage(c.LastMessage)
		out.LastMessage = &lm
	}
	return out
}

func wireUser(u chat.User) proto.User {
	return proto.User{UserID: u.ID, Username: u.Username, DisplayName: u.DisplayName}
}

// encodeEvent is the shared wire encoding of a bus event.
func encodeEvent(ev *chat.Event) []byte {
	switch ev.Kind {
	case chat.EventMessage:
		return proto.Encode(proto.NewMessage{Type: proto.TypeNewMessage, Message: wireMessage(ev.Message)})
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
		return proto.Encode(proto.ConversationUpdated{Type: proto.TypeConversationUpdated, ConversationID: c.Conversation.ID, Change: c.Change, Conversation: wireConversation(&c.Conversation)})
	}
	return nil
}

func presenceFrame(p *chat.PresenceChange) []byte {
	status := "offline"
	if p.Online {
		status = "online"
	}
	return proto.Encode(proto.Presence{Type: proto.TypePresence, UserID: p.UserID, Status: status, LastSeen: p.LastSeen})
}
