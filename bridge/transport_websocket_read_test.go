package bridge

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	ws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/web3-socket/web3-socket/schemas"
)

// clientFrame is a masked client-to-server frame.
func clientFrame(op int, fin bool, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = binary.BigEndian.AppendUint16(append(f, 0x80|126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 0x80|127), uint64(n))
	}
	key := []byte{0x37, 0xfa, 0x21, 0x3d}
	f = append(f, key...)
	for i, c := range payload {
		f = append(f, c^key[i&3])
	}
	return f
}

// wsEvents is what a transport told the engine.
type wsEvents struct {
	packets chan *packet.Packet
	errs    chan error
	closed  chan struct{}
}

func listen(tr *wsTransport) *wsEvents {
	e := &wsEvents{packets: make(chan *packet.Packet, 64), errs: make(chan error, 8), closed: make(chan struct{})}
	_ = tr.On("packet", func(args ...any) { e.packets <- args[0].(*packet.Packet) })
	_ = tr.On("error", func(args ...any) {
		err, _ := args[0].(error)
		e.errs <- err
	})
	_ = tr.Once("close", func(...any) { close(e.closed) })
	return e
}

// upgradedTransport returns a wsTransport built as the engine builds it, on
// a WebSocket upgraded over loopback TCP, and the client's end.
// waitClosed fails the test with why unless the transport closes within 10s.
func (e *wsEvents) waitClosed(t *testing.T, why string) {
	t.Helper()
	select {
	case <-e.closed:
	case <-time.After(10 * time.Second):
		t.Fatal(why)
	}
}

// waitClosedWithoutError waits for the transport to close and fails if it
// reported an error: what closed it (the client's close frame, the peer
// gone between frames) is not one.
func (e *wsEvents) waitClosedWithoutError(t *testing.T, what string) {
	t.Helper()
	e.waitClosed(t, "the transport did not close after "+what)
	select {
	case err := <-e.errs:
		t.Fatalf("%s is not an error, got %v", what, err)
	default:
	}
}

func upgradedTransport(t *testing.T, limits *wsLimits, idle time.Duration) (*wsTransport, *wsEvents, *ws.Conn) {
	t.Helper()
	made := make(chan *wsTransport, 1)
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&ws.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			close(made)
			return
		}
		ctx := types.NewHttpContext(w, r)
		ctx.Websocket = &types.WebSocketConn{EventEmitter: types.NewEventEmitter(), Conn: c}
		ctx.IdleTimeout = idle
		permission := make(chan bool, 1)
		ctx.SetTransportReadPermission(permission)
		tr := (&wsTransportCtor{limits: limits}).New(ctx).(*wsTransport)
		made <- tr
		<-hold // the test listens before the transport reads
		permission <- true
	}))
	t.Cleanup(srv.Close)
	client, _, err := ws.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := <-made
	if tr == nil {
		t.Fatal("upgrade failed")
	}
	e := listen(tr)
	close(hold)
	t.Cleanup(func() {
		_ = client.Close()
		tr.closeConn()
	})
	return tr, e, client
}

// inReadModes runs test with the transport's socket watched by a poller
// (poller set; Linux only) and with a reader waiting in a read (poller nil).
func inReadModes(t *testing.T, test func(t *testing.T, poller *wsPoller)) {
	t.Run("watched", func(t *testing.T) {
		test(t, testPoller(t))
	})
	t.Run("waiting reader", func(t *testing.T) { test(t, nil) })
}

// testPoller returns a poller closed when the test ends. The test is skipped
// off Linux, where there is none, and fails on Linux when it cannot be had.
func testPoller(t *testing.T) *wsPoller {
	t.Helper()
	p, err := newWSPoller()
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(p.close)
	return p
}

func wantPacket(t *testing.T, e *wsEvents, want string) {
	t.Helper()
	select {
	case p := <-e.packets:
		if p.Type != packet.MESSAGE {
			t.Fatalf("got a %s packet, want a message %.40q", p.Type, want)
		}
		got, _ := io.ReadAll(p.Data)
		if string(got) != want {
			t.Fatalf("got message %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), want, len(want))
		}
	case err := <-e.errs:
		t.Fatalf("transport error %v, want message %.40q", err, want)
	case <-time.After(10 * time.Second):
		t.Fatalf("no message, want %.40q", want)
	}
}

// readClose reads from the client until the server's close frame and
// returns its code.
func readClose(t *testing.T, client *ws.Conn) int {
	t.Helper()
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := client.ReadMessage()
		var ce *ws.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			t.Fatalf("read %v, want a close frame", err)
		}
	}
}

func TestClientFramesSplitAnyWayReachTheEngineInOrder(t *testing.T) {
	inReadModes(t, func(t *testing.T, poller *wsPoller) {
		_, e, client := upgradedTransport(t, &wsLimits{poller: poller, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second, maxPayload: 1 << 20}, 0)
		pongs := make(chan string, 1)
		client.SetPongHandler(func(data string) error { pongs <- data; return nil })
		go func() {
			for {
				if _, _, err := client.ReadMessage(); err != nil {
					return
				}
			}
		}()

		big := "4" + strings.Repeat("x", 3*wsReadBufferSize)
		var stream []byte
		stream = append(stream, clientFrame(ws.TextMessage, true, []byte("4one"))...)
		stream = append(stream, clientFrame(ws.TextMessage, false, []byte("4tw"))...)
		stream = append(stream, clientFrame(ws.PingMessage, true, []byte("between"))...)
		stream = append(stream, clientFrame(0, true, []byte("o"))...)
		stream = append(stream, clientFrame(ws.TextMessage, true, []byte(big))...)
		stream = append(stream, clientFrame(ws.TextMessage, true, []byte("4after"))...)
		conn := client.NetConn()
		for i, step := 0, 1; i < len(stream); i, step = i+step, step%7+1 {
			if _, err := conn.Write(stream[i:min(i+step, len(stream))]); err != nil {
				t.Fatal(err)
			}
			if i < 64 {
				time.Sleep(time.Millisecond) // separate reads for the small frames
			}
		}
		wantPacket(t, e, "one")
		wantPacket(t, e, "two")
		wantPacket(t, e, big[1:])
		wantPacket(t, e, "after")
		select {
		case p := <-pongs:
			if p != "between" {
				t.Fatalf("pong %q, want the ping's %q", p, "between")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the ping between two fragments got no pong")
		}
	})
}

func TestCloseFrameIsEchoedAndClosesTheTransportWithoutError(t *testing.T) {
	inReadModes(t, func(t *testing.T, poller *wsPoller) {
		_, e, client := upgradedTransport(t, &wsLimits{poller: poller, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}, 0)
		if err := client.WriteControl(ws.CloseMessage, ws.FormatCloseMessage(4001, "bye"), time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if code := readClose(t, client); code != 4001 {
			t.Fatalf("close echo with code %d, want 4001", code)
		}
		e.waitClosedWithoutError(t, "a client's close")
	})
}

func TestBadClientFramesAreRefusedWithTheirCloseCode(t *testing.T) {
	inReadModes(t, func(t *testing.T, poller *wsPoller) {
		cases := []struct {
			name  string
			frame []byte
			code  int
		}{
			{"over the payload limit", clientFrame(ws.TextMessage, true, bytes.Repeat([]byte("x"), 2048)), ws.CloseMessageTooBig},
			{"fragments over the payload limit", append(clientFrame(ws.TextMessage, false, bytes.Repeat([]byte("x"), 800)),
				clientFrame(0, true, bytes.Repeat([]byte("x"), 800))...), ws.CloseMessageTooBig},
			{"not masked", []byte{0x81, 0x02, '4', 'x'}, ws.CloseProtocolError},
			{"reserved bits", append([]byte{0xc1}, clientFrame(ws.TextMessage, true, []byte("4x"))[1:]...), ws.CloseProtocolError},
			{"continuation without a message", clientFrame(0, true, []byte("x")), ws.CloseProtocolError},
			{"fragmented ping", clientFrame(ws.PingMessage, false, nil), ws.CloseProtocolError},
			{"unknown opcode", clientFrame(5, true, nil), ws.CloseProtocolError},
			{"bad close code", clientFrame(ws.CloseMessage, true, []byte{0x03, 0xed}), ws.CloseProtocolError},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, e, client := upgradedTransport(t, &wsLimits{poller: poller, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second, maxPayload: 1024}, 0)
				if _, err := client.NetConn().Write(tc.frame); err != nil {
					t.Fatal(err)
				}
				if code := readClose(t, client); code != tc.code {
					t.Fatalf("close code %d, want %d", code, tc.code)
				}
				select {
				case err := <-e.errs:
					if err == nil {
						t.Fatal("error event without an error")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the engine was not told of the error")
				}
				e.waitClosed(t, "the transport did not close")
				select {
				case p := <-e.packets:
					t.Fatalf("a refused frame reached the engine: %v", p)
				default:
				}
			})
		}
	})
}

func TestClientGoneMidFrameIsAnErrorAndGoneBetweenFramesIsNot(t *testing.T) {
	inReadModes(t, func(t *testing.T, poller *wsPoller) {
		for _, tc := range []struct {
			name    string
			sent    []byte
			wantErr bool
		}{
			{"between frames", clientFrame(ws.TextMessage, true, []byte("4whole")), false},
			{"in the middle of a frame", clientFrame(ws.TextMessage, true, []byte("4cut short"))[:6], true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, e, client := upgradedTransport(t, &wsLimits{poller: poller, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}, 0)
				if _, err := client.NetConn().Write(tc.sent); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond) // read before the FIN
				_ = client.NetConn().Close()
				e.waitClosed(t, "the transport did not close")
				select {
				case err := <-e.errs:
					if !tc.wantErr {
						t.Fatalf("a client gone %s is not an error, got %v", tc.name, err)
					}
				default:
					if tc.wantErr {
						t.Fatalf("a client gone %s was not reported as an error", tc.name)
					}
				}
			})
		}
	})
}

func TestIdleTimeoutEndsOnlyASilentConnection(t *testing.T) {
	inReadModes(t, func(t *testing.T, poller *wsPoller) {
		const idle = 600 * time.Millisecond
		_, e, client := upgradedTransport(t, &wsLimits{poller: poller, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}, idle)
		conn := client.NetConn()
		var last time.Time
		for range 8 { // 1.2s of traffic, a frame every idle/4
			if _, err := conn.Write(clientFrame(ws.PongMessage, true, nil)); err != nil {
				t.Fatal(err)
			}
			last = time.Now()
			select {
			case <-e.closed:
				t.Fatal("a connection with traffic was closed by the idle timeout")
			case <-time.After(idle / 4):
			}
		}
		e.waitClosed(t, "a silent connection outlived the idle timeout")
		// From the last frame: a late timer here only makes it longer.
		if waited := time.Since(last); waited < idle*3/4 {
			t.Fatalf("closed %v after the last frame, before the idle timeout %v", waited, idle)
		}
		select {
		case err := <-e.errs:
			if err == nil {
				t.Fatal("error event without an error")
			}
		default:
			t.Fatal("the idle timeout was not reported to the engine as an error")
		}
	})
}

// bareTransport is a transport with the engine's packet parser and no
// connection, to drive the frame handling directly.
func bareTransport(t *testing.T, limits *wsLimits) (*wsTransport, *wsEvents) {
	t.Helper()
	tr := &wsTransport{Transport: transports.MakeTransport(), limits: limits}
	tr.Prototype(tr)
	tr.Transport.Construct(types.NewHttpContext(httptest.NewRecorder(), httptest.NewRequest("GET", "/socket.io/?EIO=4", nil)))
	return tr, listen(tr)
}

func TestReadBufferIsHeldOnlyWhileAFrameIsIncomplete(t *testing.T) {
	tr, e := bareTransport(t, &wsLimits{maxPayload: 1 << 20})
	two := append(clientFrame(ws.TextMessage, true, []byte("4a")), clientFrame(ws.TextMessage, true, []byte("4b"))...)
	large := clientFrame(ws.TextMessage, true, []byte("4"+strings.Repeat("y", 2*wsReadBufferSize)))

	tr.rd.in = append(tr.limits.readBuffer(), two...)
	if _, err := tr.handleFrames(); err != nil {
		t.Fatal(err)
	}
	wantPacket(t, e, "a")
	wantPacket(t, e, "b")
	if tr.rd.in != nil {
		t.Fatalf("%d bytes of buffer held after every frame was handled, want none", cap(tr.rd.in))
	}

	tr.rd.in = append(tr.limits.readBuffer(), large[:100]...)
	if _, err := tr.handleFrames(); err != nil {
		t.Fatal(err)
	}
	if len(tr.rd.in) != 100 || cap(tr.rd.in) < len(large) {
		t.Fatalf("a partial frame left %d bytes in a %d-byte buffer, want the 100 read in room for all %d", len(tr.rd.in), cap(tr.rd.in), len(large))
	}
	tr.rd.in = append(tr.rd.in, large[100:]...)
	if _, err := tr.handleFrames(); err != nil {
		t.Fatal(err)
	}
	wantPacket(t, e, strings.Repeat("y", 2*wsReadBufferSize))
	if tr.rd.in != nil {
		t.Fatalf("the large frame's buffer is held after it was handled")
	}
}

// TestIdleConnectionsHoldNoGoroutine connects clients through the whole
// bridge: once connected and idle, they hold no goroutine (the poller
// watches them; without one, each holds its reader and nothing else) and no
// goroutine stack.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	const secret = "idle-test-secret-idle-test-secret"
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socket_errors_total"}, []string{"type"})
	b, err := New(Config{
		Auth: AuthConfig{Secret: secret}, OutboundTopic: "out", InboundTopic: "in",
	}, nopPublisher{}, NewMetrics(prometheus.NewRegistry(), errs), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	defer b.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket.io/?EIO=4&transport=websocket"

	connectOne := func(i int) *ws.Conn {
		c, _, err := ws.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, m, err := c.ReadMessage(); err != nil || m[0] != '0' {
			t.Fatalf("open packet: %q %v", m, err)
		}
		token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "user-" + string(rune('a'+i%26)), "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err := c.WriteMessage(ws.TextMessage, []byte(`40{"token":"`+token+`"}`)); err != nil {
			t.Fatal(err)
		}
		if _, m, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(m), "40") {
			t.Fatalf("connect answer: %q %v", m, err)
		}
		return c
	}
	connectOne(-1).Close() // the bridge's own goroutines, started once

	const n = 100
	settle := func() (goroutines int, stack uint64) {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.StackInuse
	}
	time.Sleep(100 * time.Millisecond)
	g0, s0 := settle()
	clients := make([]*ws.Conn, n)
	for i := range clients {
		clients[i] = connectOne(i)
		defer clients[i].Close()
	}
	// No goroutine each: under a goroutine's smallest stack (2 KiB) each,
	// with room for the test's and the runtime's own.
	want, limit := 0, 1<<10
	if b.poller == nil {
		// A goroutine starts with 2 KiB; one that had run the handshake's
		// handlers would keep twice that or more.
		want, limit = 1, 3<<10
		if raceBuild {
			limit *= 2
		}
	}
	var g1 int
	var s1 uint64
	for deadline := time.Now().Add(5 * time.Second); ; {
		g1, s1 = settle()
		if g1-g0 <= n*want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if per := float64(g1-g0) / n; per > float64(want)+0.05 {
		t.Errorf("%d idle connections hold %d goroutines (%.2f each), want %d each", n, g1-g0, per, want)
	}
	if per := float64(int64(s1)-int64(s0)) / n; per > float64(limit) {
		t.Errorf("idle connections hold %.0f bytes of goroutine stack each, want at most %d", per, limit)
	}
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, ...*schemas.Envelope) error { return nil }

func TestTextPacketsAreDecodedAsTheParserDecodesThem(t *testing.T) {
	for _, in := range []string{"4hello", "3", "2probe", "40{\"token\":\"x\"}", "6", "1", "bYWJj", "9unknown", "4"} {
		t.Run(in, func(t *testing.T) {
			tr, e := bareTransport(t, &wsLimits{})
			if tr.Parser() != parser.Parserv4() {
				t.Fatal("the transport's parser is not Engine.IO v4's")
			}
			want, _ := tr.Parser().DecodePacket(types.NewStringBuffer([]byte(in)))
			tr.deliver(ws.TextMessage, []byte(in))
			select {
			case got := <-e.packets:
				if got.Type != want.Type {
					t.Fatalf("packet type %q, the parser's %q", got.Type, want.Type)
				}
				gotData, wantData := readAll(got.Data), readAll(want.Data)
				if gotData != wantData {
					t.Fatalf("packet data %q, the parser's %q", gotData, wantData)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no packet")
			}
		})
	}
}

func readAll(r io.Reader) string {
	if r == nil {
		return ""
	}
	b, _ := io.ReadAll(r)
	return string(b)
}

func TestTransportLetsGoOfGorillasConnectionAndStillClosesOnce(t *testing.T) {
	inReadModes(t, func(t *testing.T, poller *wsPoller) {
		tr, e, client := upgradedTransport(t, &wsLimits{poller: poller, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}, 0)
		var closes atomic.Int32
		_ = tr.On("close", func(...any) { closes.Add(1) })
		for deadline := time.Now().Add(10 * time.Second); ; {
			tr.mu.Lock()
			detached := tr.conn == nil && tr.ctx == nil
			tr.mu.Unlock()
			if detached {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the transport still holds gorilla's connection once reading")
			}
			time.Sleep(time.Millisecond)
		}
		tr.closeConn()
		tr.closeConn()
		e.waitClosed(t, "the transport did not close")
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := client.ReadMessage(); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("the client's read after the close: %v, want the connection closed", err)
		}
		// The reader may be the one that emits "close", and e's listener
		// runs before this test's: the count may still be on its way.
		waitUntil(t, "close was not emitted", func() bool { return closes.Load() != 0 })
		if n := closes.Load(); n != 1 {
			t.Fatalf("close emitted %d times, want once", n)
		}
	})
}

// serveBridge starts a bridge verifying tokens with secret behind a test
// HTTP server; both stop when the test ends.
func serveBridge(t *testing.T, secret string) (*Bridge, *httptest.Server) {
	t.Helper()
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socket_errors_total"}, []string{"type"})
	b, err := New(Config{Auth: AuthConfig{Secret: secret}, OutboundTopic: "out", InboundTopic: "in"},
		nopPublisher{}, NewMetrics(prometheus.NewRegistry(), errs), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(func() {
		b.Close()
		srv.Close()
	})
	return b, srv
}

func TestConnectedSocketKeepsTheRequestButNotTheHandshakesCopiesOfIt(t *testing.T) {
	const secret = "handshake-test-secret-handshake-t"
	b, srv := serveBridge(t, secret)
	c, _, err := ws.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/socket.io/?EIO=4&transport=websocket&app=x",
		http.Header{"User-Agent": {"handshake-test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "hs-user", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err := c.WriteMessage(ws.TextMessage, []byte(`40{"token":"`+token+`"}`)); err != nil {
		t.Fatal(err)
	}
	if _, m, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(m), "40") {
		t.Fatalf("connect answer: %q %v", m, err)
	}
	sockets := b.registry.sockets("hs-user")
	if len(sockets) != 1 {
		t.Fatalf("%d sockets of the user, want 1", len(sockets))
	}
	h, req := sockets[0].Handshake(), sockets[0].Request()
	if h.Headers != nil || h.Query != nil || h.Auth != nil {
		t.Errorf("the handshake keeps headers %v, query %v, auth %v; want none", h.Headers, h.Query, h.Auth)
	}
	if ua := req.Headers().Peek("User-Agent"); ua != "handshake-test" {
		t.Errorf("the request's User-Agent is %q, want it kept", ua)
	}
	if app, _ := req.Query().Get("app"); app != "x" {
		t.Errorf("the request's query app=%q, want it kept", app)
	}
}

// The engine keeps a slim copy of the handshake's request (see
// third_party/README.md); a client that connects again on the same
// connection is authenticated, and its handshake built, from that copy.
func TestConnectingAgainOnOneConnectionReadsTheHandshakesRequest(t *testing.T) {
	const secret = "reconnect-test-secret-reconnect-t"
	b, srv := serveBridge(t, secret)
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "again-user", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	c, _, err := ws.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/socket.io/?EIO=4&transport=websocket&app=x",
		http.Header{"Authorization": {"Bearer " + token}, "Origin": {"http://app.example"}, "User-Agent": {"again-test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err != nil { // OPEN
		t.Fatal(err)
	}
	connect := func(round string) *socket.Socket {
		t.Helper()
		readConnect(t, c)
		sockets := b.registry.sockets("again-user")
		if len(sockets) != 1 {
			t.Fatalf("%s connect: %d sockets of the user, want 1", round, len(sockets))
		}
		return sockets[0]
	}
	first := connect("first")
	if err := c.WriteMessage(ws.TextMessage, []byte("41")); err != nil { // leaves the namespace
		t.Fatal(err)
	}
	waitUntil(t, "the socket is still registered after the client left the namespace", func() bool {
		return len(b.registry.sockets("again-user")) == 0
	})
	second := connect("second")
	if second.Id() == first.Id() {
		t.Fatal("the second connect got the first socket")
	}
	h1, h2 := first.Handshake(), second.Handshake()
	if h2.Url != "/socket.io/?EIO=4&transport=websocket&app=x" || h2.Url != h1.Url {
		t.Errorf("second handshake url %q, first %q; want the handshake request's", h2.Url, h1.Url)
	}
	if !h2.Xdomain || h2.Secure || h2.Address != h1.Address || h2.Address == "" {
		t.Errorf("second handshake xdomain %v secure %v address %q; want true, false, %q", h2.Xdomain, h2.Secure, h2.Address, h1.Address)
	}
	req := second.Request()
	if ua := req.Headers().Peek("User-Agent"); ua != "again-test" {
		t.Errorf("the request's User-Agent is %q, want the handshake's", ua)
	}
	if app, _ := req.Query().Get("app"); app != "x" {
		t.Errorf("the request's query app=%q, want the handshake's", app)
	}
	if req.Request().Context() != context.Background() {
		t.Error("the socket keeps the handshake request's context")
	}
}
