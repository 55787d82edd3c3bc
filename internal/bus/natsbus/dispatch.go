package natsbus

import (
	"encoding/json"
	"hash/maphash"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/internal/chat"
)

// Delivery without a goroutine per subscription. nats.go runs one goroutine
// for every callback subscription, and a node holds one subscription per
// user with a socket on it: 10,000 idle users would be 10,000 parked
// goroutines (2 KB of stack and more each). Instead every subscription is a
// channel subscription into one of a few shared channels; a dispatcher
// goroutine per channel moves each message onto its subscription's own
// bounded queue, and a drain goroutine runs the handler for that queue only
// while it holds messages. A subscription's events still reach its handler
// one at a time and in arrival order, and a handler that blocks holds up
// only its own subscription, whose queue then overflows (counted in Dropped)
// while the others go on.

// dispatchShards is how many shared channels (and dispatchers) a bus has.
const dispatchShards = 4

// dispatchBuffer is each shared channel's capacity. Dispatchers never wait,
// so it only absorbs bursts; a full one drops (counted by nats.go, summed in
// Dropped).
const dispatchBuffer = 1 << 14

type dispatcher struct {
	seed   maphash.Seed
	shards [dispatchShards]chan *nats.Msg
	stop   chan struct{}
	loops  sync.WaitGroup // dispatchers
	drains sync.WaitGroup // drain goroutines running
}

// subscription is one Subscribe: its handler and the events waiting for it.
type subscription struct {
	b       *Bus
	h       func(*chat.Event)
	mu      sync.Mutex
	queue   []*nats.Msg
	bytes   int
	running bool // a drain goroutine owns the queue
	closed  bool
}

func (d *dispatcher) start(b *Bus) {
	d.seed = maphash.MakeSeed()
	d.stop = make(chan struct{})
	for i := range d.shards {
		d.shards[i] = make(chan *nats.Msg, dispatchBuffer)
		d.loops.Add(1)
		go d.run(b, d.shards[i])
	}
}

// shard returns the shared channel of a subject.
func (d *dispatcher) shard(subject string) chan *nats.Msg {
	return d.shards[maphash.String(d.seed, subject)%dispatchShards]
}

// run moves the messages of one shared channel onto their subscriptions'
// queues until stop, then what is left in the channel.
func (d *dispatcher) run(b *Bus, ch chan *nats.Msg) {
	defer d.loops.Done()
	for {
		select {
		case m := <-ch:
			b.route(m)
		case <-d.stop:
			for {
				select {
				case m := <-ch:
					b.route(m)
				default:
					return
				}
			}
		}
	}
}

// route queues m for its subscription.
func (b *Bus) route(m *nats.Msg) {
	b.mu.RLock()
	s := b.subs[m.Sub]
	b.mu.RUnlock()
	if s != nil {
		s.push(m)
	}
}

// push queues m, starting the drain goroutine if none runs; past the
// pending limits m is dropped and counted.
func (s *subscription) push(m *nats.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.queue) >= s.b.opts.PendingMsgs || s.bytes+len(m.Data) > s.b.opts.PendingBytes {
		if s.b.overflow.Add(1) == 1 || s.b.overflow.Load()%1024 == 0 {
			s.b.log.Warn("bus subscriber too slow, events dropped", "subject", m.Subject, "dropped", s.b.overflow.Load())
		}
		return
	}
	s.queue = append(s.queue, m)
	s.bytes += len(m.Data)
	if !s.running {
		s.running = true
		s.b.disp.drains.Add(1)
		go s.drain()
	}
}

// drain runs the handler for each queued event, in order, and ends when
// the queue is empty.
func (s *subscription) drain() {
	defer s.b.disp.drains.Done()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.closed {
			s.queue, s.bytes, s.running = nil, 0, false
			s.mu.Unlock()
			return
		}
		m := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.bytes -= len(m.Data)
		s.mu.Unlock()
		ev := new(chat.Event)
		if err := json.Unmarshal(m.Data, ev); err != nil {
			s.b.log.Warn("bus event does not decode", "subject", m.Subject, "err", err)
			continue
		}
		s.h(ev)
	}
}

// close drops what the subscription still holds; a running handler call
// finishes.
func (s *subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.queue, s.bytes = nil, 0
	s.mu.Unlock()
}
