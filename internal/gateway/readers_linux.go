//go:build linux

package gateway

import (
	"errors"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller is an epoll instance watching parked sockets for readability, in
// level-triggered one-shot mode: an event disables the socket until park
// re-arms it. Events carry a socket id, never a file descriptor, so a closed
// socket's late event cannot reach the socket that reused its descriptor.
// Each gateway owns one poller (like the runtime's own netpoller): one
// goroutine blocked in epoll_wait and one descriptor, released by close.
type poller struct {
	epfd  int
	mu    sync.Mutex
	conns map[uint64]*conn
	next  uint64
}

// newPoller returns a running poller, or nil if epoll is unavailable.
func newPoller() *poller {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	p := &poller{epfd: fd, conns: make(map[uint64]*conn)}
	go p.run()
	return p
}

// close stops the poller; its goroutine ends when epoll_wait fails.
func (p *poller) close() { _ = unix.Close(p.epfd) }

func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return // the poller was closed
		}
		for i := range n {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil {
				go c.readReady(p)
			}
		}
	}
}

// arm makes the poller report the socket's next readability (once).
func (p *poller) arm(c *conn) error {
	add := false
	p.mu.Lock()
	if c.pollID == 0 {
		p.next++
		c.pollID = p.next
		p.conns[c.pollID] = c
		add = true
	}
	id := c.pollID
	p.mu.Unlock()
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return errors.New("gateway: connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
		op := unix.EPOLL_CTL_MOD
		if add {
			op = unix.EPOLL_CTL_ADD
		}
		cerr = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err // the connection is closed
	}
	return cerr
}

// remove forgets the socket (closing its descriptor removes it from epoll).
func (p *poller) remove(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.pollID != 0 {
		delete(p.conns, c.pollID)
	}
}
