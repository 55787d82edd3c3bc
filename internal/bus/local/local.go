// Package local is the in-process Bus of the embedded default: a topic table
// guarded by a read-write lock. Publish calls the subscribers synchronously, in
// the publisher's goroutine (outside the lock), so events from one publisher
// arrive in order.
package local

import (
	"context"
	"sync"

	"github.com/parley-chat/parley/internal/chat"
)

// Bus is an in-process chat.Bus. The zero value is not usable; call New.
type Bus struct {
	mu     sync.RWMutex
	next   uint64
	topics map[string]*topic
}

// topic holds a topic's subscribers. Nearly every topic has one (a user's
// topic while the user is online on this node), which is kept without a map:
// an idle socket's subscription costs a few dozen bytes.
type topic struct {
	id   uint64 // of h; 0 when the first subscriber left
	h    func(*chat.Event)
	more map[uint64]func(*chat.Event) // the others, if any
}

func (t *topic) len() int {
	n := len(t.more)
	if t.h != nil {
		n++
	}
	return n
}

// New returns an empty bus.
func New() *Bus { return &Bus{topics: make(map[string]*topic)} }

// Publish calls every handler subscribed to topic.
func (b *Bus) Publish(_ context.Context, name string, ev *chat.Event) error {
	// Copy the handlers so that a handler may (un)subscribe without deadlock.
	var one func(*chat.Event)
	var many []func(*chat.Event)
	b.mu.RLock()
	if t := b.topics[name]; t != nil {
		if len(t.more) == 0 {
			one = t.h
		} else {
			many = make([]func(*chat.Event), 0, t.len())
			if t.h != nil {
				many = append(many, t.h)
			}
			for _, h := range t.more {
				many = append(many, h)
			}
		}
	}
	b.mu.RUnlock()
	if one != nil {
		one(ev)
	}
	for _, h := range many {
		h(ev)
	}
	return nil
}

// Subscribe registers h for topic.
func (b *Bus) Subscribe(name string, h func(*chat.Event)) (func(), error) {
	b.mu.Lock()
	b.next++
	id := b.next
	t := b.topics[name]
	switch {
	case t == nil:
		b.topics[name] = &topic{id: id, h: h}
	case t.h == nil:
		t.id, t.h = id, h
	default:
		if t.more == nil {
			t.more = make(map[uint64]func(*chat.Event), 1)
		}
		t.more[id] = h
	}
	b.mu.Unlock()
	return (&subscription{b: b, topic: name, id: id}).unsubscribe, nil
}

type subscription struct {
	b     *Bus
	topic string
	id    uint64
	once  sync.Once
}

func (s *subscription) unsubscribe() {
	s.once.Do(func() {
		b := s.b
		b.mu.Lock()
		defer b.mu.Unlock()
		t := b.topics[s.topic]
		if t == nil {
			return
		}
		if t.id == s.id && t.h != nil {
			t.id, t.h = 0, nil
		} else {
			delete(t.more, s.id)
		}
		if t.len() == 0 {
			delete(b.topics, s.topic)
		}
	})
}

// Ping always succeeds: the bus lives in this process.
func (b *Bus) Ping(context.Context) error { return nil }

// Close does nothing.
func (b *Bus) Close() error { return nil }
