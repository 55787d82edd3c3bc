package gateway

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// channels forwards the events of fan-out-on-read conversations, published
// once on chat.ChannelTopic (which this node subscribes to for as long as it
// runs), to this node's sockets whose users are members.
//
// It keeps the member set of each such conversation it has seen, loaded
// through the service on first use and kept current by the MembersChange
// events of the same topic. A message event carries the audience (the
// fingerprint) of the members at its commit; a set with another audience,
// and not known to have been read after the message was committed, is
// loaded again before the message is forwarded. So a membership change this
// node missed (a lost bus event) or has not heard of yet (it comes from
// another publisher) never costs a member a message, nor shows one to a
// member already removed.
//
// Loads never run on the bus's goroutine. Events go through one queue, in
// arrival order, worked by one goroutine; an event that needs nothing from
// the store, arriving while the queue is empty and the worker idle, is
// forwarded at once on the bus's goroutine (the common case: no hop, and,
// with the in-process bus, queued on the sockets before the sender's ack).
// Either way events are forwarded one at a time in arrival order, so a
// conversation's messages keep their seq order.
type channels struct {
	g      *Gateway
	unsub  func()
	maxIDs int // member ids held before the least recently used sets are dropped

	mu    sync.Mutex
	queue []*chat.Event
	busy  bool // the worker is loading for an event it took from the queue
	sets  map[string]*memberSet
	ids   int    // member ids held in sets
	clock uint64 // use counter, for eviction

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// memberSet is what this node knows of one conversation's members.
type memberSet struct {
	ids map[string]struct{}
	aud chat.Audience
	// validSeq: the set equals the members as read after every message up to
	// this seq was committed, so it is at least as new as those messages'
	// audiences (their members may since have changed, and this set with them).
	validSeq int64
	used     uint64
}

const (
	// channelQueueMax bounds the events waiting for the worker; past it they
	// are dropped (counted) and devices repair with sync.
	channelQueueMax = 1 << 16
	// channelLoadTimeout bounds one member-set load.
	channelLoadTimeout = 10 * time.Second
)

// startChannels subscribes to chat.ChannelTopic and starts the worker.
func startChannels(g *Gateway) *channels {
	c := &channels{
		g:      g,
		maxIDs: g.cfg.ChannelCacheMembers,
		sets:   make(map[string]*memberSet),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if c.maxIDs <= 0 {
		c.maxIDs = DefaultConfig().ChannelCacheMembers
	}
	unsub, err := g.bus.Subscribe(chat.ChannelTopic, c.handle)
	if err != nil {
		g.log.Error("cannot subscribe to fan-out-on-read events: channel members get their messages through sync only", "err", err)
		unsub = func() {}
	}
	c.unsub = unsub
	go c.work()
	return c
}

// close unsubscribes and stops the worker; events still queued are dropped
// (the node is stopping, its sockets are closed).
func (c *channels) close() {
	c.closeOnce.Do(func() {
		c.unsub()
		close(c.stop)
		<-c.done
	})
}

// channelConversation is the conversation an event of ChannelTopic is about.
func channelConversation(ev *chat.Event) string {
	switch {
	case ev.Kind == chat.EventMessage && ev.Message != nil:
		return ev.Message.ConversationID
	case ev.Kind == chat.EventTyping && ev.Typing != nil:
		return ev.Typing.ConversationID
	case ev.Kind == chat.EventMembers && ev.Members != nil:
		return ev.Members.ConversationID
	}
	return ""
}

// handle runs on the bus's goroutine and never waits for the store. In a
// cluster a message first goes through the hub's reorder buffer, one stream
// per channel on this node, since two nodes publish a channel's messages
// independently.
func (c *channels) handle(ev *chat.Event) {
	conv := channelConversation(ev)
	if conv == "" {
		return // nothing else travels on this topic
	}
	h := c.g.hub
	h.mu.RLock()
	order := h.order
	h.mu.RUnlock()
	if order != nil && ev.Kind == chat.EventMessage {
		order.admit("", ev, c.accept)
		return
	}
	c.accept(ev)
}

// accept forwards ev at once when this node holds what it needs, or queues
// it for the worker.
func (c *channels) accept(ev *chat.Event) {
	c.g.metrics.ChannelEvents.Inc()
	c.mu.Lock()
	if !c.busy && len(c.queue) == 0 && c.forward(ev) {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= channelQueueMax {
		c.mu.Unlock()
		c.g.metrics.ChannelDropped.Inc()
		return
	}
	c.queue = append(c.queue, ev)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// work takes the queued events in order; one that needs a member set loads
// it (without the lock, so the bus is never held up) and is forwarded after.
func (c *channels) work() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.stop:
				return
			}
			c.mu.Lock()
		}
		ev := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if len(c.queue) == 0 {
			c.queue = nil // let the array go; the next burst gets a fresh one
		}
		if c.forward(ev) {
			c.mu.Unlock()
			continue
		}
		c.busy = true
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), channelLoadTimeout)
		conv, err := c.g.svc.DeliveryConversation(ctx, channelConversation(ev))
		cancel()
		c.mu.Lock()
		c.finish(ev, conv, err)
		c.busy = false
		c.mu.Unlock()
	}
}

// forward handles ev with what this node holds, and reports false, having
// changed nothing, when that takes a load from the store. Called with c.mu
// held.
func (c *channels) forward(ev *chat.Event) bool {
	switch ev.Kind {
	case chat.EventMessage:
		set := c.sets[ev.Message.ConversationID]
		if set == nil || !set.current(ev.Audience, ev.Message.Seq) {
			return false
		}
		c.touch(set)
		c.deliver(set, ev)
	case chat.EventTyping:
		set := c.sets[ev.Typing.ConversationID]
		if set == nil {
			return false
		}
		c.touch(set)
		c.deliver(set, ev)
	case chat.EventMembers:
		if c.mustTell(ev) {
			return false // the frame needs the conversation
		}
		c.apply(ev)
	}
	return true
}

// current reports whether the set may serve a message with audience a and
// seq: it is the same set, or one read after the message was committed.
func (s *memberSet) current(a *chat.Audience, seq int64) bool {
	return (a != nil && *a == s.aud) || seq <= s.validSeq
}

// mustTell reports whether a change concerns a user with sockets here:
// every member for created and renamed (unknown members count as here),
// the added or removed users otherwise.
func (c *channels) mustTell(ev *chat.Event) bool {
	ch := ev.Members
	h := c.g.hub
	switch ch.Change {
	case chat.ChangeCreated, chat.ChangeRenamed:
		set := c.sets[ch.ConversationID]
		if set == nil || ev.Audience == nil || set.aud != *ev.Audience {
			return true
		}
		h.mu.RLock()
		defer h.mu.RUnlock()
		found := false
		c.eachLocal(set, func(*userConns) { found = true })
		return found
	default:
		h.mu.RLock()
		defer h.mu.RUnlock()
		for _, uid := range ch.Users {
			if h.users[uid] != nil {
				return true
			}
		}
		return false
	}
}

// apply brings the held set up to a membership change. When the result is
// not the audience the change announces (this node missed another change),
// the set is dropped and loaded again on next use.
func (c *channels) apply(ev *chat.Event) {
	ch := ev.Members
	set := c.sets[ch.ConversationID]
	if set == nil {
		return
	}
	switch ch.Change {
	case chat.ChangeMemberAdded:
		for _, uid := range ch.Users {
			if _, ok := set.ids[uid]; !ok {
				set.ids[uid] = struct{}{}
				set.aud.Add(uid)
				c.ids++
			}
		}
	case chat.ChangeMemberRemoved:
		for _, uid := range ch.Users {
			if _, ok := set.ids[uid]; ok {
				delete(set.ids, uid)
				set.aud.Remove(uid)
				c.ids--
			}
		}
	}
	if ev.Audience == nil || set.aud != *ev.Audience {
		c.drop(ch.ConversationID)
		return
	}
	// The set is now the membership read with ch.LastSeq. Set, not raised:
	// a change heard late may take the set back to an older membership.
	set.validSeq = ch.LastSeq
}

// finish forwards an event after its conversation was loaded. Called with
// c.mu held.
func (c *channels) finish(ev *chat.Event, conv chat.Conversation, err error) {
	id := channelConversation(ev)
	if err != nil {
		c.drop(id)
		c.g.metrics.ChannelDropped.Inc()
		c.g.log.Warn("cannot load a fan-out-on-read conversation: its devices here repair with sync", "conversation", id, "err", err)
		return
	}
	c.g.metrics.ChannelLoads.Inc()
	set := c.install(conv)
	switch ev.Kind {
	case chat.EventMessage, chat.EventTyping:
		// The set was read after the event was published: it is at least as
		// new as the event's audience.
		c.deliver(set, ev)
	case chat.EventMembers:
		ch := ev.Members
		out := &chat.Event{Kind: chat.EventConversation, Conversation: &chat.ConversationChange{Change: ch.Change, Conversation: conv}}
		if ch.Change == chat.ChangeCreated || ch.Change == chat.ChangeRenamed {
			c.deliver(set, out)
			return
		}
		h := c.g.hub
		h.mu.RLock()
		defer h.mu.RUnlock()
		for _, uid := range ch.Users {
			if uc := h.users[uid]; uc != nil {
				h.deliverConns(uc, out)
			}
		}
	}
}

// install replaces the held set of conv with its loaded members, then drops
// the least recently used sets while more than maxIDs ids are held.
func (c *channels) install(conv chat.Conversation) *memberSet {
	c.drop(conv.ID)
	set := &memberSet{ids: make(map[string]struct{}, len(conv.Members)), validSeq: conv.LastSeq}
	for _, m := range conv.Members {
		set.ids[m.UserID] = struct{}{}
	}
	set.aud = chat.AudienceOf(conv.MemberIDs())
	c.sets[conv.ID] = set
	c.ids += len(set.ids)
	c.touch(set)
	for c.ids > c.maxIDs && len(c.sets) > 1 {
		oldest, at := "", uint64(math.MaxUint64)
		for id, s := range c.sets {
			if s != set && s.used < at {
				oldest, at = id, s.used
			}
		}
		c.drop(oldest)
	}
	return set
}

func (c *channels) drop(convID string) {
	if set := c.sets[convID]; set != nil {
		c.ids -= len(set.ids)
		delete(c.sets, convID)
	}
}

func (c *channels) touch(set *memberSet) {
	c.clock++
	set.used = c.clock
}

// deliver hands ev to this node's sockets of the set's members.
func (c *channels) deliver(set *memberSet, ev *chat.Event) {
	h := c.g.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	c.eachLocal(set, func(uc *userConns) { h.deliverConns(uc, ev) })
}

// eachLocal calls f for each member with sockets here, walking whichever is
// smaller: this node's users or the members. Called with h.mu held.
func (c *channels) eachLocal(set *memberSet, f func(*userConns)) {
	users := c.g.hub.users
	if len(users) < len(set.ids) {
		for uid, uc := range users {
			if _, ok := set.ids[uid]; ok {
				f(uc)
			}
		}
		return
	}
	for uid := range set.ids {
		if uc := users[uid]; uc != nil {
			f(uc)
		}
	}
}

// heldMembers reports how many member ids this node holds (tests).
func (c *channels) heldMembers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids
}
