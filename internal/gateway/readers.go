package gateway

import "net"

// Reading sockets without a goroutine per idle socket.
//
// Where the platform offers a readiness poller (epoll on Linux,
// readers_linux.go), an idle socket has no reader goroutine: the poller
// watches it and, when bytes arrive, a goroutine is started that reads and
// handles frames for as long as bytes are buffered, then parks the socket
// again and ends. Elsewhere each socket has one reader goroutine that blocks
// in Read. Either way a socket's frames are handled one at a time, in order.

// Reader states of a conn (rstate).
const (
	readActive int32 = iota // a goroutine is reading the socket
	readParked              // the poller watches the socket
	readDone                // reading ended; ended has run or is running
)

// startReading starts reading a registered socket. Only a plain TCP
// connection can be parked: over TLS, decrypted bytes wait inside tls.Conn,
// where no readiness notification sees them.
func (c *conn) startReading() {
	var p *poller
	if _, plain := c.nc.(*net.TCPConn); plain {
		p = c.g.poller // nil where the platform has none
	}
	if p == nil {
		go func() {
			c.readFrames(true)
			c.rstate.Store(readDone)
			c.ended()
		}()
		return
	}
	c.rstate.Store(readActive)
	c.poll = p
	if more, _ := c.buffered(); more {
		go c.serveReads(p) // bytes came with the handshake
		return
	}
	c.park(p)
}

// readReady is started by the poller when a parked socket is readable.
func (c *conn) readReady(p *poller) {
	if c.rstate.CompareAndSwap(readParked, readActive) {
		c.serveReads(p)
	}
}

// serveReads reads while bytes are buffered, then parks the socket.
func (c *conn) serveReads(p *poller) {
	if !c.readFrames(false) {
		c.rstate.Store(readDone)
		p.remove(c)
		c.ended()
		return
	}
	c.park(p)
}

// park hands the socket to the poller until it is readable again.
func (c *conn) park(p *poller) {
	c.rstate.Store(readParked)
	if c.ctx.Err() != nil {
		c.finishParked(p)
		return
	}
	if err := p.arm(c); err != nil {
		c.finishParked(p)
	}
}

// stopped is called once the socket's context was cancelled (after it was
// closed): a socket closed while parked has nobody reading it, so it ends
// here.
func (c *conn) stopped() {
	if c.poll != nil {
		c.finishParked(c.poll)
	}
}

// finishParked ends a parked socket (once).
func (c *conn) finishParked(p *poller) {
	if c.rstate.CompareAndSwap(readParked, readDone) {
		p.remove(c)
		c.ended()
	}
}
