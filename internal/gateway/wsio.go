package gateway

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// The socket's I/O below the WebSocket library. An accepted socket keeps,
// for its whole life, the buffers the library reads and writes through: by
// default the 4 KiB bufio.Reader of net/http and a fresh 4 KiB bufio.Writer.
// Hijacking through smallHijacker gives the library tiny ones instead, over
// a connReader that reads the socket into a pooled chunk held only while it
// has unread bytes; so an idle socket holds no read buffer and a burst of
// frames still costs one read syscall. Outgoing data frames do not go through
// the library at all: the writer goroutine frames a whole batch itself into a
// pooled buffer and writes it with one write. The library still writes
// control frames (pong, close); those and the batches are serialized by
// conn.wmu, and a control frame fits the library's writer, so it reaches the
// socket in one write and never interleaves with a batch.

// Buffer sizes of an accepted socket.
const (
	readBufSize  = 16   // the library's bufio.Reader: bytes come from connReader's chunk
	writeBufSize = 128  // the library's bufio.Writer: holds any control frame (2+125 bytes)
	chunkSize    = 4096 // a socket read; larger reads go straight to the caller
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// smallHijacker is the ResponseWriter given to websocket.Accept: its Hijack
// returns small buffers over the connection, keeping the bytes net/http had
// already read.
type smallHijacker struct {
	http.ResponseWriter
	c *conn
}

func (h *smallHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	src := &connReader{nc: nc}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		src.pre = append([]byte(nil), b...)
	}
	h.c.nc, h.c.src = nc, src
	h.c.rd = bufio.NewReaderSize(src, readBufSize)
	return nc, bufio.NewReadWriter(h.c.rd, bufio.NewWriterSize(lockedWriter{h.c}, writeBufSize)), nil
}

// connReader reads the bytes read ahead during the handshake, then the
// connection a chunk at a time. It is used by one reader at a time (the
// library's read lock).
type connReader struct {
	pre   []byte  // unread bytes
	chunk *[]byte // pooled buffer under pre, if any
	nc    net.Conn
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(r.pre) == 0 {
		if len(p) >= chunkSize {
			return r.nc.Read(p)
		}
		c := chunkPool.Get().(*[]byte)
		n, err := r.nc.Read(*c)
		if n <= 0 {
			chunkPool.Put(c)
			return 0, err
		}
		r.chunk, r.pre = c, (*c)[:n]
	}
	n := copy(p, r.pre)
	r.pre = r.pre[n:]
	if len(r.pre) == 0 && r.chunk != nil {
		chunkPool.Put(r.chunk)
		r.chunk = nil
	}
	return n, nil
}

// pending reports whether read bytes are still unread.
func (r *connReader) pending() bool { return len(r.pre) > 0 }

// lockedWriter is what the library's bufio.Writer flushes to: the
// connection, under the socket's write lock.
type lockedWriter struct{ c *conn }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	return w.c.nc.Write(p)
}

// appendHeader appends the header of an unmasked, final text frame of n
// bytes (RFC 6455 section 5.2).
func appendHeader(b []byte, n int) []byte {
	const finText = 0x81
	switch {
	case n < 126:
		return append(b, finText, byte(n))
	case n < 1<<16:
		return append(b, finText, 126, byte(n>>8), byte(n))
	}
	return append(b, finText, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// batchMax bounds what one write carries; a frame larger than bigFrame is
// written from its own bytes rather than copied.
const (
	batchMax = 64 << 10
	bigFrame = 16 << 10
)

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

// writeFrames writes frames as text frames: a batch of small frames is
// framed into one pooled buffer and written with one write.
func (c *conn) writeFrames(frames [][]byte) error {
	bp := batchPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= batchMax+bigFrame {
			*bp = (*bp)[:0]
			batchPool.Put(bp)
		}
	}()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf := (*bp)[:0]
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := c.nc.Write(buf)
		buf = buf[:0]
		return err
	}
	for _, f := range frames {
		if len(f) > bigFrame {
			buf = appendHeader(buf, len(f))
			if err := flush(); err != nil {
				return err
			}
			if _, err := c.nc.Write(f); err != nil {
				return err
			}
			continue
		}
		if len(buf)+len(f)+4 > batchMax {
			if err := flush(); err != nil {
				return err
			}
		}
		buf = appendHeader(buf, len(f))
		buf = append(buf, f...)
	}
	err := flush()
	*bp = buf
	return err
}
