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
// out in seq order.
//
// An idle socket costs little: the queue grows on demand and holds no memory
// while empty, and no goroutine waits on it. The writer goroutine is started
// when frames arrive and ends when it has drained the queue, so a burst of
// frames is written together (one write) by one short-lived goroutine.
type outQueue struct {
	mu      sync.Mutex
	frames  [][]byte
	held    [][]byte
	holding bool
	closed  bool
	paused  bool   // no writer is started until start
	writing bool   // a writer goroutine is running
	limit   int    // most frames queued before a live delivery fails
	writer  func() // the writer goroutine's body
	// wake is closed (and forgotten) when the writer takes frames or the
	// queue closes; made only when a reply waits for room.
	wake chan struct{}
}

// newOutQueue returns a paused queue whose writer, once started, runs writer
// in its own goroutine; writer drains the queue with take.
func newOutQueue(limit int, writer func()) *outQueue {
	return &outQueue{limit: limit, writer: writer, paused: true}
}

// wakeWaiters releases replies waiting for room. Called with q.mu held.
func (q *outQueue) wakeWaiters() {
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
}

// kick starts the writer if frames wait and none runs. Called with q.mu held.
func (q *outQueue) kick() {
	if !q.writing && !q.paused && !q.closed && len(q.frames) > 0 {
		q.writing = true
		go q.writer()
	}
}

// start lets the writer run (after the socket is registered).
func (q *outQueue) start() {
	q.mu.Lock()
	q.paused = false
	q.kick()
	q.mu.Unlock()
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
	q.kick()
	return true
}

// pushFinal queues frames after everything queued, ignoring the limit (the
// last frame and close marker of a closing socket).
func (q *outQueue) pushFinal(frames ...[]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.frames = append(q.frames, frames...)
	q.kick()
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
			q.kick()
			q.mu.Unlock()
			return true
		}
		if q.wake == nil {
			q.wake = make(chan struct{})
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
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
		q.kick()
	}
	q.mu.Unlock()
}

// take hands the writer everything queued, swapping in buf (emptied) for
// reuse. When nothing is queued (or the queue closed) it returns nil and the
// writer must end: the next frame starts a new one.
func (q *outQueue) take(buf [][]byte) [][]byte {
	q.mu.Lock()
	if len(q.frames) == 0 || q.closed {
		q.writing = false
		q.mu.Unlock()
		return nil
	}
	frames := q.frames
	q.frames = buf[:0]
	if cap(q.frames) > 64 {
		q.frames = nil // let a burst's big slice go
	}
	q.wakeWaiters()
	q.mu.Unlock()
	return frames
}

// close stops the queue; pending replies give up.
func (q *outQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.frames, q.held = nil, nil
		q.wakeWaiters()
	}
}
