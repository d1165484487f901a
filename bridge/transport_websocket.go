package bridge

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/sys/unix"
)

// The Engine.IO library keeps the protocol; this file owns the WebSocket write
// path (the read path is in transport_websocket_read.go). Its own transport (kept for reference in the library's
// transports/websocket.go) prepares a gorilla message per socket and packet,
// writes each packet with its own syscall and deadline, and queues without
// bound. Here:
//   - a frame is a complete, unmasked WebSocket frame built once and shared by
//     every recipient (delivery builds one per envelope);
//   - each socket's queue is a slice of those shared frames, bounded in bytes;
//     a socket over the bound is a slow consumer and is disconnected;
//   - frames queued on an idle socket are first written at once, without
//     blocking, by the goroutine queuing them (as libuv's uv_try_write does
//     for Node): a socket the kernel takes them for needs no other goroutine;
//   - what the kernel does not take at once is written by a writer goroutine
//     that exists only while there is something to write, and writes
//     everything queued at each wake-up with one writev and one deadline;
//   - an idle socket holds no writer goroutine and no write buffer.

// wsFrame is a complete server-to-client WebSocket frame, shared read-only by
// every queue it is in.
type wsFrame []byte

// newTextFrame returns the frame of a text message made of the parts.
func newTextFrame(parts ...[]byte) wsFrame {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	f := appendFrameHeader(make([]byte, 0, n+10), ws.TextMessage, n)
	for _, p := range parts {
		f = append(f, p...)
	}
	return f
}

func newFrame(opcode int, payload []byte) wsFrame {
	return append(appendFrameHeader(make([]byte, 0, len(payload)+10), opcode, len(payload)), payload...)
}

// appendFrameHeader appends the header of a final, unmasked frame (RFC 6455
// section 5.2: servers never mask).
func appendFrameHeader(b []byte, opcode, n int) []byte {
	b = append(b, 0x80|byte(opcode))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// wsLimits are what every WebSocket transport of a server shares.
type wsLimits struct {
	// maxQueueBytes bounds what may wait to be written to one socket.
	maxQueueBytes int
	// writeTimeout bounds one flush.
	writeTimeout time.Duration
	// onSlowConsumer is told when a socket is disconnected for its queue.
	onSlowConsumer func(sid string, queued int)
	// maxPayload bounds one message from a client; 0 is no bound.
	maxPayload int64
	// heartbeat is the longest a client may stay silent before the
	// engine's heartbeat closes it (ping interval + ping timeout); 0:
	// unknown.
	heartbeat time.Duration
	// readBuffers are the read buffers (*wsReadBuffer) sockets take while
	// data arrives; tryWrites the state of writes tried without blocking
	// (*wsTryWrite).
	readBuffers sync.Pool
	tryWrites   sync.Pool
	// poller watches idle sockets (transport_websocket_poll_linux.go); nil:
	// each socket keeps a reader waiting.
	poller *wsPoller
}

// wsTransportCtor registers wsTransport with the engine in place of the
// library's WebSocket transport.
type wsTransportCtor struct{ limits *wsLimits }

func (c *wsTransportCtor) New(ctx *types.HttpContext) transports.Transport {
	t := &wsTransport{Transport: transports.MakeTransport(), limits: c.limits}
	t.Prototype(t)
	t.Construct(ctx)
	return t
}
func (*wsTransportCtor) Name() string          { return transports.WEBSOCKET }
func (*wsTransportCtor) HandlesUpgrades() bool { return true }
func (*wsTransportCtor) UpgradesTo() []string  { return nil }

// wsTransport is an Engine.IO transport over one WebSocket connection.
type wsTransport struct {
	transports.Transport

	limits *wsLimits
	// conn is gorilla's connection, from the upgrade, and ctx the upgrade's
	// context, both until the read path starts (detachUpgrade); nil after.
	conn        *types.WebSocketConn
	ctx         *types.HttpContext
	netConn     net.Conn
	idleTimeout time.Duration
	// raw is the connection's file descriptor access, for the writes tried
	// without blocking; nil when the connection has none (TLS).
	raw syscall.RawConn
	rd  wsReader
	// poll is the poller that watches this socket while it is idle; nil
	// when a reader waits instead (no poller, or no file descriptor
	// access). pollID is its registration, readMu is held by the reader.
	poll   *wsPoller
	pollID uint64
	readMu sync.Mutex
	// lastRead (Unix ns) is when the socket last had data; idleTimer
	// closes a watched socket silent for idleTimeout, when the engine's
	// heartbeat would not close it first (a waiting reader has a read
	// deadline instead).
	lastRead  atomic.Int64
	idleTimer *time.Timer

	mu      sync.Mutex
	pending []wsFrame // frames waiting for the writer, in order
	queued  int       // bytes in pending
	writing bool      // a writer goroutine is running
	closing bool      // write what is pending, then close
	closed  bool      // nothing more is accepted
	// onClosed says OnClose has run; beside the flags above, the struct
	// stays in a smaller size class.
	onClosed atomic.Bool
}

// Construct binds the transport to the upgraded connection in ctx.
func (t *wsTransport) Construct(ctx *types.HttpContext) {
	t.Transport.Construct(ctx)
	t.idleTimeout = ctx.IdleTimeout
	t.conn, t.ctx = ctx.Websocket, ctx
	t.netConn = t.conn.NetConn()
	if sc, ok := t.netConn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			t.raw = raw
			if t.poll = t.limits.poller; t.poll != nil {
				t.pollID = t.poll.newID()
			}
		}
	}

	// The upgrade's response is written: its headers (the CORS ones) are
	// not needed for the connection's life, and the context keeps them.
	ctx.ResponseHeaders().Replace(map[string][]string{})

	t.rd.readFD = t.readFD
	_ = t.conn.Once("close", func(...any) { t.OnClose() })

	t.SetWritable(true)
	t.SetPerMessageDeflate(nil)
	transports.StartReader(t, ctx.TransportReadPermission(), t.read)
}

// Name is the transport's Engine.IO name.
func (t *wsTransport) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades says polling may upgrade to this transport.
func (t *wsTransport) HandlesUpgrades() bool { return true }

// Send queues packets from the engine (handshake, pings, Socket.IO packets
// written through the engine). It never blocks: the transport stays writable,
// so the engine hands everything over at once instead of buffering it.
func (t *wsTransport) Send(packets []*packet.Packet) {
	frames := make([]wsFrame, 0, len(packets))
	for _, p := range packets {
		f, err := t.encodeFrame(p)
		if err != nil {
			t.OnError("websocket encode error", err)
			return
		}
		if p.Type == packet.PING {
			// The heartbeat goes ahead of any backlog: a client that is
			// reading gets its ping, and answers, without first reading
			// everything queued for it.
			t.enqueueFront(f)
			continue
		}
		frames = append(frames, f)
	}
	t.enqueue(frames...)
	// The engine runs its send callbacks on drain; its writes are queued, and
	// the queue is where ordering and backpressure are handled.
	t.Emit("drain")
}

// encodeFrame returns the frame of an engine packet. A packet of Engine.IO
// v4 with text data, or none, is its type's character and the text: its
// frame is built here, as the parser would encode it, without the parser's
// buffer in between (every heartbeat made one). Anything else goes through
// the parser.
func (t *wsTransport) encodeFrame(p *packet.Packet) (wsFrame, error) {
	if t.Parser() == parser.Parserv4() {
		if typ, ok := parser.PACKET_TYPES[p.Type]; ok {
			switch d := p.Data.(type) {
			case nil:
				return newTextFrame([]byte{typ}), nil
			case *types.StringBuffer:
				f := newTextFrame([]byte{typ}, d.Bytes())
				d.Reset() // read, as the parser reads it
				return f, nil
			}
		}
	}
	data, err := t.Parser().EncodePacket(p, t.SupportsBinary())
	if err != nil {
		return nil, err
	}
	opcode := ws.TextMessage
	if _, isText := data.(*types.StringBuffer); !isText {
		opcode = ws.BinaryMessage
	}
	return newFrame(opcode, data.Bytes()), nil
}

// enqueue appends frames to the socket's queue and wakes the writer. A queue
// over the bound disconnects the socket as a slow consumer. On a socket with
// nothing queued and no writer, the frames are first written without
// blocking (tryWrite); only what the kernel does not take is queued.
func (t *wsTransport) enqueue(frames ...wsFrame) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if t.raw != nil && !t.writing && !t.closing && len(t.pending) == 0 && len(frames) > 0 {
		t.writing = true // held by this goroutine while it tries
		t.mu.Unlock()
		frames = t.tryWrite(frames)
		t.mu.Lock()
		if t.closed {
			t.writing = false
			t.mu.Unlock()
			return
		}
		if len(frames) == 0 && len(t.pending) == 0 {
			t.writing = false
			closing := t.closing
			t.mu.Unlock()
			if closing {
				t.closeConn()
			}
			return
		}
		// The rest goes first, ahead of what was queued meanwhile; the
		// writer this goroutine holds the place of takes it all.
		t.pending = append(append(make([]wsFrame, 0, len(frames)+len(t.pending)), frames...), t.pending...)
		for _, f := range frames {
			t.queued += len(f)
		}
		t.writing = false
		t.wakeLocked()
		return
	}
	for _, f := range frames {
		t.pending = append(t.pending, f)
		t.queued += len(f)
	}
	t.wakeLocked()
}

// enqueueFront puts a control frame before everything queued, so heartbeats
// are not held behind a backlog of messages.
func (t *wsTransport) enqueueFront(f wsFrame) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if !t.writing && len(t.pending) == 0 {
		// Nothing to go ahead of (the heartbeat of an idle socket): written
		// at once if the kernel takes it, like any frame to an idle socket,
		// rather than by a writer goroutine with a write deadline.
		t.mu.Unlock()
		t.enqueue(f)
		return
	}
	t.pending = append(t.pending, nil)
	copy(t.pending[1:], t.pending)
	t.pending[0] = f
	t.queued += len(f)
	t.wakeLocked()
}

// wakeLocked starts the writer if needed and unlocks t.mu.
func (t *wsTransport) wakeLocked() {
	if t.queued > t.limits.maxQueueBytes {
		queued := t.queued
		t.closed, t.pending, t.queued = true, nil, 0
		t.mu.Unlock()
		if t.limits.onSlowConsumer != nil {
			t.limits.onSlowConsumer(t.Sid(), queued)
		}
		t.closeConn()
		return
	}
	start := !t.writing
	t.writing = true
	t.mu.Unlock()
	if start {
		go t.writeLoop()
	}
}

// tryWrite writes frames with one writev that does not wait for the socket
// to be writable, and returns what the kernel did not take (the first of it
// possibly a frame's tail). A connection that fails is closed; it returns
// nothing then.
func (t *wsTransport) tryWrite(frames []wsFrame) []wsFrame {
	const maxIovecs = 64 // well under IOV_MAX
	w, _ := t.limits.tryWrites.Get().(*wsTryWrite)
	if w == nil {
		w = &wsTryWrite{}
		w.onFD = w.write
	}
	for _, f := range frames[:min(len(frames), maxIovecs)] {
		w.iov = append(w.iov, f)
	}
	err := t.raw.Write(w.onFD)
	n, werr := w.n, w.err
	clear(w.iov)
	w.iov, w.n, w.err = w.iov[:0], 0, nil
	t.limits.tryWrites.Put(w)
	if err == nil && werr != nil && werr != unix.EAGAIN {
		err = werr
	}
	if err != nil {
		t.mu.Lock()
		t.closed, t.pending, t.queued = true, nil, 0
		t.mu.Unlock()
		t.closeConn()
		return nil
	}
	for len(frames) > 0 && n >= len(frames[0]) {
		n -= len(frames[0])
		frames = frames[1:]
	}
	if n > 0 {
		frames = append([]wsFrame{frames[0][n:]}, frames[1:]...)
	}
	return frames
}

// wsTryWrite is one write tried without blocking, with its callback bound
// once: a closure made per write would be garbage at every delivery.
type wsTryWrite struct {
	iov  [][]byte
	n    int
	err  error
	onFD func(fd uintptr) bool
}

func (w *wsTryWrite) write(fd uintptr) bool {
	for {
		w.n, w.err = unix.Writev(int(fd), w.iov)
		if w.err != unix.EINTR {
			return true // done, or EAGAIN: never wait here
		}
	}
}

// writeLoop writes what is queued until the queue is empty, then ends.
func (t *wsTransport) writeLoop() {
	var bufs net.Buffers
	for {
		t.mu.Lock()
		frames, closing := t.pending, t.closing
		t.pending, t.queued = nil, 0
		if len(frames) == 0 {
			t.writing = false
			t.mu.Unlock()
			if closing {
				t.closeConn()
			}
			return
		}
		t.mu.Unlock()

		bufs = bufs[:0]
		for _, f := range frames {
			bufs = append(bufs, f)
		}
		_ = t.netConn.SetWriteDeadline(time.Now().Add(t.limits.writeTimeout))
		if _, err := bufs.WriteTo(t.netConn); err != nil {
			t.mu.Lock()
			t.closed, t.pending, t.queued, t.writing = true, nil, 0, false
			t.mu.Unlock()
			t.closeConn()
			return
		}
	}
}

// beginClose stops accepting frames and closes the connection once what is
// queued is written.
func (t *wsTransport) beginClose() {
	t.mu.Lock()
	t.closing = true
	if t.writing {
		t.mu.Unlock()
		return
	}
	t.closed = true
	t.mu.Unlock()
	t.closeConn()
}

// closeConn closes the connection and runs OnClose (through gorilla's
// connection's close event until the upgrade is detached).
func (t *wsTransport) closeConn() {
	t.mu.Lock()
	t.closed = true
	conn := t.conn
	t.mu.Unlock()
	t.unwatch()
	if conn != nil {
		_ = conn.Close()
		return
	}
	_ = t.netConn.Close()
	t.OnClose()
}

// detachUpgrade lets go of gorilla's connection (and of the upgrade's read
// permission) once the engine is done with it: when the read path starts, the engine has finished initializing the
// transport (only a failed initialization closes the connection through
// it). The transport reads and writes the socket itself, and gorilla's
// connection with its buffers and handlers is most of a kilobyte per
// connection.
func (t *wsTransport) detachUpgrade() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.conn == nil {
		return // closing through gorilla's connection
	}
	if t.ctx != nil {
		if t.ctx.Websocket == t.conn {
			t.ctx.Websocket = nil
		}
		// The read permission was this transport's, and is used: the
		// context would keep its channel for the connection's life.
		t.ctx.SetTransportReadPermission(nil)
	}
	t.conn, t.ctx = nil, nil
}

// DoClose is the engine closing the transport: queued frames (such as a
// Socket.IO DISCONNECT packet) are written first.
func (t *wsTransport) DoClose(fn types.Callable) {
	if fn != nil {
		fn()
	}
	t.beginClose()
}

// OnClose marks the transport closed and tells the engine, once.
func (t *wsTransport) OnClose() {
	if !t.onClosed.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	t.closed, t.pending, t.queued = true, nil, 0
	t.mu.Unlock()
	t.unwatch()
	t.Transport.OnClose()
}

// writeFrames queues frames delivered by the bridge, bypassing the engine's
// packet path: the frames are already encoded and shared by every recipient.
func (t *wsTransport) writeFrames(frames []wsFrame) { t.enqueue(frames...) }
