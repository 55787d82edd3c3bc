// Package bustest is the conformance suite every chat.Bus implementation
// passes: delivery to every subscriber of a topic and only to them, order from
// one publisher, unsubscribe, concurrent use, and the channel topic (one copy
// per node, fan-out-on-read fields intact).
package bustest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Run runs the suite. open returns a fresh bus connected to the same fabric
// each time it is called (for a networked bus, a second node); the suite
// closes what it opens.
func Run(t *testing.T, open func(t *testing.T) chat.Bus) {
	t.Run("DeliversToSubscribersOnly", func(t *testing.T) { testDelivers(t, open) })
	t.Run("OrderFromOnePublisher", func(t *testing.T) { testOrder(t, open) })
	t.Run("Unsubscribe", func(t *testing.T) { testUnsubscribe(t, open) })
	t.Run("AcrossInstances", func(t *testing.T) { testAcross(t, open) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("ChannelTopicOncePerNode", func(t *testing.T) { testChannelTopic(t, open) })
	t.Run("Ping", func(t *testing.T) {
		b := open(t)
		if err := b.Ping(t.Context()); err != nil {
			t.Fatalf("ping: %v", err)
		}
	})
}

// collector gathers events delivered to a handler.
type collector struct {
	mu  sync.Mutex
	evs []*chat.Event
	ch  chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1<<16)} }

func (c *collector) handle(ev *chat.Event) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
	c.ch <- struct{}{}
}

func (c *collector) wait(t *testing.T, n int) []*chat.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-c.ch:
		case <-deadline:
			c.mu.Lock()
			got := len(c.evs)
			c.mu.Unlock()
			t.Fatalf("got %d events, want %d", got, n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*chat.Event(nil), c.evs...)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

func msgEvent(conv string, seq int64) *chat.Event {
	return &chat.Event{Kind: chat.EventMessage, ExceptDevice: "dev-x", Message: &chat.Message{
		ID: fmt.Sprintf("m%d", seq), ConversationID: conv, Seq: seq, SenderID: "u1", Content: "hello", ContentType: chat.ContentText,
	}}
}

func subscribe(t *testing.T, b chat.Bus, topic string, c *collector) func() {
	t.Helper()
	unsub, err := b.Subscribe(topic, c.handle)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	t.Cleanup(unsub)
	return unsub
}

// settle gives a networked bus time to propagate subscriptions; it is not a
// timing assertion.
func settle() { time.Sleep(50 * time.Millisecond) }

func testDelivers(t *testing.T, open func(t *testing.T) chat.Bus) {
	b := open(t)
	a1, a2, other := newCollector(), newCollector(), newCollector()
	subscribe(t, b, chat.UserTopic("alice"), a1)
	subscribe(t, b, chat.UserTopic("alice"), a2)
	subscribe(t, b, chat.UserTopic("bob"), other)
	settle()
	if err := b.Publish(t.Context(), chat.UserTopic("alice"), msgEvent("c1", 1)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*collector{a1, a2} {
		evs := c.wait(t, 1)
		ev := evs[0]
		if ev.Kind != chat.EventMessage || ev.Message == nil || ev.Message.Seq != 1 || ev.Message.Content != "hello" || ev.ExceptDevice != "dev-x" {
			t.Fatalf("event not delivered intact: %+v", ev)
		}
	}
	settle()
	if n := other.count(); n != 0 {
		t.Fatalf("bob got %d events for alice's topic", n)
	}
}

func testOrder(t *testing.T, open func(t *testing.T) chat.Bus) {
	b := open(t)
	c := newCollector()
	subscribe(t, b, chat.UserTopic("carol"), c)
	settle()
	const n = 500
	for i := 1; i <= n; i++ {
		if err := b.Publish(t.Context(), chat.UserTopic("carol"), msgEvent("c1", int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	evs := c.wait(t, n)
	for i, ev := range evs {
		if ev.Message.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: order lost", i, ev.Message.Seq)
		}
	}
}

func testUnsubscribe(t *testing.T, open func(t *testing.T) chat.Bus) {
	b := open(t)
	c := newCollector()
	unsub := subscribe(t, b, chat.UserTopic("dave"), c)
	settle()
	_ = b.Publish(t.Context(), chat.UserTopic("dave"), msgEvent("c1", 1))
	c.wait(t, 1)
	unsub()
	unsub() // idempotent
	settle()
	_ = b.Publish(t.Context(), chat.UserTopic("dave"), msgEvent("c1", 2))
	settle()
	if n := c.count(); n != 1 {
		t.Fatalf("got %d events after unsubscribe, want 1", n)
	}
}

func testAcross(t *testing.T, open func(t *testing.T) chat.Bus) {
	b1, b2 := open(t), open(t)
	c := newCollector()
	subscribe(t, b2, chat.UserTopic("erin"), c)
	settle()
	ev := &chat.Event{Kind: chat.EventTyping, Typing: &chat.TypingChange{ConversationID: "c9", UserID: "fay", DeviceID: "d1", State: "typing"}}
	if err := b1.Publish(t.Context(), chat.UserTopic("erin"), ev); err != nil {
		t.Fatal(err)
	}
	got := c.wait(t, 1)[0]
	if got.Kind != chat.EventTyping || got.Typing == nil || *got.Typing != *ev.Typing {
		t.Fatalf("typing event not delivered intact: %+v", got)
	}
}

func testConcurrent(t *testing.T, open func(t *testing.T) chat.Bus) {
	b := open(t)
	c := newCollector()
	subscribe(t, b, chat.UserTopic("frank"), c)
	settle()
	const pubs, each = 8, 100
	var wg sync.WaitGroup
	for p := 0; p < pubs; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				_ = b.Publish(t.Context(), chat.UserTopic("frank"), msgEvent(fmt.Sprintf("c%d", p), int64(i)))
			}
		}(p)
	}
	wg.Wait()
	evs := c.wait(t, pubs*each)
	last := map[string]int64{}
	for _, ev := range evs {
		m := ev.Message
		if m.Seq != last[m.ConversationID]+1 {
			t.Fatalf("conversation %s: seq %d after %d", m.ConversationID, m.Seq, last[m.ConversationID])
		}
		last[m.ConversationID] = m.Seq
	}
}

// testChannelTopic: an event published once on the channel topic reaches the
// one subscription of each node exactly once, with the fan-out-on-read
// fields (audience, membership change) intact.
func testChannelTopic(t *testing.T, open func(t *testing.T) chat.Bus) {
	pub, n1, n2 := open(t), open(t), open(t)
	c1, c2 := newCollector(), newCollector()
	subscribe(t, n1, chat.ChannelTopic, c1)
	subscribe(t, n2, chat.ChannelTopic, c2)
	settle()
	msg := msgEvent("big", 7)
	msg.Audience = &chat.Audience{Count: 10000, Sum: 0xFEDCBA9876543210}
	change := &chat.Event{Kind: chat.EventMembers, Audience: &chat.Audience{Count: 10001, Sum: 1<<63 | 5},
		Members: &chat.MembersChange{ConversationID: "big", Change: chat.ChangeMemberAdded, Users: []string{"u7", "u8"}, LastSeq: 7}}
	for _, ev := range []*chat.Event{msg, change} {
		if err := pub.Publish(t.Context(), chat.ChannelTopic, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*collector{c1, c2} {
		evs := c.wait(t, 2)
		m, g := evs[0], evs[1]
		if m.Kind != chat.EventMessage || m.Message == nil || m.Message.Seq != 7 || m.Audience == nil || *m.Audience != *msg.Audience {
			t.Fatalf("channel message not delivered intact: %+v (audience %+v)", m, m.Audience)
		}
		if g.Kind != chat.EventMembers || g.Members == nil || g.Audience == nil || *g.Audience != *change.Audience ||
			g.Members.ConversationID != "big" || g.Members.Change != chat.ChangeMemberAdded || g.Members.LastSeq != 7 ||
			len(g.Members.Users) != 2 || g.Members.Users[0] != "u7" || g.Members.Users[1] != "u8" {
			t.Fatalf("membership change not delivered intact: %+v (members %+v)", g, g.Members)
		}
	}
	settle()
	if a, b := c1.count(), c2.count(); a != 2 || b != 2 {
		t.Fatalf("nodes got %d and %d events for 2 publishes, want 2 each", a, b)
	}
}
