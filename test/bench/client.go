package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// benchEvent is the event name of every message the benchmark publishes.
const benchEvent = "bench"

// handshakeTimeout bounds the WebSocket upgrade and the Socket.IO connect of
// one client.
const handshakeTimeout = 15 * time.Second

var pong = []byte("3")

// tally counts what the clients of one scenario receive. Each client keeps
// a bitset of the messages it expects (its "slots"); the shared counters
// let the scenario see progress while clients read.
type tally struct {
	// slots is the number of messages one client may expect.
	slots int
	// stride is 0 when every client expects every seq (broadcast), else the
	// number of clients: seq goes to client seq%stride as its slot seq/stride.
	stride int

	lat     histogram
	unique  atomic.Int64 // first receipt of an expected message
	dups    atomic.Int64 // a seq received again by the same client
	strays  atomic.Int64 // events this client was not meant to get, or unreadable
	lastNS  atomic.Int64 // receive time of the latest unique delivery
	dropped atomic.Int64 // connections the server closed during the scenario
}

// slot maps seq to the slot of client idx, or -1 when idx should not get it.
func (t *tally) slot(idx int, seq int64) int {
	if seq < 0 {
		return -1
	}
	if t.stride == 0 {
		if seq >= int64(t.slots) {
			return -1
		}
		return int(seq)
	}
	if int(seq%int64(t.stride)) != idx {
		return -1
	}
	s := seq / int64(t.stride)
	if s >= int64(t.slots) {
		return -1
	}
	return int(s)
}

// client is one Socket.IO v5 client over an Engine.IO v4 WebSocket. Its
// reader goroutine owns got and buf; the scenario reads got after done.
type client struct {
	idx     int
	ws      *websocket.Conn
	tally   *tally
	got     []uint64
	buf     []byte
	closing atomic.Bool
	done    chan struct{}
	// dropReason says why the server ended the connection, when it did.
	dropReason string
}

// dialer is shared by all clients: write buffers come from a pool, so an
// idle client holds none, and no proxy is consulted for loopback.
var dialer = &websocket.Dialer{
	Proxy:            nil,
	HandshakeTimeout: handshakeTimeout,
	ReadBufferSize:   4096,
	WriteBufferPool:  &sync.Pool{},
}

// socketURL returns the Engine.IO WebSocket endpoint of the server at base.
func socketURL(base string) string {
	u, _ := url.Parse(base)
	u.Scheme = "ws"
	u.Path = "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	return u.String()
}

// connect opens the WebSocket, reads the open packet, connects to the main
// namespace with token and waits for the answer: CONNECT, or CONNECT_ERROR
// whose message becomes the error.
func connect(ctx context.Context, wsURL, token string, idx int, t *tally) (*client, error) {
	ws, resp, err := dialer.DialContext(ctx, wsURL, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket upgrade: HTTP %d", resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &client{idx: idx, ws: ws, tally: t, done: make(chan struct{})}
	if t.slots > 0 {
		c.got = make([]uint64, (t.slots+63)/64)
	}
	if err := c.handshake(token); err != nil {
		ws.Close()
		return nil, err
	}
	go c.read()
	return c, nil
}

func (c *client) handshake(token string) error {
	deadline := time.Now().Add(handshakeTimeout)
	_ = c.ws.SetReadDeadline(deadline)
	_ = c.ws.SetWriteDeadline(deadline)
	f, err := c.next()
	if err != nil {
		return fmt.Errorf("read open packet: %w", err)
	}
	if f.kind != frameOpen {
		return fmt.Errorf("want the Engine.IO open packet, got %q", abbreviate(f.payload))
	}
	auth := []byte(`40{"token":"` + token + `"}`)
	if err := c.ws.WriteMessage(websocket.TextMessage, auth); err != nil {
		return fmt.Errorf("send connect: %w", err)
	}
	for {
		f, err := c.next()
		if err != nil {
			return fmt.Errorf("read connect answer: %w", err)
		}
		switch f.kind {
		case frameConnect:
			_ = c.ws.SetReadDeadline(time.Time{})
			_ = c.ws.SetWriteDeadline(time.Time{})
			return nil
		case frameConnectError:
			return fmt.Errorf("connect_error: %s", abbreviate(f.payload))
		case framePing:
			if err := c.ws.WriteMessage(websocket.TextMessage, pong); err != nil {
				return fmt.Errorf("send pong: %w", err)
			}
		case frameNoop:
		default:
			return fmt.Errorf("want CONNECT, got frame kind %d %q", f.kind, abbreviate(f.payload))
		}
	}
}

// next reads one WebSocket message into the client's buffer and parses it.
func (c *client) next() (frame, error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return frame{}, err
	}
	c.buf = c.buf[:0]
	for {
		if len(c.buf) == cap(c.buf) {
			c.buf = append(c.buf, 0)[:len(c.buf)]
		}
		n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return frame{}, err
		}
	}
	if typ != websocket.TextMessage {
		return frame{kind: frameBinary}, nil
	}
	return parseFrame(c.buf), nil
}

// read is the client's reader goroutine: it answers pings and counts events
// until the connection ends.
func (c *client) read() {
	defer close(c.done)
	t := c.tally
	for {
		f, err := c.next()
		if err != nil {
			if !c.closing.Load() {
				c.dropReason = "read: " + err.Error()
				t.dropped.Add(1)
			}
			return
		}
		switch f.kind {
		case framePing:
			if err := c.ws.WriteMessage(websocket.TextMessage, pong); err != nil && !c.closing.Load() {
				c.dropReason = "write pong: " + err.Error()
				t.dropped.Add(1)
				return
			}
		case frameEvent:
			c.onEvent(f.payload)
		case frameDisconnect, frameClose:
			if !c.closing.Load() {
				c.dropReason = fmt.Sprintf("server closed (frame kind %d)", f.kind)
				t.dropped.Add(1)
			}
			return
		case frameNoop, frameAck:
		default:
			t.strays.Add(1)
		}
	}
}

func (c *client) onEvent(p []byte) {
	now := time.Now()
	t := c.tally
	name, data, ok := parseEvent(p)
	if !ok || name != benchEvent {
		t.strays.Add(1)
		return
	}
	s, ok := parseStamp(data)
	if !ok {
		t.strays.Add(1)
		return
	}
	slot := t.slot(c.idx, s.Seq)
	if slot < 0 {
		t.strays.Add(1)
		return
	}
	word, bit := slot/64, uint64(1)<<(slot%64)
	if c.got[word]&bit != 0 {
		t.dups.Add(1)
		return
	}
	c.got[word] |= bit
	t.lat.record(now.Sub(time.Unix(0, s.T)))
	t.unique.Add(1)
	t.lastNS.Store(now.UnixNano())
}

// has reports whether the client received slot; only after done is closed.
func (c *client) has(slot int) bool {
	return c.got[slot/64]&(uint64(1)<<(slot%64)) != 0
}

// close ends the connection on the client side and waits for the reader.
func (c *client) close() {
	c.closing.Store(true)
	_ = c.ws.Close()
	<-c.done
}

// connectAll connects n clients, concurrency at a time, client i with
// tokens[i], to the server at bases[i mod len(bases)]. It returns the
// clients in index order (nil where the client did not connect) and the
// errors, counted by message. It stops starting new connections when ctx
// ends.
func connectAll(ctx context.Context, bases []string, tokens []string, concurrency int, t *tally, progress func(done int)) ([]*client, map[string]int) {
	wsURLs := make([]string, len(bases))
	for i, b := range bases {
		wsURLs[i] = socketURL(b)
	}
	clients := make([]*client, len(tokens))
	var (
		mu    sync.Mutex
		errs  = map[string]int{}
		next  atomic.Int64
		count atomic.Int64
		wg    sync.WaitGroup
	)
	for range min(concurrency, len(tokens)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(tokens) {
					return
				}
				if ctx.Err() != nil {
					mu.Lock()
					errs["not attempted: "+context.Cause(ctx).Error()]++
					mu.Unlock()
					continue
				}
				c, err := connect(ctx, wsURLs[i%len(wsURLs)], tokens[i], i, t)
				if err != nil {
					mu.Lock()
					errs[errorClass(err)]++
					mu.Unlock()
				} else {
					clients[i] = c
				}
				if n := int(count.Add(1)); progress != nil {
					progress(n)
				}
			}
		}()
	}
	wg.Wait()
	return clients, errs
}

// closeAll closes every client, a few at a time so the server sees a storm
// it can absorb, and waits for all readers.
func closeAll(clients []*client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			c.close()
			<-sem
		}()
	}
	wg.Wait()
}

// errorClass shortens an error to a line that groups like failures: the
// ephemeral client port is left out.
func errorClass(err error) string {
	msg := err.Error()
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		msg = strings.SplitN(msg, ":", 2)[0] + ": timeout"
	}
	if i := strings.Index(msg, "127.0.0.1:"); i >= 0 {
		if j := strings.Index(msg[i:], "->"); j >= 0 {
			msg = msg[:i] + "…" + msg[i+j:]
		}
	}
	return abbreviate([]byte(msg))
}

func abbreviate(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// topErrors formats error counts, most frequent first, at most n lines.
func topErrors(errs map[string]int, n int) []string {
	type kv struct {
		msg   string
		count int
	}
	var all []kv
	for m, c := range errs {
		all = append(all, kv{m, c})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].count != all[j].count {
			return all[i].count > all[j].count
		}
		return all[i].msg < all[j].msg
	})
	var out []string
	for i, e := range all {
		if i == n {
			out = append(out, fmt.Sprintf("… and %d more kinds", len(all)-n))
			break
		}
		out = append(out, fmt.Sprintf("%d× %s", e.count, e.msg))
	}
	return out
}
