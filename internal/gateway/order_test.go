package gateway

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

type orderSink struct {
	mu       sync.Mutex
	got      []int64
	counts   sync.Map       // outcome → *atomic.Int32
	store    map[int64]bool // seqs the fetch finds
	fetchErr error
}

func (s *orderSink) count(outcome string, n int) {
	v, _ := s.counts.LoadOrStore(outcome, new(atomic.Int32))
	v.(*atomic.Int32).Add(int32(n))
}

func (s *orderSink) counted(outcome string) int32 {
	v, ok := s.counts.Load(outcome)
	if !ok {
		return 0
	}
	return v.(*atomic.Int32).Load()
}

func (s *orderSink) fetch(_ string, from, to int64) ([]*chat.Event, error) {
	if s.fetchErr != nil {
		return nil, s.fetchErr
	}
	var evs []*chat.Event
	for seq := from + 1; seq < to; seq++ {
		if s.store[seq] {
			evs = append(evs, msgEvent(seq))
		}
	}
	return evs, nil
}

func (s *orderSink) deliver(ev *chat.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, ev.Message.Seq)
}

func (s *orderSink) seqs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func newTestOrder(hold time.Duration, s *orderSink) *seqOrder {
	return newSeqOrder(hold, s.fetch, s.count)
}

func msgEvent(seq int64) *chat.Event {
	return &chat.Event{Kind: chat.EventMessage, Message: &chat.Message{ConversationID: "c", Seq: seq}}
}

// TestSeqOrderPutsOvertakersBack: messages arriving 1 3 2 5 4 6 leave as
// 1..6, without waiting for the hold.
func TestSeqOrderPutsOvertakersBack(t *testing.T) {
	s := &orderSink{}
	o := newTestOrder(time.Hour, s)
	for _, seq := range []int64{1, 3, 2, 5, 4, 6} {
		o.admit("u/c", msgEvent(seq), s.deliver)
	}
	if got := s.seqs(); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("delivered %v", got)
	}
	if s.counted("held") != 2 || s.counted("filled") != 0 || s.counted("released") != 0 {
		t.Fatalf("held %d, filled %d, released %d", s.counted("held"), s.counted("filled"), s.counted("released"))
	}
	// A second key is a stream of its own, starting where it starts.
	o.admit("v/c", msgEvent(40), s.deliver)
	if got := s.seqs(); got[len(got)-1] != 40 {
		t.Fatalf("a new stream's first message was held: %v", got)
	}
}

// waitSeqs waits until n messages were handed on, and checks the hold was
// respected.
func waitSeqs(t *testing.T, s *orderSink, n int, start time.Time, hold time.Duration) []int64 {
	t.Helper()
	for len(s.seqs()) < n {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("held messages never handed on: %v", s.seqs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if time.Since(start) < hold {
		t.Fatalf("handed on after %v, before the hold of %v", time.Since(start), hold)
	}
	return s.seqs()
}

// TestSeqOrderFillsFromTheStore: a seq lost on the bus is read from the
// store once the hold runs out, and goes in its place.
func TestSeqOrderFillsFromTheStore(t *testing.T) {
	const hold = 300 * time.Millisecond
	s := &orderSink{store: map[int64]bool{2: true, 3: true}}
	o := newTestOrder(hold, s)
	start := time.Now()
	for _, seq := range []int64{1, 4, 5} { // 2 and 3 are lost
		o.admit("u/c", msgEvent(seq), s.deliver)
	}
	if got := s.seqs(); !slices.Equal(got, []int64{1}) {
		t.Fatalf("delivered %v before the hold ran out", got)
	}
	if got := waitSeqs(t, s, 5, start, hold); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("delivered %v", got)
	}
	if s.counted("held") != 2 || s.counted("filled") != 2 || s.counted("released") != 0 {
		t.Fatalf("held %d, filled %d, released %d", s.counted("held"), s.counted("filled"), s.counted("released"))
	}
}

// TestSeqOrderReleasesWhenTheStoreFails: with the store unreadable too, the
// held messages go on in order after the hold; a late arrival still goes.
func TestSeqOrderReleasesWhenTheStoreFails(t *testing.T) {
	const hold = 300 * time.Millisecond
	s := &orderSink{fetchErr: errors.New("store down")}
	o := newTestOrder(hold, s)
	start := time.Now()
	for _, seq := range []int64{1, 4, 3} { // 2 is lost
		o.admit("u/c", msgEvent(seq), s.deliver)
	}
	if got := waitSeqs(t, s, 3, start, hold); !slices.Equal(got, []int64{1, 3, 4}) {
		t.Fatalf("delivered %v", got)
	}
	o.admit("u/c", msgEvent(2), s.deliver) // the lost one, late
	o.admit("u/c", msgEvent(5), s.deliver)
	if got := s.seqs(); !slices.Equal(got, []int64{1, 3, 4, 2, 5}) {
		t.Fatalf("delivered %v", got)
	}
	if s.counted("released") != 1 { // 3 went on with 2 missing; 4 then followed 3
		t.Fatalf("released %d, want 1", s.counted("released"))
	}
}
