package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// WSClient is a minimal Socket.IO v5 client over an Engine.IO v4 WebSocket,
// for load and failure tests that need many fast clients, or one that stops
// reading, where a Node process would be the bottleneck. Compatibility is
// proven with the official client; this one only speaks the subset those
// tests need: connect with a token, answer pings, receive events.
type WSClient struct {
	conn *websocket.Conn
	SID  string

	writeMu sync.Mutex
	done    chan struct{}
	pings   atomic.Int64
	// Err is why the connection ended; read it after Done is closed.
	Err error
}

// DialWS connects to the server at baseURL as the holder of token and waits
// for the Socket.IO connect. It does not start reading: call Run for that, or
// leave the client unread to play a slow consumer.
func DialWS(ctx context.Context, baseURL, token string) (*WSClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}
	conn, _, err := dialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	c := &WSClient{conn: conn, done: make(chan struct{})}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(deadline)
	}
	if _, msg, err := conn.ReadMessage(); err != nil || len(msg) == 0 || msg[0] != '0' {
		conn.Close()
		return nil, fmt.Errorf("engine.io open: %q, %v", msg, err)
	}
	auth, _ := json.Marshal(map[string]string{"token": token})
	if err := c.write(append([]byte("40"), auth...)); err != nil {
		conn.Close()
		return nil, err
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("socket.io connect: %w", err)
		}
		switch {
		case bytes.Equal(msg, []byte("2")):
			_ = c.write([]byte("3"))
		case bytes.HasPrefix(msg, []byte("40")):
			var ok struct{ SID string }
			_ = json.Unmarshal(msg[2:], &ok)
			c.SID = ok.SID
			_ = conn.SetReadDeadline(time.Time{})
			return c, nil
		case bytes.HasPrefix(msg, []byte("44")):
			conn.Close()
			return nil, fmt.Errorf("connect_error: %s", msg[2:])
		}
	}
}

func (c *WSClient) write(msg []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, msg)
}

// Run reads until the connection ends, answering pings and calling onEvent
// with each event's name and first argument. It closes Done when it returns.
func (c *WSClient) Run(onEvent func(event string, data json.RawMessage)) {
	defer close(c.done)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			c.Err = err
			return
		}
		switch {
		case bytes.Equal(msg, []byte("2")):
			c.pings.Add(1)
			if err := c.write([]byte("3")); err != nil {
				c.Err = err
				return
			}
		case bytes.HasPrefix(msg, []byte("42")):
			var args []json.RawMessage
			if err := json.Unmarshal(msg[2:], &args); err != nil || len(args) == 0 {
				c.Err = fmt.Errorf("bad event packet %q", msg)
				return
			}
			var event string
			_ = json.Unmarshal(args[0], &event)
			var data json.RawMessage
			if len(args) > 1 {
				data = args[1]
			}
			onEvent(event, data)
		case bytes.HasPrefix(msg, []byte("41")):
			c.Err = errors.New("io server disconnect")
			return
		}
	}
}

// Pings is how many Engine.IO pings Run has answered.
func (c *WSClient) Pings() int64 { return c.pings.Load() }

// Done is closed when Run returns.
func (c *WSClient) Done() <-chan struct{} { return c.done }

// Close closes the connection.
func (c *WSClient) Close() { _ = c.conn.Close() }

// ReadAll reads and discards until the connection ends or d passes, and
// reports whether the server closed it. A slow consumer uses it to find out,
// once it reads again, that it was disconnected.
func (c *WSClient) ReadAll(d time.Duration) (closedByServer bool) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, _, err := c.conn.NextReader(); err != nil {
			var ne interface{ Timeout() bool }
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}
