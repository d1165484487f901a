package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one REST call of the publisher.
const requestTimeout = 30 * time.Second

// publisher sends the messages of a scenario through the REST API, workers
// requests at a time over keep-alive connections. Worker w sends to
// bases[w mod len(bases)], so several instances share the load evenly.
//
// Each worker has one connection of its own (restConn), not net/http's
// client: its Transport runs a read and a write goroutine per connection and
// hands each request between three goroutines, which cost the generator
// about as much CPU per request as the server spends answering it, on the
// cores the servers use.
type publisher struct {
	bases   []string
	apiKey  string
	workers int
	// batch is the number of messages per POST /api/batch; 0 sends one
	// request per message to path.
	batch int
	path  string
	// rate paces the messages (per second); 0 sends as fast as answers come.
	rate float64
	// item appends the JSON body of message seq, stamped with send time t.
	item func(b []byte, seq, t int64) []byte
}

// sendResult is what the publisher did. accepted[seq] is true when the
// server answered 2xx for the request that carried seq.
type sendResult struct {
	accepted  []bool
	nAccepted int
	requests  int
	errs      map[string]int
	start     time.Time // first request
	end       time.Time // last answer
}

// method describes how the messages are sent, for the report.
func (p *publisher) method() string {
	s := fmt.Sprintf("%d HTTP workers, keep-alive", p.workers)
	if len(p.bases) > 1 {
		s += fmt.Sprintf(", spread over the %d instances", len(p.bases))
	}
	if p.rate > 0 {
		s += fmt.Sprintf(", paced at %.0f msg/s", p.rate)
	}
	if p.batch > 0 {
		return fmt.Sprintf("POST /api/batch, %d messages per call (%s)", p.batch, s)
	}
	return fmt.Sprintf("POST %s, one message per call (%s)", p.path, s)
}

// run sends messages 0..total-1 and returns when all were answered or ctx
// ended.
func (p *publisher) run(ctx context.Context, total int) sendResult {
	chunk, path := 1, p.path
	if p.batch > 0 {
		chunk, path = p.batch, "/api/batch"
	}
	chunks := (total + chunk - 1) / chunk
	res := sendResult{accepted: make([]bool, total), errs: map[string]int{}, start: time.Now()}
	var (
		next     atomic.Int64
		requests atomic.Int64
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	fail := func(msg string) {
		mu.Lock()
		res.errs[msg]++
		mu.Unlock()
	}
	for w := range min(p.workers, chunks) {
		conn, err := newRESTConn(p.bases[w%len(p.bases)], p.apiKey)
		if err != nil {
			fail(err.Error())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.close()
			var body []byte
			for {
				k := int(next.Add(1) - 1)
				if k >= chunks || ctx.Err() != nil {
					return
				}
				lo, hi := k*chunk, min((k+1)*chunk, total)
				if p.rate > 0 {
					due := res.start.Add(time.Duration(float64(lo) / p.rate * float64(time.Second)))
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Until(due)):
					}
				}
				t := time.Now().UnixNano()
				body = body[:0]
				if p.batch > 0 {
					body = append(body, `{"messages":[`...)
					for seq := lo; seq < hi; seq++ {
						if seq > lo {
							body = append(body, ',')
						}
						body = p.item(body, int64(seq), t)
					}
					body = append(body, "]}"...)
				} else {
					body = p.item(body, int64(lo), t)
				}
				requests.Add(1)
				if err := conn.post(ctx, path, body); err != nil {
					fail(err.Error())
					continue
				}
				for seq := lo; seq < hi; seq++ {
					res.accepted[seq] = true
				}
			}
		}()
	}
	wg.Wait()
	res.end = time.Now()
	res.requests = int(requests.Load())
	for _, ok := range res.accepted {
		if ok {
			res.nAccepted++
		}
	}
	return res
}

// restConn is a keep-alive HTTP/1.1 connection to one server, used by one
// worker: it writes each request from a header prepared once and reads the
// answer with net/http's parser. After an error the connection is closed
// and the next request dials again.
type restConn struct {
	addr   string
	header []byte // "POST " is followed by the path, then header
	conn   net.Conn
	br     *bufio.Reader
	buf    []byte
}

// newRESTConn returns the connection of base ("http://host:port") that
// sends apiKey.
func newRESTConn(base, apiKey string) (*restConn, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("publisher: %q is not an http://host:port address", base)
	}
	header := " HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nX-API-Key: " + apiKey +
		"\r\nContent-Length: "
	return &restConn{addr: u.Host, header: []byte(header)}, nil
}

// post sends body to path and fails unless the answer is 2xx.
func (c *restConn) post(ctx context.Context, path string, body []byte) error {
	if c.conn == nil {
		d := net.Dialer{Timeout: requestTimeout}
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return fmt.Errorf("POST %s: %s", path, errorClass(err))
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 4<<10)
	}
	// The request ends at its deadline, or at once when ctx ends.
	_ = c.conn.SetDeadline(time.Now().Add(requestTimeout))
	conn := c.conn
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })()
	c.buf = append(append(append(c.buf[:0], "POST "...), path...), c.header...)
	c.buf = append(strconv.AppendInt(c.buf, int64(len(body)), 10), "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.conn.Write(c.buf); err != nil {
		c.close()
		return fmt.Errorf("POST %s: %s", path, errorClass(err))
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return fmt.Errorf("POST %s: %s", path, errorClass(err))
	}
	answer, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	if err != nil {
		return fmt.Errorf("POST %s: %s", path, errorClass(err))
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: HTTP %d %s", path, resp.StatusCode, abbreviate(answer))
	}
	return nil
}

func (c *restConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// broadcastItem is the body of broadcast seq: {"event":…,"data":{"t":…,"seq":…}}.
func broadcastItem(b []byte, seq, t int64) []byte {
	b = append(b, `{"event":"`+benchEvent+`","data":{"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, "}}"...)
}

// userItem returns the body maker of per-user messages: seq goes to user
// "u<seq mod users>".
func userItem(users int) func(b []byte, seq, t int64) []byte {
	return func(b []byte, seq, t int64) []byte {
		b = append(b, `{"userId":"u`...)
		b = strconv.AppendInt(b, seq%int64(users), 10)
		b = append(b, `","event":"`+benchEvent+`","data":{"t":`...)
		b = strconv.AppendInt(b, t, 10)
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, seq, 10)
		return append(b, "}}"...)
	}
}
