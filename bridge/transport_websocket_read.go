package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/sys/unix"
)

// The WebSocket read path. gorilla's reader (which the library's upgrader
// still creates) keeps a read buffer per connection and a goroutine blocked
// in it. Here:
//   - bytes are read only once the socket is readable, into a buffer taken
//     from a pool for the read and given back as soon as no partial frame is
//     left: an idle socket holds no read buffer;
//   - an idle socket holds no goroutine either: the server's poller
//     (transport_websocket_poll_linux.go) watches it and starts a reader
//     when it is readable; the reader handles what is there, and under
//     traffic goes on while data keeps coming, then hands the socket back
//     to the poller and ends.
// Without a poller (it needs epoll), a socket keeps one reader waiting; the
// goroutine that waits has handled nothing (a reader that has handled
// messages and would have to wait starts a new reader and ends), so that it
// has the smallest stack: a goroutine's stack only shrinks at a garbage
// collection, and an idle server collects none. Connections without file
// descriptor access (TLS) read with a blocking read into a held buffer, on
// one goroutine.

// wsReadBufferSize is the size of the pooled read buffers; a frame that does
// not fit gets a buffer of its own.
const wsReadBufferSize = 4 << 10

type wsReadBuffer = [wsReadBufferSize]byte

// errWouldBlock is a read that found nothing and was told not to wait.
var errWouldBlock = errors.New("websocket read would block")

// wsReader is a connection's read state, used by one reader goroutine at a
// time (each starts the next).
type wsReader struct {
	in []byte // read and not yet handled; nil when there is none
	// msg is a fragmented message so far, msgOp its opcode (0: none;
	// beside wait, the transport stays in a smaller size class).
	msg []byte

	// The last read: how many bytes, its error, and whether it may wait.
	n     int
	err   error
	wait  bool
	msgOp uint8
	// readFD is t.readFD, made once.
	readFD func(fd uintptr) bool
}

// wsCloseError is a close frame from the client; the read path ends without
// an error.
type wsCloseError struct{ code int }

func (e *wsCloseError) Error() string {
	return "websocket closed by the client: " + strconv.Itoa(e.code)
}

// wsProtocolError is a client frame that breaks RFC 6455 (or the payload
// limit); the client is sent a close frame with the code.
type wsProtocolError struct {
	code int
	text string
}

func (e *wsProtocolError) Error() string { return "websocket: " + e.text }

// read starts the read path: the socket is handed to the poller, or read by
// a reader that waits.
func (t *wsTransport) read() {
	t.detachUpgrade()
	if t.poll == nil {
		t.readFrames(true)
		return
	}
	t.lastRead.Store(time.Now().UnixNano())
	// The engine's heartbeat closes a client silent for longer than a ping
	// interval and a ping timeout; an idle timeout beyond that would never
	// fire, and its timer is not kept.
	if t.idleTimeout > 0 && (t.limits.heartbeat == 0 || t.idleTimeout < t.limits.heartbeat) {
		t.mu.Lock()
		if !t.closed {
			t.idleTimer = time.AfterFunc(t.idleTimeout, t.checkIdle)
		}
		t.mu.Unlock()
	}
	if err := t.poll.add(t); err != nil {
		t.readMu.Lock()
		defer t.readMu.Unlock()
		t.endRead(err)
	}
}

// readReady is started by the poller when the socket is readable: it reads
// and handles frames until the socket has nothing more, then asks the
// poller to report it again (at once if data came meanwhile), or ends the
// read path. The poller reports a socket once per registration, so one
// reader runs at a time; readMu orders each reader after the last.
func (t *wsTransport) readReady() {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	for {
		err := t.fill(false)
		if err == errWouldBlock {
			if err = t.poll.rearm(t); err == nil {
				return
			}
		}
		if err == nil {
			_, err = t.handleFrames()
		}
		if err != nil {
			t.endRead(err)
			return
		}
	}
}

// checkIdle is the idle timer of a watched socket: it closes the connection
// when nothing came for the idle timeout, and waits for the rest otherwise.
func (t *wsTransport) checkIdle() {
	left := t.idleTimeout - time.Since(time.Unix(0, t.lastRead.Load()))
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if left > 0 {
		t.idleTimer.Reset(left)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.OnError("websocket error", fmt.Errorf("websocket: nothing read for %s: %w", t.idleTimeout, os.ErrDeadlineExceeded))
	t.closeConn()
}

// unwatch takes a closing socket from the poller.
func (t *wsTransport) unwatch() {
	if t.poll == nil {
		return
	}
	t.mu.Lock()
	if t.idleTimer != nil {
		t.idleTimer.Stop()
	}
	t.mu.Unlock()
	t.poll.remove(t)
}

// readFrames reads and handles client frames until the connection ends.
// fresh says this goroutine has handled nothing yet, so it may wait.
func (t *wsTransport) readFrames(fresh bool) {
	for {
		err := t.fill(fresh)
		if err == errWouldBlock {
			// Wait on a goroutine that has handled nothing (see above).
			go t.readFrames(true)
			return
		}
		if err == nil {
			var handled bool
			handled, err = t.handleFrames()
			fresh = fresh && !handled
		}
		if err != nil {
			t.endRead(err)
			return
		}
	}
}

// fill reads what the socket has into t.rd.in. When there is nothing, it
// waits if wait is set (for at most the idle timeout) and returns
// errWouldBlock otherwise.
func (t *wsTransport) fill(wait bool) error {
	r := &t.rd
	if t.raw == nil {
		if r.in == nil {
			r.in = t.limits.readBuffer()
		}
		t.setIdleDeadline()
		n, err := t.netConn.Read(r.in[len(r.in):cap(r.in)])
		r.in = r.in[:len(r.in)+n]
		switch {
		case n > 0:
			return nil
		case err == io.EOF && (len(r.in) > 0 || r.msgOp != 0):
			return io.ErrUnexpectedEOF
		case err == nil:
			return io.ErrNoProgress
		}
		return err
	}
	// Every read renews the idle timeout (also one that does not wait: a
	// deadline that passed fails any read, even of data already there). A
	// watched socket has a timer instead, which a read moves on.
	if t.poll != nil {
		t.lastRead.Store(time.Now().UnixNano())
	} else {
		t.setIdleDeadline()
	}
	r.wait, r.n, r.err = wait, 0, nil
	if err := t.raw.Read(r.readFD); err != nil {
		return err // the idle timeout, or the connection is closed
	}
	switch {
	case r.err == unix.EAGAIN:
		return errWouldBlock
	case r.err != nil:
		return os.NewSyscallError("read", r.err)
	case r.n == 0 && (len(r.in) > 0 || r.msgOp != 0):
		return io.ErrUnexpectedEOF // gone in the middle of a frame or message
	case r.n == 0:
		return io.EOF
	}
	r.in = r.in[:len(r.in)+r.n]
	return nil
}

func (t *wsTransport) setIdleDeadline() {
	if t.idleTimeout > 0 {
		_ = t.netConn.SetReadDeadline(time.Now().Add(t.idleTimeout))
	}
}

// readFD is the raw read: it takes a buffer only to read into it, and gives
// it back before waiting when it holds nothing.
func (t *wsTransport) readFD(fd uintptr) bool {
	r := &t.rd
	if r.in == nil {
		r.in = t.limits.readBuffer()
	}
	for {
		r.n, r.err = unix.Read(int(fd), r.in[len(r.in):cap(r.in)])
		if r.err != unix.EINTR {
			break
		}
	}
	if r.err != nil {
		r.n = 0
	}
	if r.err == unix.EAGAIN {
		t.releaseIn()
		return !r.wait // false: the runtime waits until readable and calls again
	}
	return true
}

// readBuffer takes an empty read buffer from the pool.
func (l *wsLimits) readBuffer() []byte {
	if b, ok := l.readBuffers.Get().(*wsReadBuffer); ok {
		return b[:0]
	}
	return new(wsReadBuffer)[:0]
}

// releaseIn gives the read buffer back once it holds nothing.
func (t *wsTransport) releaseIn() {
	r := &t.rd
	if len(r.in) > 0 || r.in == nil {
		return
	}
	if cap(r.in) == wsReadBufferSize {
		t.limits.readBuffers.Put((*wsReadBuffer)(r.in[:wsReadBufferSize]))
	}
	r.in = nil
}

// handleFrames handles every complete frame in t.rd.in, keeps the rest and
// makes room for the rest of the next frame. It reports whether it handled
// any.
func (t *wsTransport) handleFrames() (handled bool, err error) {
	r := &t.rd
	off := 0
	for {
		b := r.in[off:]
		hdr, plen, err := t.frameHeader(b)
		if err != nil {
			return handled, err
		}
		if hdr == 0 || len(b) < hdr+plen {
			// Incomplete: keep it at the start of a buffer it fits in.
			n := copy(r.in, b)
			r.in = r.in[:n]
			if need := hdr + plen; need > cap(r.in) {
				grown := make([]byte, n, need)
				copy(grown, r.in)
				r.in = r.in[:0]
				t.releaseIn()
				r.in = grown
			}
			t.releaseIn()
			return handled, nil
		}
		payload := b[hdr : hdr+plen]
		maskBytes(payload, b[hdr-4:hdr])
		off += hdr + plen
		handled = true
		if err := t.handleFrame(int(b[0]&0x0f), b[0]&0x80 != 0, payload); err != nil {
			return handled, err
		}
	}
}

// frameHeader parses the header at the start of b: its size and the payload
// length, or 0, 0 when b does not hold all of it yet.
func (t *wsTransport) frameHeader(b []byte) (hdr, plen int, err error) {
	if len(b) < 2 {
		return 0, 0, nil
	}
	if b[0]&0x70 != 0 {
		return 0, 0, &wsProtocolError{ws.CloseProtocolError, "unexpected reserved bits"}
	}
	if b[1]&0x80 == 0 {
		return 0, 0, &wsProtocolError{ws.CloseProtocolError, "client frame not masked"}
	}
	op, fin := int(b[0]&0x0f), b[0]&0x80 != 0
	n := uint64(b[1] & 0x7f)
	hdr = 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, 0, nil
		}
		n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, 0, nil
		}
		n, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	hdr += 4
	switch op {
	case ws.CloseMessage, ws.PingMessage, ws.PongMessage:
		if !fin || n > 125 {
			return 0, 0, &wsProtocolError{ws.CloseProtocolError, "invalid control frame"}
		}
	case ws.TextMessage, ws.BinaryMessage:
		if t.rd.msgOp != 0 {
			return 0, 0, &wsProtocolError{ws.CloseProtocolError, "message started before the last one ended"}
		}
	case 0: // continuation
		if t.rd.msgOp == 0 {
			return 0, 0, &wsProtocolError{ws.CloseProtocolError, "continuation without a message"}
		}
	default:
		return 0, 0, &wsProtocolError{ws.CloseProtocolError, "unknown opcode " + strconv.Itoa(op)}
	}
	if limit := uint64(t.limits.maxPayload); limit > 0 && (n > limit || uint64(len(t.rd.msg))+n > limit) {
		return 0, 0, &wsProtocolError{ws.CloseMessageTooBig, "message over the payload limit"}
	}
	if len(b) < hdr {
		return 0, 0, nil
	}
	return hdr, int(n), nil
}

// handleFrame acts on one complete, unmasked frame. payload is only valid
// during the call.
func (t *wsTransport) handleFrame(op int, fin bool, payload []byte) error {
	r := &t.rd
	switch op {
	case ws.PingMessage:
		t.enqueueFront(newFrame(ws.PongMessage, payload))
		return nil
	case ws.PongMessage:
		return nil
	case ws.CloseMessage:
		code := ws.CloseNoStatusReceived
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
			if !validReceivedCloseCode(code) {
				return &wsProtocolError{ws.CloseProtocolError, "bad close code " + strconv.Itoa(code)}
			}
			if !utf8.Valid(payload[2:]) {
				return &wsProtocolError{ws.CloseProtocolError, "invalid utf8 payload in close frame"}
			}
		}
		return &wsCloseError{code: code}
	case 0:
		r.msg = append(r.msg, payload...)
		if !fin {
			return nil
		}
		op, data := int(r.msgOp), r.msg
		r.msg, r.msgOp = nil, 0
		t.deliver(op, data)
		return nil
	}
	if !fin {
		r.msg, r.msgOp = bytes.Clone(payload), uint8(op)
		return nil
	}
	t.deliver(op, bytes.Clone(payload))
	return nil
}

// deliver hands a message to the engine. A text message of Engine.IO v4 is
// its packet type's character and the packet's data: it is decoded here, as
// the parser would, without the parser's copy of the data into a buffer of
// at least 512 bytes (a heartbeat answer is one byte). Anything else goes
// through the parser.
func (t *wsTransport) deliver(op int, data []byte) {
	if op == ws.BinaryMessage {
		t.OnData(types.NewBytesBuffer(data))
		return
	}
	if len(data) > 0 && t.Parser() == parser.Parserv4() {
		if typ, ok := parser.PACKET_TYPES_REVERSE[data[0]]; ok {
			t.OnPacket(&packet.Packet{Type: typ, Data: types.NewStringBuffer(data[1:])})
			return
		}
	}
	t.OnData(types.NewStringBuffer(data))
}

// endRead ends the read path after err. A close frame is answered, a
// protocol error is told to the client, then the connection is closed once
// what is queued is written.
func (t *wsTransport) endRead(err error) {
	t.rd.in = t.rd.in[:0]
	t.releaseIn()
	t.rd.msg = nil
	var ce *wsCloseError
	var pe *wsProtocolError
	switch {
	case errors.As(err, &ce):
		// The echo; FormatCloseMessage sends an empty body for "no status".
		t.enqueue(newFrame(ws.CloseMessage, ws.FormatCloseMessage(ce.code, "")))
		t.beginClose()
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF):
		t.closeConn()
	case errors.As(err, &pe):
		t.enqueue(newFrame(ws.CloseMessage, ws.FormatCloseMessage(pe.code, pe.text)))
		t.OnError("websocket error", err)
		t.beginClose()
	default:
		t.OnError("websocket error", err)
		t.closeConn()
	}
}

// validReceivedCloseCode reports whether a client may send code (RFC 6455
// section 7.4).
func validReceivedCloseCode(code int) bool {
	switch code {
	case ws.CloseNormalClosure, ws.CloseGoingAway, ws.CloseProtocolError, ws.CloseUnsupportedData,
		ws.CloseInvalidFramePayloadData, ws.ClosePolicyViolation, ws.CloseMessageTooBig,
		ws.CloseMandatoryExtension, ws.CloseInternalServerErr, ws.CloseServiceRestart, ws.CloseTryAgainLater:
		return true
	}
	return code >= 3000 && code <= 4999
}

// maskBytes unmasks b in place with the 4-byte key.
func maskBytes(b, key []byte) {
	k := binary.LittleEndian.Uint32(key)
	k64 := uint64(k)<<32 | uint64(k)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}
