package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
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
	hc := &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: p.workers,
			MaxConnsPerHost:     p.workers,
			DisableCompression:  true,
		},
	}
	defer hc.CloseIdleConnections()

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
		base := p.bases[w%len(p.bases)]
		wg.Add(1)
		go func() {
			defer wg.Done()
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
				if err := p.post(ctx, hc, base+path, path, body); err != nil {
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

// post sends body to url; path names it in errors.
func (p *publisher) post(ctx context.Context, hc *http.Client, url, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.apiKey)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %s", path, errorClass(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: HTTP %d %s", path, resp.StatusCode, abbreviate(answer))
	}
	return nil
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
