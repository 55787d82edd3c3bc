package client

import (
	"sync"
)

// EventKind says what an Event carries.
type EventKind int

// Event kinds.
const (
	// EventConnected: a connection is up and its ready frame arrived (Ready).
	// A sync is sent right after.
	EventConnected EventKind = iota + 1
	// EventDisconnected: the connection went down (Err); Run reconnects.
	EventDisconnected
	// EventMessage: a message, exactly once and in seq order per
	// conversation (Message). The client's own sent messages are included,
	// rebuilt from their ack.
	EventMessage
	// EventStatus: a member's delivered/read watermark moved (Status).
	EventStatus
	// EventTyping: a member started or stopped typing (Typing).
	EventTyping
	// EventPresence: a subscribed user went online or offline (Presence).
	EventPresence
	// EventConversationUpdated: a conversation was created, renamed or its
	// members changed (Update).
	EventConversationUpdated
	// EventSyncComplete: the server finished the sync sent after a connect
	// (Sync). Gaps it left (truncated conversations) are still being filled
	// in the background; their messages follow as EventMessage.
	EventSyncComplete
	// EventError: an error frame that answers no pending Send (Err is an
	// *APIError), e.g. a rejected message_status.
	EventError
	// EventExpired: the session expired or was revoked (Err); Run returns.
	EventExpired
)

var kindNames = [...]string{
	EventConnected:           "connected",
	EventDisconnected:        "disconnected",
	EventMessage:             "message",
	EventStatus:              "status",
	EventTyping:              "typing",
	EventPresence:            "presence",
	EventConversationUpdated: "conversation_updated",
	EventSyncComplete:        "sync_complete",
	EventError:               "error",
	EventExpired:             "expired",
}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Event is one thing that happened on the connection. Kind says which of
// the pointer fields is set.
type Event struct {
	Kind     EventKind
	Ready    *Ready              // EventConnected
	Err      error               // EventDisconnected, EventError (*APIError), EventExpired
	Message  *Message            // EventMessage
	Status   *StatusUpdate       // EventStatus
	Typing   *TypingUpdate       // EventTyping
	Presence *Presence           // EventPresence
	Update   *ConversationUpdate // EventConversationUpdated
	Sync     *SyncComplete       // EventSyncComplete
}

// eventQueue is an unbounded FIFO between the connection (which must never
// block on the app) and the Events channel, fed by a pump goroutine.
type eventQueue struct {
	mu     sync.Mutex
	items  []Event
	head   int
	notify chan struct{} // capacity 1: "something was pushed"
}

func newEventQueue() *eventQueue {
	return &eventQueue{notify: make(chan struct{}, 1)}
}

func (q *eventQueue) push(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, evs...)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pushFront puts an event back at the head of the queue.
func (q *eventQueue) pushFront(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head > 0 {
		q.head--
		q.items[q.head] = ev
		return
	}
	q.items = append([]Event{ev}, q.items...)
}

func (q *eventQueue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head >= len(q.items) {
		return Event{}, false
	}
	ev := q.items[q.head]
	q.items[q.head] = Event{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return ev, true
}

func (q *eventQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
