package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Frames the generator writes are built by hand (appends, no reflection) and
// frames it reads are classified by their first bytes and scanned for the
// few fields it needs: the generator must cost much less per message than
// the server it measures. The server encodes "type" first (package proto's
// structs), which is what frameType relies on; any other order falls back to
// a JSON decode.

// padding makes messages the size of a typical chat line (about 120 bytes of
// content).
const padding = "the quick brown fox jumps over the lazy dog; a chat line of ordinary length for the benchmark"

// appendSend appends a send_message frame. The message_id ends with the
// stamp, a time in nanoseconds (read back from the ack), and so does the
// content start (read back from new_message by the receivers); size is the
// content's length (0: the stamp and a chat line of ordinary length).
func appendSend(b []byte, prefix string, n uint64, conv string, stamp int64, size int) []byte {
	b = append(b, `{"type":"send_message","message_id":"`...)
	b = append(b, prefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, n, 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, stamp, 10)
	b = append(b, `","conversation_id":"`...)
	b = append(b, conv...)
	b = append(b, `","content":"`...)
	b = appendContent(b, stamp, size)
	b = append(b, `"}`...)
	return b
}

// appendContent appends a message body: the stamp, a space and padding up
// to size bytes (0: the whole padding line). It needs no JSON escaping.
func appendContent(b []byte, stamp int64, size int) []byte {
	start := len(b)
	b = strconv.AppendInt(b, stamp, 10)
	b = append(b, ' ')
	if size <= 0 {
		return append(b, padding...)
	}
	for len(b)-start < size {
		b = append(b, padding[:min(len(padding), size-(len(b)-start))]...)
	}
	return b
}

var pingFrame = []byte(`{"type":"ping"}`)

// syncFrame encodes a sync request with the given cursors.
func syncFrame(cursors map[string]int64, limit int) []byte {
	f := struct {
		Type    string           `json:"type"`
		Cursors map[string]int64 `json:"cursors"`
		Limit   int              `json:"limit,omitempty"`
	}{"sync", cursors, limit}
	if f.Cursors == nil {
		f.Cursors = map[string]int64{}
	}
	b, _ := json.Marshal(f)
	return b
}

// Frame kinds the generator tells apart.
const (
	kindOther = iota
	kindReady
	kindAck
	kindNewMessage
	kindSyncComplete
	kindPong
	kindError
)

var typePrefixes = []struct {
	prefix []byte
	kind   int
}{
	{[]byte(`{"type":"new_message"`), kindNewMessage},
	{[]byte(`{"type":"ack"`), kindAck},
	{[]byte(`{"type":"pong"`), kindPong},
	{[]byte(`{"type":"sync_complete"`), kindSyncComplete},
	{[]byte(`{"type":"ready"`), kindReady},
	{[]byte(`{"type":"error"`), kindError},
}

// frameType classifies a server frame.
func frameType(f []byte) int {
	for _, p := range typePrefixes {
		if bytes.HasPrefix(f, p.prefix) {
			return p.kind
		}
	}
	if bytes.HasPrefix(f, []byte(`{"type":"`)) {
		return kindOther
	}
	var probe struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(f, &probe) == nil {
		for _, p := range typePrefixes {
			if string(p.prefix[9:len(p.prefix)-1]) == probe.Type {
				return p.kind
			}
		}
	}
	return kindOther
}

// stringField returns the raw value of the first string field key in f
// (without unescaping: the generator's own ids and numbers need none).
func stringField(f []byte, key string) []byte {
	var pat [64]byte
	p := append(pat[:0], '"')
	p = append(p, key...)
	p = append(p, `":"`...)
	i := bytes.Index(f, p)
	if i < 0 {
		return nil
	}
	v := f[i+len(p):]
	if j := bytes.IndexByte(v, '"'); j >= 0 {
		return v[:j]
	}
	return nil
}

// sentAtFromID reads the send time at the end of a generator message_id.
func sentAtFromID(id []byte) (int64, bool) {
	i := bytes.LastIndexByte(id, '-')
	if i < 0 {
		return 0, false
	}
	return parseInt(id[i+1:])
}

// sentAtFromContent reads the send time at the start of a generator content.
func sentAtFromContent(c []byte) (int64, bool) {
	i := bytes.IndexByte(c, ' ')
	if i < 0 {
		i = len(c)
	}
	return parseInt(c[:i])
}

func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// since returns the time from a nanosecond timestamp to now (never negative).
func since(sentNanos int64, now time.Time) time.Duration {
	return max(0, time.Duration(now.UnixNano()-sentNanos))
}
