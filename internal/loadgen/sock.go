package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// socket is one generator WebSocket: a read goroutine that classifies frames
// and records latencies, and writes from whoever sends.
type socket struct {
	w      *Worker
	idx    int
	spec   SockSpec
	prefix string // of this socket's message ids

	mu   sync.Mutex // guards ws, nc
	ws   *websocket.Conn
	nc   net.Conn // the TCP connection, to drop it abruptly
	gen  int      // connection generation; stale read loops ignore their end
	open atomic.Bool

	next   atomic.Uint64 // message counter
	conv   atomic.Uint64 // round-robin index into spec.Convs
	acked  atomic.Int64  // acks received (burst flow control)
	ackSig chan struct{} // signalled on each ack (burst)

	// sync: the waiter of the running sync, if any.
	syncMu   sync.Mutex
	syncDone chan struct{}
	syncMsgs int
	// readyCh receives the ready frame's arrival once per connection.
	readyCh chan struct{}
	// cursors, when set, replace spec.Cursors in sync requests; learnBack >=
	// 0 makes the next sync_complete set them to last_seq - learnBack.
	cursors   map[string]int64
	learnBack int64
	// cf is the command state of a Centrifugo socket.
	cf cfState
}

// connDialer keeps the TCP connection of each dial, so that a socket can be
// dropped without a close handshake (as a lost network would).
type connKey struct{}

func newHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				if p, ok := ctx.Value(connKey{}).(*net.Conn); ok {
					*p = c
				}
			}
			return c, err
		},
		MaxIdleConnsPerHost: -1,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

func wsURL(base string) string {
	switch {
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimPrefix(base, "https://") + "/api/v1/ws"
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimPrefix(base, "http://") + "/api/v1/ws"
	}
	return base + "/api/v1/ws"
}

// dial opens the socket and waits for its ready frame (for Centrifugo: the
// replies to its connect and subscribe commands).
func (s *socket) dial(ctx context.Context) error {
	h := http.Header{}
	var hello []byte
	if s.w.job.Proto == ProtoCentrifugo {
		hello = s.centrifugoConnect()
	} else {
		h.Set("Authorization", "Bearer "+s.spec.Token)
	}
	ws, ready, err := s.connect(ctx, h)
	if err != nil {
		return err
	}
	if hello != nil {
		if err := ws.Write(ctx, websocket.MessageText, hello); err != nil {
			ws.CloseNow()
			return fmt.Errorf("connect command: %w", err)
		}
	}
	select {
	case <-ready:
		s.open.Store(true)
		return nil
	case <-ctx.Done():
		ws.CloseNow()
		return fmt.Errorf("not ready: %w", ctx.Err())
	}
}

// connect opens the WebSocket, makes it the socket's current connection and
// starts its read loop; the channel receives the handshake's end.
func (s *socket) connect(ctx context.Context, h http.Header) (*websocket.Conn, chan struct{}, error) {
	var nc net.Conn
	dctx := context.WithValue(ctx, connKey{}, &nc)
	ws, resp, err := websocket.Dial(dctx, s.w.wsURLs[s.spec.Node], &websocket.DialOptions{
		HTTPClient:      s.w.client,
		HTTPHeader:      h,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, nil, fmt.Errorf("dial: HTTP %d", resp.StatusCode)
		}
		return nil, nil, fmt.Errorf("dial: %w", unwrapNet(err))
	}
	ws.SetReadLimit(8 << 20)
	ready := make(chan struct{}, 1)
	s.mu.Lock()
	s.ws, s.nc = ws, nc
	s.gen++
	gen := s.gen
	s.readyCh = ready
	s.mu.Unlock()
	go s.readLoop(ws, gen)
	return ws, ready, nil
}

func unwrapNet(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}

// write sends one frame; false if the socket is not open.
func (s *socket) write(frame []byte) bool {
	s.mu.Lock()
	ws := s.ws
	s.mu.Unlock()
	if ws == nil || !s.open.Load() {
		return false
	}
	if err := ws.Write(context.Background(), websocket.MessageText, frame); err != nil {
		s.w.count("write_errors", 1)
		s.w.noteErr(err)
		return false
	}
	return true
}

// drop closes the TCP connection abruptly (no close frame).
func (s *socket) drop() {
	s.mu.Lock()
	nc, ws := s.nc, s.ws
	s.ws, s.nc = nil, nil
	s.open.Store(false)
	s.mu.Unlock()
	if nc != nil {
		_ = nc.Close()
	}
	if ws != nil {
		ws.CloseNow()
	}
}

// close ends the socket with a normal close handshake.
func (s *socket) close() {
	s.mu.Lock()
	ws := s.ws
	s.ws, s.nc = nil, nil
	s.open.Store(false)
	s.mu.Unlock()
	if ws != nil {
		go func() { _ = ws.Close(websocket.StatusNormalClosure, "") }()
	}
}

// readLoop reads frames until the connection ends. It passes a context
// without deadline to the library, which then arms no timer per read.
func (s *socket) readLoop(ws *websocket.Conn, gen int) {
	var buf bytes.Buffer
	ctx := context.Background()
	for {
		typ, r, err := ws.Reader(ctx)
		if err != nil {
			s.ended(gen, err)
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			s.ended(gen, err)
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		if s.w.job.Proto == ProtoCentrifugo {
			s.handleCentrifugo(buf.Bytes())
		} else {
			s.handle(buf.Bytes())
		}
		if buf.Cap() > 64<<10 {
			buf = bytes.Buffer{} // let a big frame's buffer go
		}
	}
}

func (s *socket) ended(gen int, err error) {
	s.mu.Lock()
	current := s.gen == gen && s.ws != nil
	if current {
		s.ws, s.nc = nil, nil
	}
	s.mu.Unlock()
	if !current {
		return // dropped or closed on purpose
	}
	s.open.Store(false)
	s.w.count("closed", 1)
	if st := websocket.CloseStatus(err); st != -1 {
		s.w.noteErr(fmt.Errorf("server closed the socket: %d", st))
	} else if !errors.Is(err, io.EOF) {
		s.w.noteErr(err)
	}
	s.finishSync()
}

// handle processes one server frame.
func (s *socket) handle(f []byte) {
	w := s.w
	switch frameType(f) {
	case kindNewMessage:
		now := time.Now()
		w.lastDelivery.Store(now.UnixNano())
		w.count("delivered", 1)
		s.syncMu.Lock()
		syncing := s.syncDone != nil
		if syncing {
			s.syncMsgs++
		}
		s.syncMu.Unlock()
		if syncing {
			return // an old message replayed by sync: no latency
		}
		if at, ok := sentAtFromContent(stringField(f, "content")); ok {
			d := since(at, now)
			w.hist("delivery").Record(d)
			if w.trackLast.Load() {
				w.noteLast(stringField(f, "client_message_id"), d)
			}
		}
	case kindAck:
		at, ok := sentAtFromID(stringField(f, "message_id"))
		s.noteAck(at, ok, time.Now())
	case kindSyncComplete:
		s.learnCursors(f)
		s.finishSync()
	case kindReady:
		s.signalReady()
	case kindPong:
		w.count("pongs", 1)
	case kindError:
		w.count("errors", 1)
		w.noteErr(fmt.Errorf("error frame: %.200s", f))
	default:
		w.count("other_frames", 1)
	}
}

// noteAck counts an ack and records its latency from the stamp at (when
// known), and wakes a burst waiting for it.
func (s *socket) noteAck(at int64, known bool, now time.Time) {
	s.w.count("acked", 1)
	if known {
		s.w.hist("ack").Record(since(at, now))
	}
	s.acked.Add(1)
	select {
	case s.ackSig <- struct{}{}:
	default:
	}
}

// signalReady ends the connection's handshake (once).
func (s *socket) signalReady() {
	s.mu.Lock()
	ch := s.readyCh
	s.readyCh = nil
	s.mu.Unlock()
	if ch != nil {
		ch <- struct{}{}
	}
}

// learnCursors sets the socket's cursors from a sync_complete when asked.
func (s *socket) learnCursors(f []byte) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.learnBack < 0 {
		return
	}
	var sc struct {
		Conversations map[string]int64 `json:"conversations"`
	}
	if json.Unmarshal(f, &sc) != nil {
		return
	}
	s.cursors = make(map[string]int64, len(sc.Conversations))
	for id, last := range sc.Conversations {
		s.cursors[id] = max(0, last-s.learnBack)
	}
	s.learnBack = -1
}

// syncCursors returns the cursors to sync with.
func (s *socket) syncCursors() map[string]int64 {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.cursors != nil {
		return s.cursors
	}
	return s.spec.Cursors
}

// startSync arms the sync waiter and returns its channel.
func (s *socket) startSync() chan struct{} {
	ch := make(chan struct{})
	s.syncMu.Lock()
	s.syncDone, s.syncMsgs = ch, 0
	s.syncMu.Unlock()
	return ch
}

// finishSync releases the sync waiter, if any.
func (s *socket) finishSync() {
	s.syncMu.Lock()
	ch := s.syncDone
	s.syncDone = nil
	n := s.syncMsgs
	s.syncMu.Unlock()
	if ch != nil {
		s.w.count("sync_msgs", uint64(n))
		close(ch)
	}
}
