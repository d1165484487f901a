package bridge

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// wsPoller tells idle WebSockets' transports when their socket is readable,
// so that an idle socket holds no goroutine. A goroutine waiting in a read
// keeps at least a 2 KiB stack and its bookkeeping, which is most of what an
// idle connection costs once the library's state is trimmed; Node keeps none
// (libuv watches every socket from one loop). Here one epoll instance per
// server watches every idle socket, each registered one-shot: a readable
// socket is reported once, and its transport starts a reader that reads
// what is there without waiting and re-arms the registration when the
// socket has nothing more. A socket is in Go's netpoller too (an epoll set
// of its own); the runtime's registration is untouched, and a registration
// in another epoll set is independent of it.
//
// The epoll instance is itself in Go's netpoller (an epoll file descriptor is
// readable when it has events), so the poller's goroutine waits like any
// reader and stops when the instance is closed.
type wsPoller struct {
	epoll *os.File
	raw   syscall.RawConn

	mu    sync.Mutex
	conns map[uint64]*wsTransport // by registration id
	ids   atomic.Uint64           // the last registration id given

	done chan struct{} // closed when the poller's goroutine has ended

	ctls sync.Pool // *epollCtl
}

// wsPollEvents are the events a socket is watched for: readable, or the peer
// gone (a read then finds the end or the error).
const wsPollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// newWSPoller starts a poller; close stops it.
func newWSPoller() (*wsPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("websocket poller: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("websocket poller: set nonblocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "websocket-epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("websocket poller: %w", err)
	}
	p := &wsPoller{epoll: f, raw: raw, conns: map[uint64]*wsTransport{}, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// run hands readable sockets to their transports until the poller is closed.
func (p *wsPoller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		var (
			n    int
			werr error
		)
		err := p.raw.Read(func(epfd uintptr) bool {
			for {
				n, werr = unix.EpollWait(int(epfd), events, 0)
				if werr != unix.EINTR {
					break
				}
			}
			return werr != nil || n > 0 // nothing: the runtime waits until readable
		})
		if err != nil || werr != nil {
			return // closed (an epoll_wait error on a valid instance cannot happen)
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if t := p.conns[eventID(ev)]; t != nil {
				go t.readReady()
			}
		}
		p.mu.Unlock()
	}
}

// close stops the poller and waits for its goroutine. Sockets still
// registered are no longer reported.
func (p *wsPoller) close() {
	_ = p.epoll.Close()
	<-p.done
}

func eventID(ev unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// newID returns a registration id for a socket. Ids are never reused, so an
// event for a socket gone since is dropped.
func (p *wsPoller) newID() uint64 { return p.ids.Add(1) }

// add registers t's socket (its id from newID); t.readReady is called once
// it is readable.
func (p *wsPoller) add(t *wsTransport) error {
	p.mu.Lock()
	p.conns[t.pollID] = t
	p.mu.Unlock()
	if err := p.ctl(t, unix.EPOLL_CTL_ADD); err != nil {
		p.remove(t)
		return err
	}
	return nil
}

// rearm reports t's socket again once it is readable (at once if it is).
func (p *wsPoller) rearm(t *wsTransport) error { return p.ctl(t, unix.EPOLL_CTL_MOD) }

// remove unregisters t; its socket is no longer reported.
func (p *wsPoller) remove(t *wsTransport) {
	p.mu.Lock()
	delete(p.conns, t.pollID)
	p.mu.Unlock()
	// The kernel drops a closed socket from the set by itself; a socket
	// still open is taken out here.
	_ = p.ctl(t, unix.EPOLL_CTL_DEL)
}

// ctl changes t's registration. Both descriptors are used under their
// owners' reference (RawConn.Control), so neither can be closed, and its
// number reused, during the call; a closed socket fails with net.ErrClosed.
func (p *wsPoller) ctl(t *wsTransport, op int) error {
	c, _ := p.ctls.Get().(*epollCtl)
	if c == nil {
		c = &epollCtl{}
		c.onSocket, c.onPoller = c.socket, c.poller
	}
	id := t.pollID
	c.p, c.op, c.ev = p, op, unix.EpollEvent{Events: wsPollEvents, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	err := t.raw.Control(c.onSocket)
	perr, cerr := c.perr, c.cerr
	*c = epollCtl{onSocket: c.onSocket, onPoller: c.onPoller}
	p.ctls.Put(c)
	switch {
	case err != nil:
		return err // the socket is closed
	case perr != nil:
		return fmt.Errorf("websocket poller: %w", perr) // the poller is closed
	case cerr != nil:
		return os.NewSyscallError("epoll_ctl", cerr)
	}
	return nil
}

// epollCtl is one epoll_ctl call, with its callbacks bound once: a socket
// is re-armed at every wake-up, and closures made per call would be garbage
// each time.
type epollCtl struct {
	p          *wsPoller
	op         int
	fd         uintptr
	ev         unix.EpollEvent
	perr, cerr error

	onSocket, onPoller func(uintptr)
}

func (c *epollCtl) socket(fd uintptr) {
	c.fd = fd
	c.perr = c.p.raw.Control(c.onPoller)
}

func (c *epollCtl) poller(epfd uintptr) {
	c.cerr = unix.EpollCtl(int(epfd), c.op, int(c.fd), &c.ev)
}
