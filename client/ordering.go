package client

import (
	"maps"
	"slices"
)

// fillPageLimit is the page size of gap fills (the server's maximum).
const fillPageLimit = 200

// maxFillStalls is how many fill rounds in a row may fail or make no
// progress before the sequencer gives up on a gap and releases what it holds.
const maxFillStalls = 6

// fillRequest asks for the messages of a conversation after a seq, over REST.
type fillRequest struct {
	ConversationID string
	After          int64
}

// convSeq is the ordering state of one conversation.
type convSeq struct {
	// known is set once the conversation has a baseline: an initial cursor, or
	// the first message seen for it (see sequencer).
	known bool
	// delivered is the highest seq released to the app; every seq up to it
	// was released exactly once (or skipped after a failed fill).
	delivered int64
	// pending holds messages that arrived ahead of a gap, keyed by seq.
	pending map[int64]Message
	// target is a seq the server says exists (sync_complete, truncated); a
	// fill runs while delivered < target. 0: none.
	target  int64
	filling bool
	stalls  int
}

// sequencer turns the arrivals of messages (live, from sync, from fills, in
// any order, with duplicates) into exactly-once, in-order releases per
// conversation, and says when a gap must be filled over REST. It does no I/O
// and no locking: the Client calls it under a mutex.
//
// Rules:
//   - a message with seq <= delivered is a duplicate and is dropped;
//   - seq == delivered+1 is released, then every held message that is now
//     contiguous;
//   - seq > delivered+1 is held, and a fill after=delivered is requested,
//     except while a sync is in flight (the sync will bring the missing
//     messages; gaps left at sync_complete are filled then);
//   - a conversation without a cursor takes its first message as baseline;
//     during a sync its messages are held and the baseline is the lowest seq
//     held when sync_complete arrives (so a live push racing the sync's
//     backlog is not mistaken for the start).
type sequencer struct {
	convs   map[string]*convSeq
	syncing bool
}

func newSequencer(cursors map[string]int64) *sequencer {
	s := &sequencer{convs: make(map[string]*convSeq), syncing: true}
	for id, seq := range cursors {
		if id == "" || seq < 0 {
			continue
		}
		s.convs[id] = &convSeq{known: true, delivered: seq}
	}
	return s
}

func (s *sequencer) conv(id string) *convSeq {
	st := s.convs[id]
	if st == nil {
		st = &convSeq{}
		s.convs[id] = st
	}
	return st
}

// beginSync marks a sync as in flight (called on every (re)connect).
func (s *sequencer) beginSync() { s.syncing = true }

// cursors returns the highest contiguous seq released per known conversation:
// the cursors of a sync frame.
func (s *sequencer) cursors() map[string]int64 {
	out := make(map[string]int64, len(s.convs))
	for id, st := range s.convs {
		if st.known {
			out[id] = st.delivered
		}
	}
	return out
}

// delivered returns the cursor of one conversation.
func (s *sequencer) deliveredSeq(id string) (int64, bool) {
	st := s.convs[id]
	if st == nil || !st.known {
		return 0, false
	}
	return st.delivered, true
}

// push handles a message from the socket (new_message, or an own message
// rebuilt from its ack). It returns the messages to release, in order, and
// the fills to start.
func (s *sequencer) push(m Message) (out []Message, fills []fillRequest) {
	if m.ConversationID == "" || m.Seq <= 0 {
		return nil, nil
	}
	st := s.conv(m.ConversationID)
	if !st.known {
		if s.syncing {
			s.hold(st, m)
			return nil, nil
		}
		st.known = true
		st.delivered = m.Seq - 1
		if mn, ok := minKey(st.pending); ok && mn-1 < st.delivered {
			st.delivered = mn - 1
		}
	}
	out = s.accept(st, m, nil)
	if f, ok := s.maybeFill(m.ConversationID, st); ok {
		fills = append(fills, f)
	}
	return out, fills
}

// syncComplete ends the sync in flight: it sets the baseline of the
// conversations first seen during the sync, notes how far each conversation
// goes, and requests fills for every gap left (truncated conversations
// included).
func (s *sequencer) syncComplete(sc SyncComplete) (out []Message, fills []fillRequest) {
	s.syncing = false
	for _, id := range slices.Sorted(maps.Keys(s.convs)) {
		st := s.convs[id]
		if st.known {
			continue
		}
		if mn, ok := minKey(st.pending); ok {
			st.known, st.delivered = true, mn-1
		} else if last, ok := sc.Conversations[id]; ok {
			st.known, st.delivered = true, last
		}
	}
	for id, last := range sc.Conversations {
		if id == "" {
			continue
		}
		st := s.conv(id)
		if !st.known {
			st.known, st.delivered = true, last
		}
		if last > st.target {
			st.target = last
		}
	}
	for _, id := range sc.Truncated {
		if id == "" {
			continue
		}
		st := s.conv(id)
		if !st.known {
			st.known = true // baseline 0: fill from the start
		}
		if st.target <= st.delivered {
			st.target = st.delivered + 1 // at least one fill round
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.convs)) {
		st := s.convs[id]
		if !st.known {
			continue
		}
		out = s.drain(st, out)
		if f, ok := s.maybeFill(id, st); ok {
			fills = append(fills, f)
		}
	}
	return out, fills
}

// fillPage applies one page of a fill (GET ...?after=S, oldest first). It
// returns the messages to release, the next fill to run (nil: the fill is
// over) and whether the page made no progress (the caller should back off
// before the next round; with next nil: the gap was given up).
func (s *sequencer) fillPage(id string, page []Message, hasMore bool) (out []Message, next *fillRequest, stalled bool) {
	st := s.conv(id)
	st.known = true
	before := st.delivered
	page = slices.Clone(page)
	slices.SortStableFunc(page, func(a, b Message) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for _, m := range page {
		if m.Seq <= 0 {
			continue
		}
		if m.ConversationID == "" {
			m.ConversationID = id
		}
		out = s.accept(st, m, out)
	}
	if !hasMore {
		st.target = 0 // the server has nothing after this page
	}
	if len(st.pending) == 0 && !hasMore && st.target <= st.delivered {
		st.filling, st.stalls, st.target = false, 0, 0
		return out, nil, false
	}
	if st.delivered > before {
		st.stalls = 0
		st.filling = true
		return out, &fillRequest{ConversationID: id, After: st.delivered}, false
	}
	st.stalls++
	if st.stalls >= maxFillStalls {
		return s.giveUp(st, out), nil, true
	}
	st.filling = true
	return out, &fillRequest{ConversationID: id, After: st.delivered}, true
}

// fillFailed records a failed fill round. A permanent failure (such as 403
// after leaving a group), or too many failures in a row, gives up on the gap:
// the held messages are released after it. Otherwise the caller retries next
// after a backoff.
func (s *sequencer) fillFailed(id string, permanent bool) (out []Message, next *fillRequest) {
	st := s.conv(id)
	st.stalls++
	if permanent || st.stalls >= maxFillStalls {
		return s.giveUp(st, nil), nil
	}
	st.filling = true
	return nil, &fillRequest{ConversationID: id, After: st.delivered}
}

// fillAborted clears the filling flag of a fill that was cancelled.
func (s *sequencer) fillAborted(id string) {
	if st := s.convs[id]; st != nil {
		st.filling = false
	}
}

// giveUp abandons a gap: delivered jumps to just before the lowest held
// message and the contiguous held messages are released.
func (s *sequencer) giveUp(st *convSeq, out []Message) []Message {
	st.filling, st.stalls, st.target = false, 0, 0
	if mn, ok := minKey(st.pending); ok && mn-1 > st.delivered {
		st.delivered = mn - 1
	}
	return s.drain(st, out)
}

func (s *sequencer) hold(st *convSeq, m Message) {
	if st.pending == nil {
		st.pending = make(map[int64]Message)
	}
	if _, dup := st.pending[m.Seq]; !dup {
		st.pending[m.Seq] = m
	}
}

// accept releases m if it is next, holds it if it is ahead, drops it if it
// is a duplicate.
func (s *sequencer) accept(st *convSeq, m Message, out []Message) []Message {
	switch {
	case m.Seq <= st.delivered:
		return out // duplicate
	case m.Seq == st.delivered+1:
		out = append(out, m)
		st.delivered = m.Seq
		return s.drain(st, out)
	default:
		s.hold(st, m)
		return out
	}
}

// drain releases the held messages that are contiguous with delivered and
// discards held duplicates.
func (s *sequencer) drain(st *convSeq, out []Message) []Message {
	for len(st.pending) > 0 {
		m, ok := st.pending[st.delivered+1]
		if !ok {
			break
		}
		delete(st.pending, m.Seq)
		out = append(out, m)
		st.delivered = m.Seq
	}
	for seq := range st.pending {
		if seq <= st.delivered {
			delete(st.pending, seq)
		}
	}
	if st.target != 0 && st.target <= st.delivered {
		st.target = 0
	}
	return out
}

func (s *sequencer) maybeFill(id string, st *convSeq) (fillRequest, bool) {
	if s.syncing || st.filling || !st.known {
		return fillRequest{}, false
	}
	if len(st.pending) == 0 && st.target <= st.delivered {
		return fillRequest{}, false
	}
	st.filling = true
	return fillRequest{ConversationID: id, After: st.delivered}, true
}

func minKey(m map[int64]Message) (int64, bool) {
	first := true
	var mn int64
	for k := range m {
		if first || k < mn {
			mn, first = k, false
		}
	}
	return mn, !first
}
