package chat

import (
	"context"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Fan-out-on-read.
//
// A conversation with at most Config.FanoutDirectMax members is delivered
// directly: its events are published on the user topic of every member, and
// the bus routes each to the nodes holding that user's sockets. A larger one
// (a channel) is delivered fan-out-on-read: each event is published once on
// ChannelTopic, which every node subscribes to, and each node hands it to its
// own sockets whose users are members, from a member set it keeps per
// conversation (internal/gateway/channels.go). A message to a 10,000-member
// channel costs one store write and one bus message per node instead of
// 10,000 publishes.
//
// What a channel broadcasts (documented in docs/architecture.md):
//   - messages: every online device of every member, as for any conversation;
//   - typing: every online member, as for any conversation;
//   - receipts: only the reporting member's own other devices (a read by one
//     of 10,000 members is not news for the other 9,999; the watermarks are
//     in GET /conversations/{id});
//   - conversation_updated: created and renamed reach every member; a member
//     added or removed is told itself, the other members are not.

// Delivery routes, for Metrics.Fanout.
const (
	RouteDirect  = "direct"  // one publish per member, on user topics
	RouteChannel = "channel" // one publish per event, on ChannelTopic
)

// Audience is the fingerprint of a set of member ids: its size and the XOR of
// a 64-bit hash of each id. Equal sets have equal audiences; two different
// sets have the same one with a probability of about 2^-64. It is computed
// from a list in one pass and can be kept up to date one id at a time.
type Audience struct {
	Count int    `json:"n"`
	Sum   uint64 `json:"h"`
}

// AudienceOf returns the audience of a set of distinct ids.
func AudienceOf(ids []string) Audience {
	a := Audience{Count: len(ids)}
	for _, id := range ids {
		a.Sum ^= memberHash(id)
	}
	return a
}

// Add accounts for an id joining the set (it must not be in it).
func (a *Audience) Add(id string) {
	a.Count++
	a.Sum ^= memberHash(id)
}

// Remove accounts for an id leaving the set (it must be in it).
func (a *Audience) Remove(id string) {
	a.Count--
	a.Sum ^= memberHash(id)
}

// memberHash is a fast, well-mixed 64-bit hash of an id, the same in every
// process (never seeded at random: nodes compare audiences). Ids are chosen
// by the server, so it need not resist crafted collisions.
func memberHash(id string) uint64 {
	const k = 0x9E3779B97F4A7C15
	h := uint64(len(id))*k ^ 0x243F6A8885A308D3
	for len(id) >= 8 {
		_ = id[7]
		w := uint64(id[0]) | uint64(id[1])<<8 | uint64(id[2])<<16 | uint64(id[3])<<24 |
			uint64(id[4])<<32 | uint64(id[5])<<40 | uint64(id[6])<<48 | uint64(id[7])<<56
		h = bits.RotateLeft64((h^w)*k, 31)
		id = id[8:]
	}
	if len(id) > 0 {
		var w uint64
		for i := 0; i < len(id); i++ {
			w |= uint64(id[i]) << (8 * i)
		}
		h = bits.RotateLeft64((h^w)*k, 31)
	}
	// murmur3's finalizer: every input bit reaches every output bit.
	h ^= h >> 33
	h *= 0xFF51AFD7ED558CCD
	h ^= h >> 33
	h *= 0xC4CEB9FE1A85EC53
	h ^= h >> 33
	return h
}

// fanoutOnRead reports whether a conversation of n members is delivered
// fan-out-on-read.
func (s *Service) fanoutOnRead(members int) bool { return members > s.cfg.FanoutDirectMax }

// publishChannel publishes ev once on ChannelTopic.
func (s *Service) publishChannel(ctx context.Context, ev *Event) {
	failures := 0
	if err := s.bus.Publish(ctx, ChannelTopic, ev); err != nil {
		failures = 1
		s.log.Warn("bus publish failed; devices will repair with sync", "topic", ChannelTopic, "err", err)
	}
	s.metrics.Published(1, failures)
	s.metrics.Fanout(RouteChannel, ev.Kind == EventMessage, 1)
}

// DeliveryConversation loads a conversation with its members for a node that
// forwards ChannelTopic events to its sockets. It checks nobody's
// membership: never answer a user's request with it.
func (s *Service) DeliveryConversation(ctx context.Context, id string) (Conversation, error) {
	return s.store.Conversation(ctx, id)
}

// DeliveryMessages reads the messages of a conversation with
// after < seq, oldest first, at most limit, for a node repairing its live
// deliveries (a seq that never arrived on the bus). It checks nobody's
// membership: never answer a user's request with it.
func (s *Service) DeliveryMessages(ctx context.Context, conversationID string, after int64, limit int) ([]Message, error) {
	msgs, _, err := s.store.Messages(ctx, conversationID, Page{After: after, Forward: true, Limit: min(limit, MaxPageLimit)})
	return msgs, err
}

// largeSet remembers which conversations this node last saw with more
// members than FanoutDirectMax, so that typing in one does not load its
// whole member list to learn its size. It is a hint: a stale entry costs
// only a different route, and both routes reach the same members.
type largeSet struct {
	n  atomic.Int32 // entries, read without the lock
	mu sync.Mutex
	m  map[string]struct{}
}

// maxLargeHints bounds the hint; past it, it starts over.
const maxLargeHints = 1 << 14

func (l *largeSet) note(convID string, large bool) {
	if !large && l.n.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !large {
		delete(l.m, convID)
	} else {
		if l.m == nil || len(l.m) >= maxLargeHints {
			l.m = make(map[string]struct{})
		}
		l.m[convID] = struct{}{}
	}
	l.n.Store(int32(len(l.m)))
}

func (l *largeSet) has(convID string) bool {
	if l.n.Load() == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.m[convID]
	return ok
}
