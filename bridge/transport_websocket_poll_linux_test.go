package bridge

import (
	"bytes"
	"log/slog"
	"runtime"
	"testing"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// goroutinesIn counts the goroutines with fn on their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			n++
		}
	}
	return n
}

// waitForNo waits until no goroutine has fn on its stack.
func waitForNo(t *testing.T, fn, why string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); goroutinesIn(fn) > 0; {
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const readers = "bridge.(*wsTransport).read"

// waitWatched waits until tr's socket is registered with p: the read path
// starts on a goroutine of its own after the upgrade.
func waitWatched(t *testing.T, p *wsPoller, tr *wsTransport) {
	t.Helper()
	watched := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.conns[tr.pollID] == tr
	}
	for deadline := time.Now().Add(10 * time.Second); !watched(); {
		if time.Now().After(deadline) {
			t.Fatal("the socket was never handed to the poller")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchedSocketIsReadAgainAfterIdling(t *testing.T) {
	_, e, client := upgradedTransport(t, &wsLimits{poller: testPoller(t), maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}, 0)
	for _, msg := range []string{"first", "second", "third"} {
		waitForNo(t, readers, "a reader is left on an idle socket")
		if err := client.WriteMessage(ws.TextMessage, []byte("4"+msg)); err != nil {
			t.Fatal(err)
		}
		wantPacket(t, e, msg)
	}
	// Two frames in one write, and one written as the reader ends.
	waitForNo(t, readers, "a reader is left on an idle socket")
	two := append(clientFrame(ws.TextMessage, true, []byte("4a")), clientFrame(ws.TextMessage, true, []byte("4b"))...)
	if _, err := client.NetConn().Write(two); err != nil {
		t.Fatal(err)
	}
	if _, err := client.NetConn().Write(clientFrame(ws.TextMessage, true, []byte("4c"))); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a", "b", "c"} {
		wantPacket(t, e, want)
	}
}

func TestWatchedSocketClosedByThePeerWhileIdleClosesTheTransport(t *testing.T) {
	_, e, client := upgradedTransport(t, &wsLimits{poller: testPoller(t), maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}, 0)
	waitForNo(t, readers, "a reader is left on an idle socket")
	_ = client.NetConn().Close()
	e.waitClosedWithoutError(t, "a peer gone between frames")
}

func TestClosingThePollerEndsItsGoroutine(t *testing.T) {
	const run = "bridge.(*wsPoller).run"
	p, err := newWSPoller()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); goroutinesIn(run) != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d poller goroutines, want 1", goroutinesIn(run))
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { p.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return")
	}
	waitForNo(t, run, "the poller's goroutine outlived close")
}

func TestClosingTheBridgeClosesItsPoller(t *testing.T) {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socket_errors_total"}, []string{"type"})
	b, err := New(Config{Auth: AuthConfig{Secret: "poller-test-secret-poller-test-sec"}, OutboundTopic: "out", InboundTopic: "in"},
		nopPublisher{}, NewMetrics(prometheus.NewRegistry(), errs), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if b.poller == nil {
		t.Fatal("a bridge on Linux has no poller")
	}
	b.Close()
	select {
	case <-b.poller.done:
	default:
		t.Fatal("the poller runs after Close")
	}
}

func TestRearmingAWatchedSocketAllocatesNothing(t *testing.T) {
	if raceBuild {
		t.Skip("the race detector makes sync.Pool drop what is put back")
	}
	p := testPoller(t)
	tr, _, _ := upgradedTransport(t, &wsLimits{poller: p, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}, 0)
	waitWatched(t, p, tr)
	waitForNo(t, readers, "a reader is left on an idle socket")
	if err := p.rearm(tr); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = p.rearm(tr) }); n > 0 {
		t.Fatalf("a re-arm allocates %.1f times, want none", n)
	}
}

func TestWatchedSocketHasAnIdleTimerOnlyWhenTheHeartbeatWouldNotCloseItFirst(t *testing.T) {
	for _, tc := range []struct {
		name            string
		heartbeat, idle time.Duration
		want            bool
	}{
		{"idle timeout beyond the heartbeat", time.Second, 5 * time.Second, false},
		{"idle timeout within the heartbeat", 10 * time.Second, time.Second, true},
		{"heartbeat unknown", 0, 5 * time.Second, true},
		{"no idle timeout", time.Second, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limits := &wsLimits{poller: testPoller(t), heartbeat: tc.heartbeat, maxQueueBytes: 1 << 20, writeTimeout: 5 * time.Second}
			tr, _, _ := upgradedTransport(t, limits, tc.idle)
			for deadline := time.Now().Add(10 * time.Second); ; {
				limits.poller.mu.Lock()
				_, watched := limits.poller.conns[tr.pollID]
				limits.poller.mu.Unlock()
				if watched {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the socket was not handed to the poller")
				}
				time.Sleep(time.Millisecond)
			}
			tr.mu.Lock()
			has := tr.idleTimer != nil
			tr.mu.Unlock()
			if has != tc.want {
				t.Fatalf("idle timer %v, want %v", has, tc.want)
			}
		})
	}
}
