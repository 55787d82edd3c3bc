package gateway

import (
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// seqOrder puts a conversation's live messages back in seq order before
// they reach sockets. On one node they always arrive in order (one
// publisher, in commit order); in a cluster two nodes committing to one
// conversation publish independently, so seq 5 can overtake seq 4 on the
// way to a third node. A message that arrives past a missing seq is held
// until the missing one comes or the hold runs out. Then the missing seqs
// are read from the store: they are committed, since seqs are given out in
// commit order and a later one was published. If that read fails too, the
// held messages go on in seq order and the device repairs the hole by sync,
// as after any lost delivery. Streams are per owner and conversation, and
// forgotten once idle. An owner is one subscription of a user (a user who
// comes back to this node starts with fresh streams: what was committed
// while it had no socket here reaches it by sync, never through a fill), or
// "" for the node's channel streams.
type seqOrder struct {
	hold time.Duration
	// fetch reads the messages of a conversation with from < seq < to.
	fetch func(conv string, from, to int64) ([]*chat.Event, error)
	// count counts n messages that were "held" (they overtook a missing
	// seq), "filled" (read from the store when a hold ran out) or
	// "released" (handed on with a seq before them still missing).
	count func(outcome string, n int)

	mu      sync.Mutex
	streams map[string]map[string]*seqStream // owner → conversation → stream
	swept   time.Time
}

type seqStream struct {
	deliver func(*chat.Event)
	last    int64                 // highest seq handed on
	held    map[int64]*chat.Event // arrived ahead of a missing seq
	timer   *time.Timer
	touched time.Time
}

// streamIdle is how long a stream without held messages is remembered. A
// stream's first message is handed on at once (there is nothing to order it
// against), so a predecessor still on its way then arrives after it: keep
// streams long enough that this happens only after a quiet spell.
const streamIdle = 10 * time.Minute

func newSeqOrder(hold time.Duration, fetch func(conv string, from, to int64) ([]*chat.Event, error), count func(string, int)) *seqOrder {
	return &seqOrder{hold: hold, fetch: fetch, count: count, streams: make(map[string]map[string]*seqStream)}
}

// admit hands ev (a message of the owner's stream of its conversation) to
// deliver now, or holds it until the seqs before it were handed on.
// deliver, the same for every call with one owner, is called in seq order
// per stream with the order's lock held: it must not block or call back.
func (o *seqOrder) admit(owner string, ev *chat.Event, deliver func(*chat.Event)) {
	seq, conv := ev.Message.Seq, ev.Message.ConversationID
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sweep(now)
	convs := o.streams[owner]
	if convs == nil {
		convs = make(map[string]*seqStream)
		o.streams[owner] = convs
	}
	s := convs[conv]
	if s == nil {
		s = &seqStream{deliver: deliver, last: seq - 1}
		convs[conv] = s
	}
	s.touched = now
	switch {
	case seq <= s.last: // a late one, or a repeat: the device sorts it out by seq
		s.deliver(ev)
		return
	case seq > s.last+1: // a seq is missing: wait for it
		if s.held == nil {
			s.held = make(map[int64]*chat.Event)
		}
		s.held[seq] = ev
		o.count("held", 1)
		if s.timer == nil {
			s.timer = time.AfterFunc(o.hold, func() { o.expire(conv, s) })
		}
		return
	}
	s.deliver(ev)
	s.last = seq
	if s.drain() && s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// drain hands on the held messages that follow the last one without a
// hole, and says whether none is left. Called with the order's lock held.
func (s *seqStream) drain() bool {
	for len(s.held) > 0 {
		next, ok := s.held[s.last+1]
		if !ok {
			return false
		}
		delete(s.held, s.last+1)
		s.deliver(next)
		s.last++
	}
	return true
}

// expire runs when a hold ran out: it reads the missing seqs from the
// store and hands on everything held, in seq order.
func (o *seqOrder) expire(conv string, s *seqStream) {
	o.mu.Lock()
	s.timer = nil
	if len(s.held) == 0 {
		o.mu.Unlock()
		return
	}
	from, to := s.last, s.last
	for seq := range s.held {
		to = max(to, seq)
	}
	o.mu.Unlock()

	missing, _ := o.fetch(conv, from, to) // off the lock: arrivals go on meanwhile

	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, ev := range missing {
		if seq := ev.Message.Seq; seq > s.last && s.held[seq] == nil {
			s.held[seq] = ev
			n++
		}
	}
	o.count("filled", n)
	if s.drain() {
		return
	}
	// Still a hole before to (the store could not be read): hand on what
	// is held up to it, in seq order; the device fills the hole with sync.
	for len(s.held) > 0 {
		lowest := int64(-1)
		for seq := range s.held {
			if lowest < 0 || seq < lowest {
				lowest = seq
			}
		}
		if lowest > to {
			break
		}
		o.count("released", 1)
		s.deliver(s.held[lowest])
		delete(s.held, lowest)
		s.last = lowest
		s.drain()
	}
	if len(s.held) > 0 && s.timer == nil { // arrived during the read, past a new hole
		s.timer = time.AfterFunc(o.hold, func() { o.expire(conv, s) })
	}
}

// sweep forgets idle streams, at most every streamIdle. Called with o.mu held.
func (o *seqOrder) sweep(now time.Time) {
	if now.Sub(o.swept) < streamIdle {
		return
	}
	o.swept = now
	for owner, convs := range o.streams {
		for conv, s := range convs {
			if len(s.held) == 0 && now.Sub(s.touched) > streamIdle {
				delete(convs, conv)
			}
		}
		if len(convs) == 0 {
			delete(o.streams, owner)
		}
	}
}
