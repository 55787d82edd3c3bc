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
	topics map[string]map[uint64]func(*chat.Event)
}

// New returns an empty bus.
func New() *Bus { return &Bus{topics: make(map[string]map[uint64]func(*chat.Event))} }

// Publish calls every handler subscribed to topic.
func (b *Bus) Publish(_ context.Context, topic string, ev *chat.Event) error {
	// Copy the handlers so that a handler may (un)subscribe without deadlock.
	var one func(*chat.Event)
	var many []func(*chat.Event)
	b.mu.RLock()
	subs := b.topics[topic]
	if len(subs) == 1 {
		for _, h := range subs {
			one = h
		}
	} else if len(subs) > 1 {
		many = make([]func(*chat.Event), 0, len(subs))
		for _, h := range subs {
			many = append(many, h)
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
func (b *Bus) Subscribe(topic string, h func(*chat.Event)) (func(), error) {
	b.mu.Lock()
	b.next++
	id := b.next
	subs := b.topics[topic]
	if subs == nil {
		subs = make(map[uint64]func(*chat.Event), 1)
		b.topics[topic] = subs
	}
	subs[id] = h
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if subs := b.topics[topic]; subs != nil {
				delete(subs, id)
				if len(subs) == 0 {
					delete(b.topics, topic)
				}
			}
		})
	}, nil
}

// Ping always succeeds: the bus lives in this process.
func (b *Bus) Ping(context.Context) error { return nil }

// Close does nothing.
func (b *Bus) Close() error { return nil }
