package chat

import (
	"context"
	"sync"
)

// Bus carries events between nodes: a message for a user reaches every node
// holding a socket of that user. Every implementation passes the suite in
// internal/bus/bustest. Delivery is best effort: a lost event costs latency,
// never data, because devices repair with sync.
type Bus interface {
	// Publish sends ev to every subscriber of topic. It must not block on slow
	// subscribers.
	Publish(ctx context.Context, topic string, ev *Event) error
	// Subscribe calls h for every event published to topic until the returned
	// function is called. h runs on the bus's goroutine and must not block.
	Subscribe(topic string, h func(*Event)) (unsubscribe func(), err error)
	// Ping checks that the bus answers.
	Ping(ctx context.Context) error
	// Close releases the bus.
	Close() error
}

// Topics.
func UserTopic(userID string) string { return "u." + userID }

// ChannelTopic carries the events of fan-out-on-read conversations (more
// members than Config.FanoutDirectMax): one publish per event instead of one
// per member. Every node subscribes to it for as long as it runs and hands
// each event to its own sockets whose users are members.
const ChannelTopic = "c"

// EventKind tells which payload of an Event is set.
type EventKind uint8

// Event kinds.
const (
	EventMessage      EventKind = iota + 1 // Message
	EventStatus                            // Status
	EventTyping                            // Typing
	_                                      // was presence: it travels in the session registry now
	EventConversation                      // Conversation
	EventRevoke                            // Revoke: close the device's sockets (logout, revocation)
	EventMembers                           // Members: a fan-out-on-read conversation changed (ChannelTopic only)
	EventBlock                             // Block: a block between the user and Block.Other began (stop presence both ways)
)

// Event is what travels on the bus. Exactly one payload field is set. Events
// are shared between recipients and must not be modified once published.
type Event struct {
	Kind EventKind `json:"k"`
	// ExceptDevice is not sent the event (the sending device gets an ack instead).
	ExceptDevice string `json:"x,omitempty"`

	Message      *Message            `json:"m,omitempty"`
	Status       *StatusChange       `json:"s,omitempty"`
	Typing       *TypingChange       `json:"t,omitempty"`
	Conversation *ConversationChange `json:"c,omitempty"`
	Revoke       *Revoke             `json:"r,omitempty"`
	Members      *MembersChange      `json:"g,omitempty"`
	Block        *BlockChange        `json:"b,omitempty"`

	// Audience is set on the message events and membership changes of
	// ChannelTopic: the member set the event is for (the members when the
	// message was committed, or after the change), so that a node can tell
	// whether the member set it holds is the same.
	Audience *Audience `json:"a,omitempty"`

	once    sync.Once
	encoded []byte
}

// Encoded returns the event's wire encoding, computing it with enc the first
// time: one encoding shared by every socket on a node.
func (e *Event) Encoded(enc func(*Event) []byte) []byte {
	e.once.Do(func() { e.encoded = enc(e) })
	return e.encoded
}

// StatusChange is a member's receipt watermark moving.
type StatusChange struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	Seq            int64  `json:"seq"`
	Status         string `json:"status"`
	Timestamp      int64  `json:"timestamp"`
}

// TypingChange is a member starting or stopping typing.
type TypingChange struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	DeviceID       string `json:"device_id"`
	State          string `json:"state"`
}

// PresenceChange is a user going online or offline, as the session
// registry of a cluster reports it.
type PresenceChange struct {
	UserID   string `json:"user_id"`
	Online   bool   `json:"online"`
	LastSeen int64  `json:"last_seen"`
}

// ConversationChange tells members that a conversation was created or changed.
type ConversationChange struct {
	Change       string       `json:"change"` // created, member_added, member_removed, renamed
	Conversation Conversation `json:"conversation"`
}

// MembersChange tells every node that a fan-out-on-read conversation was
// created or renamed, or that Users were added to or removed from it. Nodes
// update the member sets they hold and send conversation_updated to their own
// sockets of the users concerned (see Service.announce). The conversation
// itself is not carried: a node loads it when it has someone to tell (a
// 10,000-member conversation does not fit a bus message).
type MembersChange struct {
	ConversationID string   `json:"conversation_id"`
	Change         string   `json:"change"`          // created, member_added, member_removed, renamed
	Users          []string `json:"users,omitempty"` // added or removed
	// LastSeq is the conversation's last seq read together with the members
	// after the change: messages up to it were committed before that read.
	LastSeq int64 `json:"last_seq"`
}

// BlockChange tells a user's sockets that a block with Other began: they
// stop watching Other's presence.
type BlockChange struct {
	Other string `json:"other"`
}

// Revoke closes sockets with the session-expired error: those of one token
// when TokenHash is set, else those of one device when DeviceID is set, else
// every socket of the user.
type Revoke struct {
	DeviceID  string `json:"device_id,omitempty"`
	TokenHash string `json:"token_hash,omitempty"`
}
