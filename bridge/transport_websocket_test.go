package bridge

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// rawTransport is a wsTransport writing to conn, as Construct sets it up,
// without the engine.
func rawTransport(t *testing.T, conn *net.TCPConn) *wsTransport {
	t.Helper()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return &wsTransport{
		limits:  &wsLimits{maxQueueBytes: 1 << 30, writeTimeout: 10 * time.Second},
		netConn: conn,
		raw:     raw,
	}
}

func TestIdleSocketIsWrittenByTheCaller(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enqueue func(*wsTransport, wsFrame)
	}{
		{"a frame", func(tr *wsTransport, f wsFrame) { tr.enqueue(f) }},
		{"a heartbeat", (*wsTransport).enqueueFront},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			tr := rawTransport(t, server)
			f := newTextFrame([]byte(`42["hello"]`))
			tc.enqueue(tr, f)
			tr.mu.Lock()
			writing, queued := tr.writing, tr.queued
			tr.mu.Unlock()
			if writing || queued != 0 {
				t.Fatalf("after %s to an idle socket: writer running %v, %d bytes queued; want it written at once", tc.name, writing, queued)
			}
			got := make([]byte, len(f))
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, f) {
				t.Fatalf("read %q, want %q", got, f)
			}
		})
	}
}

func TestWhatTheKernelDoesNotTakeIsWrittenInOrder(t *testing.T) {
	server, client := tcpPair(t)
	// A client that reads nothing yet: the kernel's buffers fill, the
	// first writes are partial, the rest waits in the queue. (Much smaller
	// buffers than the default stall loopback TCP for seconds.)
	_ = server.SetWriteBuffer(64 << 10)
	tr := rawTransport(t, server)
	var want bytes.Buffer
	const frames = 2000
	for i := range frames {
		f := newTextFrame([]byte(fmt.Sprintf(`42["e",%d,"%s"]`, i, bytes.Repeat([]byte("x"), i%3000))))
		want.Write(f)
		tr.enqueue(f)
	}
	tr.mu.Lock()
	queued := tr.queued
	tr.mu.Unlock()
	if queued == 0 {
		t.Fatalf("all %d bytes were taken by the kernel: the test did not fill the socket", want.Len())
	}
	got := make([]byte, want.Len())
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.ReadFull(client, got); err != nil {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		t.Fatalf("read %d of %d bytes: %v (writing %v, queued %d, closed %v)", n, want.Len(), err, tr.writing, tr.queued, tr.closed)
	}
	if !bytes.Equal(got, want.Bytes()) {
		i := 0
		for i < len(got) && got[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("the stream differs from the frames queued at byte %d of %d", i, want.Len())
	}
}

func TestFailedWriteClosesTheTransport(t *testing.T) {
	server, client := tcpPair(t)
	_ = client.SetLinger(0)
	_ = client.Close() // RST: the next writes fail
	tr := rawTransport(t, server)
	// closeConn closes the gorilla connection; without one here, only the
	// state is checked.
	defer func() { _ = recover() }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tr.mu.Lock()
		closed := tr.closed
		tr.mu.Unlock()
		if closed {
			return
		}
		func() {
			defer func() { _ = recover() }()
			tr.enqueue(newTextFrame([]byte(`42["e"]`)))
		}()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("writes to a reset connection did not close the transport")
}

var _ syscall.Conn = (*net.TCPConn)(nil)

func TestEnginePacketsAreFramedAsTheParserEncodesThem(t *testing.T) {
	packets := []func() *packet.Packet{
		func() *packet.Packet { return &packet.Packet{Type: packet.PING} },
		func() *packet.Packet {
			return &packet.Packet{Type: packet.PONG, Data: types.NewStringBufferString("probe")}
		},
		func() *packet.Packet {
			return &packet.Packet{Type: packet.OPEN, Data: types.NewStringBufferString(`{"sid":"x","pingInterval":25000}`)}
		},
		func() *packet.Packet {
			return &packet.Packet{Type: packet.MESSAGE, Data: types.NewStringBufferString(`2["e",{"a":"é"}]`)}
		},
		func() *packet.Packet {
			return &packet.Packet{Type: packet.MESSAGE, Data: types.NewBytesBuffer([]byte{1, 2, 3})}
		},
		func() *packet.Packet { return &packet.Packet{Type: packet.CLOSE} },
	}
	tr, _ := bareTransport(t, &wsLimits{})
	for i, mk := range packets {
		p := mk()
		got, err := tr.encodeFrame(p)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.Data != nil && p.Data.(types.BufferInterface).Len() != 0 {
			t.Errorf("packet %d: its data was not read", i)
		}
		q := mk()
		data, err := tr.Parser().EncodePacket(q, tr.SupportsBinary())
		if err != nil {
			t.Fatal(err)
		}
		op := ws.TextMessage
		if _, isText := data.(*types.StringBuffer); !isText {
			op = ws.BinaryMessage
		}
		if want := newFrame(op, data.Bytes()); !bytes.Equal(got, want) {
			t.Errorf("packet %d (%s): frame %q, the parser's %q", i, p.Type, got, want)
		}
	}
}

func TestAFrameWrittenAtOnceAllocatesNothing(t *testing.T) {
	if raceBuild {
		t.Skip("the race detector makes sync.Pool drop what is put back")
	}
	server, client := tcpPair(t)
	go func() { _, _ = io.Copy(io.Discard, client) }()
	tr := rawTransport(t, server)
	frames := []wsFrame{newTextFrame([]byte(`42["hello"]`)), newTextFrame([]byte(`42["world"]`))}
	tr.tryWrite(frames)
	if n := testing.AllocsPerRun(100, func() {
		if rest := tr.tryWrite(frames); len(rest) != 0 {
			t.Fatalf("%d frames not written", len(rest))
		}
	}); n > 0 {
		t.Fatalf("a write tried at once allocates %.1f times, want none", n)
	}
}
