package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

// seqCounter records, for one client, how often each seq was received.
type seqCounter struct {
	mu   sync.Mutex
	seen map[int]int
	n    atomic.Int64
}

func newSeqCounter() *seqCounter { return &seqCounter{seen: map[int]int{}} }

func (c *seqCounter) onEvent(_ string, data json.RawMessage) {
	var m struct{ Seq int }
	if json.Unmarshal(data, &m) != nil {
		return
	}
	c.mu.Lock()
	c.seen[m.Seq]++
	c.mu.Unlock()
	c.n.Add(1)
}

// check reports losses and duplicates against seqs 0..total-1.
func (c *seqCounter) check(total int) (lost, dup int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for seq := range total {
		switch n := c.seen[seq]; {
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
	}
	return lost, dup
}

// dialAll connects n WebSocket clients as distinct users and starts reading.
func dialAll(t *testing.T, s *harness.Server, prefix string, n int) ([]*harness.WSClient, []*seqCounter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clients := make([]*harness.WSClient, n)
	counters := make([]*seqCounter, n)
	for i := range n {
		c, err := harness.DialWS(ctx, s.URL, harness.UserToken(t, s.JWTSecret(), fmt.Sprintf("%s-%d", prefix, i), nil))
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(c.Close)
		clients[i], counters[i] = c, newSeqCounter()
		go c.Run(counters[i].onEvent)
	}
	return clients, counters
}

// metric reads one unlabelled sample from /metrics.
func metric(t *testing.T, s *harness.Server, name string) float64 {
	t.Helper()
	status, body := s.Do("GET", "/metrics", nil, nil)
	if status != 200 {
		t.Fatalf("GET /metrics: %d", status)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// publishBroadcasts posts count broadcasts with seqs from next, in batches
// of per, each padded to about pad bytes, and returns how many were accepted.
func publishBroadcasts(t *testing.T, s *harness.Server, next *atomic.Int64, per, pad int) int {
	t.Helper()
	padding := strings.Repeat("x", pad)
	msgs := make([]any, per)
	first := int(next.Add(int64(per))) - per
	for i := range msgs {
		msgs[i] = map[string]any{"event": "load", "data": map[string]any{"seq": first + i, "pad": padding}}
	}
	if status, body := s.Do("POST", "/api/batch", map[string]any{"messages": msgs}, nil); status != 202 {
		t.Errorf("POST /api/batch: %d %s", status, body)
		return 0
	}
	return per
}

// TestHeartbeatsKeepEveryConnectionUnderBroadcastLoad saturates the server
// with broadcasts to many clients for several ping intervals (short ones) and
// proves that no healthy connection is closed and nothing is lost.
func TestHeartbeatsKeepEveryConnectionUnderBroadcastLoad(t *testing.T) {
	const (
		clients  = 100
		interval = time.Second
		loadFor  = 4 * time.Second // four ping intervals
		workers  = 3
	)
	env := harness.DefaultEnv()
	env["PING_INTERVAL"] = interval.String()
	// Long enough for a client of this test, sharing two cores with a
	// race-instrumented server, to read through its backlog and answer; the
	// engine race this guards against fires at any timeout not above the
	// interval, which the configuration refuses.
	env["PING_TIMEOUT"] = (5 * interval).String()
	env["LOG_LEVEL"] = "info"
	s := harness.StartServer(t, env)
	conns, counters := dialAll(t, s, "load", clients)

	var next atomic.Int64
	var published atomic.Int64
	deadline := time.Now().Add(loadFor)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := 0; i < 10_000 && time.Now().Before(deadline); i++ {
				published.Add(int64(publishBroadcasts(t, s, &next, 50, 64)))
			}
		})
	}
	wg.Wait()
	total := int(published.Load())
	if total == 0 || int(next.Load()) != total {
		t.Fatalf("published %d of %d broadcasts", total, next.Load())
	}

	waitUntil := time.Now().Add(60 * time.Second)
	for i, c := range counters {
		for c.n.Load() < int64(total) && time.Now().Before(waitUntil) {
			select {
			case <-conns[i].Done():
				t.Fatalf("client %d was disconnected under load after %d of %d messages: %v", i, c.n.Load(), total, conns[i].Err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// The engine sends its next ping only once the last one was answered,
	// and a client reading through its backlog answers late: give each
	// client a few more intervals, once it has read everything, to show
	// that its heartbeat goes on.
	for i := range conns {
		for conns[i].Pings() < 2 && time.Now().Before(waitUntil) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, c := range counters {
		if lost, dup := c.check(total); lost != 0 || dup != 0 {
			t.Errorf("client %d: %d of %d broadcasts lost, %d duplicated", i, lost, total, dup)
		}
		select {
		case <-conns[i].Done():
			t.Errorf("client %d was disconnected: %v", i, conns[i].Err)
		default:
		}
		// Heartbeats ran during the load: every client answered pings.
		if p := conns[i].Pings(); p < 2 {
			t.Errorf("client %d answered %d pings in %v of load and up to a minute after, with a %v interval; the heartbeat did not run", i, p, loadFor, interval)
		}
	}
	if active := metric(t, s, "socket_connections_active"); active != clients {
		t.Errorf("socket_connections_active = %v, want %d", active, clients)
	}
	if strings.Contains(s.Logs(), "ping timeout") {
		t.Errorf("the server closed a connection for a ping timeout")
	}
	t.Logf("%d broadcasts to %d clients (%d deliveries) in %v with a %v ping interval", total, clients, total*clients, loadFor, interval)
}

// TestSlowConsumerIsDisconnectedAndMemoryStaysBounded connects a client that
// never reads: once its queue passes SOCKET_QUEUE_MAX_BYTES it is
// disconnected, the other clients receive everything, and the server does not
// keep what the slow client could not take.
func TestSlowConsumerIsDisconnectedAndMemoryStaysBounded(t *testing.T) {
	const (
		fast    = 3
		count   = 640
		per     = 4
		pad     = 32 << 10 // 32 KiB a message: 20 MiB in all
		maxQ    = 2 << 20  // well above one call's 128 KiB, so fast clients never reach it
		settled = 30 * time.Second
	)
	env := harness.DefaultEnv()
	env["SOCKET_QUEUE_MAX_BYTES"] = strconv.Itoa(maxQ)
	env["LOG_LEVEL"] = "info"
	// What is measured is the slow socket's queue: the embedded bus's
	// recovery log (bounded at 32 MiB, router/bus_memory.go) is left out.
	env["RECOVERY_WINDOW"] = "0s"
	s := harness.StartServer(t, env)
	conns, counters := dialAll(t, s, "fast", fast)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow, err := harness.DialWS(ctx, s.URL, harness.UserToken(t, s.JWTSecret(), "slow", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	heapBefore := metric(t, s, "go_memstats_heap_inuse_bytes")

	var next atomic.Int64
	for sent := 0; sent < count; sent += per {
		publishBroadcasts(t, s, &next, per, pad)
	}

	waitUntil := time.Now().Add(settled)
	for i, c := range counters {
		for c.n.Load() < count && time.Now().Before(waitUntil) {
			select {
			case <-conns[i].Done():
				t.Fatalf("fast client %d was disconnected: %v", i, conns[i].Err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if lost, dup := c.check(count); lost != 0 || dup != 0 {
			t.Errorf("fast client %d: %d of %d lost, %d duplicated", i, lost, count, dup)
		}
	}
	if n := metric(t, s, "socket_slow_consumers_total"); n != 1 {
		t.Errorf("socket_slow_consumers_total = %v, want 1", n)
	}
	eventually(t, wait, func() (bool, string) {
		active := metric(t, s, "socket_connections_active")
		return active == fast, fmt.Sprintf("socket_connections_active = %v, want %d (the slow client gone)", active, fast)
	})
	if !strings.Contains(s.Logs(), "slow consumer disconnected") {
		t.Errorf("the slow consumer's disconnection was not logged")
	}
	if !slow.ReadAll(10 * time.Second) {
		t.Errorf("the slow client's connection is still open")
	}
	// Unbounded, the slow client's queue would keep all 20 MiB of frames
	// alive; bounded, what stays is garbage the collector may not have
	// reclaimed yet, well under half of it.
	grown := metric(t, s, "go_memstats_heap_inuse_bytes") - heapBefore
	if limit := float64(count*pad) / 2; grown > limit {
		t.Errorf("server heap grew by %.1f MiB after %d MiB sent (limit %.1f MiB)", grown/(1<<20), count*pad>>20, limit/(1<<20))
	}
	t.Logf("heap grew by %.1f MiB while %d MiB were broadcast", grown/(1<<20), count*pad>>20)
}
