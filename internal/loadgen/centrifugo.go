package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The Centrifugo driver: the same sockets, schedule and histograms as for
// Parley, spoken in Centrifugo's JSON client protocol (v2, Centrifugo v5 and
// v6) over WebSocket at /connection/websocket. A socket connects with a JWT
// (command id 1), subscribes to its own channel (id 2) and publishes into the
// receiver's channel (ids from 3 up). The publish reply is the ack; the
// publication pushed to the receiver is the delivery. The server may batch
// several replies into one frame, one JSON object per line, and sends an
// empty object as a ping that the client answers with an empty object.

const (
	cfConnectID   = 1
	cfSubscribeID = 2
	cfFirstID     = 3
)

// cfState is a Centrifugo socket's command ids and the stamps of its
// publishes waiting for a reply.
type cfState struct {
	next    atomic.Uint32
	mu      sync.Mutex
	pending map[uint32]int64
}

// centrifugoWS is the WebSocket endpoint of a Centrifugo at base.
func centrifugoWS(base string) string {
	u := wsURL(base)
	return u[:len(u)-len("/api/v1/ws")] + "/connection/websocket"
}

// centrifugoConnect resets the socket's command state for a new
// connection and returns its connect command.
func (s *socket) centrifugoConnect() []byte {
	s.cf.mu.Lock()
	s.cf.pending = map[uint32]int64{}
	s.cf.mu.Unlock()
	s.cf.next.Store(cfFirstID - 1)
	return fmt.Appendf(nil, `{"id":%d,"connect":{"token":%q,"name":"parley-bench"}}`, cfConnectID, s.spec.Token)
}

// appendPublish appends a publish of a size-byte body stamped with stamp
// into channel, and remembers the stamp for the reply.
func (s *socket) appendPublish(b []byte, channel string, stamp int64, size int) []byte {
	id := s.cf.next.Add(1)
	s.cf.mu.Lock()
	s.cf.pending[id] = stamp
	s.cf.mu.Unlock()
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"publish":{"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","data":"`...)
	b = appendContent(b, stamp, size)
	return append(b, `"}}`...)
}

var (
	cfPing      = []byte(`{}`)
	cfPush      = []byte(`"push":{`)
	cfError     = []byte(`"error":{`)
	cfIDPrefix  = []byte(`{"id":`)
	cfDataField = "data"
)

// handleCentrifugo processes one server frame: one or more replies or
// pushes, a line each.
func (s *socket) handleCentrifugo(frame []byte) {
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			s.cfLine(line)
		}
	}
}

func (s *socket) cfLine(line []byte) {
	w := s.w
	switch {
	case bytes.Equal(line, cfPing):
		w.count("pongs", 1)
		s.cfWrite(cfPing)
	case bytes.Contains(line, cfPush):
		if !bytes.Contains(line, []byte(`"pub":{`)) {
			w.count("other_frames", 1)
			return
		}
		now := time.Now()
		w.lastDelivery.Store(now.UnixNano())
		w.count("delivered", 1)
		if at, ok := sentAtFromContent(stringField(line, cfDataField)); ok {
			w.hist("delivery").Record(since(at, now))
		}
	case bytes.HasPrefix(line, cfIDPrefix):
		rest := line[len(cfIDPrefix):]
		end := bytes.IndexAny(rest, ",}")
		if end < 0 {
			w.count("other_frames", 1)
			return
		}
		id, ok := parseInt(rest[:end])
		if !ok {
			w.count("other_frames", 1)
			return
		}
		if bytes.Contains(line, cfError) {
			w.count("errors", 1)
			w.noteErr(fmt.Errorf("centrifugo error reply: %.200s", line))
			if id >= cfFirstID {
				s.cfTake(uint32(id))
			}
			return
		}
		s.cfReply(uint32(id), time.Now())
	default:
		w.count("other_frames", 1)
	}
}

// cfReply handles the successful reply to command id.
func (s *socket) cfReply(id uint32, now time.Time) {
	switch id {
	case cfConnectID:
		sub := fmt.Appendf(nil, `{"id":%d,"subscribe":{"channel":%q}}`, cfSubscribeID, s.spec.User)
		s.cfWrite(sub)
	case cfSubscribeID:
		s.signalReady()
	default:
		if at, ok := s.cfTake(id); ok {
			s.noteAck(at, true, now)
		}
	}
}

// cfTake removes and returns the stamp of publish id.
func (s *socket) cfTake(id uint32) (int64, bool) {
	s.cf.mu.Lock()
	defer s.cf.mu.Unlock()
	at, ok := s.cf.pending[id]
	delete(s.cf.pending, id)
	return at, ok
}

// cfWrite writes a frame even before the socket counts as open (the
// handshake and pongs).
func (s *socket) cfWrite(frame []byte) {
	s.mu.Lock()
	ws := s.ws
	s.mu.Unlock()
	if ws == nil {
		return
	}
	if err := ws.Write(context.Background(), websocket.MessageText, frame); err != nil {
		s.w.noteErr(err)
	}
}
