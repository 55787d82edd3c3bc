package gateway

import (
	"context"
	"sync"
)

// outQueue is a socket's bounded send queue. Producers never block on it: a
// live delivery that finds it over its limit fails (the socket is then closed
// as slow), while the connection's own replies wait for room (backpressure on
// the client's own requests). While held (during a sync) live deliveries are
// parked and released after the sync frames, so a conversation's messages go
// out in seq order. It grows on demand and holds no memory while empty, so an
// idle socket costs little.
type outQueue struct {
	mu       sync.Mutex
	frames   [][]byte
	held     [][]byte
	holding  bool
	closed   bool
	limit    int           // most frames queued before a live delivery fails
	ready    chan struct{} // signalled when frames were added (cap 1)
	drained  chan struct{} // signalled when the writer took frames (cap 1)
	closedCh chan struct{}
}

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, ready: make(chan struct{}, 1), drained: make(chan struct{}, 1), closedCh: make(chan struct{})}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push queues a live delivery; false means the queue overflowed (or closed).
func (q *outQueue) push(frame []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return true // the socket is going away; dropping is not an overflow
	}
	if q.holding {
		if len(q.held) >= q.limit {
			return false
		}
		q.held = append(q.held, frame)
		return true
	}
	if len(q.frames) >= q.limit {
		return false
	}
	q.frames = append(q.frames, frame)
	signal(q.ready)
	return true
}

// reply queues one of the connection's own frames, waiting while the queue is
// over half its limit. It fails only when ctx ends or the queue closes.
func (q *outQueue) reply(ctx context.Context, frame []byte) bool {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return false
		}
		if len(q.frames) < q.limit/2 {
			q.frames = append(q.frames, frame)
			signal(q.ready)
			q.mu.Unlock()
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.drained:
		case <-q.closedCh:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// hold parks live deliveries until release.
func (q *outQueue) hold() {
	q.mu.Lock()
	q.holding = true
	q.mu.Unlock()
}

// release appends the parked deliveries after what is queued.
func (q *outQueue) release() {
	q.mu.Lock()
	q.holding = false
	if len(q.held) > 0 {
		q.frames = append(q.frames, q.held...)
		q.held = nil
		signal(q.ready)
	}
	q.mu.Unlock()
}

// take hands the writer everything queued, swapping in buf (emptied) for reuse.
func (q *outQueue) take(buf [][]byte) [][]byte {
	q.mu.Lock()
	frames := q.frames
	q.frames = buf[:0]
	if cap(q.frames) > 64 {
		q.frames = nil // let a burst's big slice go
	}
	q.mu.Unlock()
	signal(q.drained)
	return frames
}

// close stops the queue; pending replies give up.
func (q *outQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.frames, q.held = nil, nil
		close(q.closedCh)
	}
}
