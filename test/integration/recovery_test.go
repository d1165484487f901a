package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/test/harness"
)

// reconnecting are the client options of a client that reconnects at once
// when its connection goes, as browsers do (Socket.IO's defaults, faster).
var reconnecting = map[string]any{
	"reconnection": true, "reconnectionDelay": 100, "reconnectionDelayMax": 300, "randomizationFactor": 0,
}

func hostPort(s *harness.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// seqOf returns the "seq" of an event's data.
func seqOf(t *testing.T, r harness.Report) int {
	t.Helper()
	var d struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal(r.Arg(0), &d); err != nil || d.Seq == nil {
		t.Fatalf("client %s got %q with args %s, want {seq}", r.Name, r.Event, argsOf(r))
	}
	return *d.Seq
}

// waitReconnect waits for client name to connect again, through failed
// attempts while the proxy turns it away.
func waitReconnect(t *testing.T, d *harness.Driver, name string) harness.Report {
	t.Helper()
	for {
		r, err := d.NextReport(name, wait, "connect", "connect_error")
		if err != nil {
			t.Fatalf("client %s did not reconnect: %v", name, err)
		}
		if r.Type == "connect" {
			return r
		}
	}
}

// waitNoConnections waits until the server has seen every connection go.
func waitNoConnections(t *testing.T, s *harness.Server) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for metric(t, s, "socket_connections_active") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the server still counts %v connections", metric(t, s, "socket_connections_active"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRecoveryGivesBackIdRoomsAndMissedMessages cuts a client's connection,
// publishes to it (directly, to its room, to everyone) while it cannot
// reconnect, then lets it back: in every transport mode it comes back with
// recovered true, its socket id and its room, and gets what it missed in
// order, each once.
//
// The server must have seen the connection go before the client comes back
// (as with Node's Socket.IO, a session is recovered once its old socket has
// closed): a polling server sees it only when the heartbeat fails, so the
// test uses a short one.
func TestRecoveryGivesBackIdRoomsAndMissedMessages(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		env := harness.DefaultEnv()
		env["PING_INTERVAL"], env["PING_TIMEOUT"] = "500ms", "1s"
		s := harness.StartServer(t, env)
		p := harness.StartProxy(t, hostPort(s))
		d := harness.NewDriver(t)
		d.Connect("carol", p.URL, harness.ConnectOptions{Mode: mode, Opts: reconnecting,
			Token: harness.UserToken(t, s.JWTSecret(), "carol", []string{"news"})})
		first := awaitConnected(t, d, mode, "carol")
		expectAck(t, "join news", d.MustAck("carol", "join", wait, map[string]any{"room": "news"}), true)
		postMessage(t, s, "carol", "seq", map[string]any{"seq": 0})
		if r := d.WaitEvent("carol", "seq", wait); seqOf(t, r) != 0 || r.Offset == "" {
			t.Fatalf("first event %s: want seq 0 with an offset", r)
		}

		p.Pause()
		p.Cut()
		if r := d.WaitDisconnect("carol", wait); r.Reason != "transport close" && r.Reason != "transport error" {
			t.Fatalf("disconnect reason %q, want a transport close or error", r.Reason)
		}
		postMessage(t, s, "carol", "seq", map[string]any{"seq": 1})
		broadcast(t, s, map[string]any{"room": "news", "event": "seq", "data": map[string]any{"seq": 2}})
		broadcast(t, s, map[string]any{"event": "seq", "data": map[string]any{"seq": 3}})
		postMessage(t, s, "someone-else", "seq", map[string]any{"seq": -1})
		postMessage(t, s, "carol", "seq", map[string]any{"seq": 4})
		waitNoConnections(t, s)
		p.Resume()

		again := waitReconnect(t, d, "carol")
		if !again.Recovered || again.SID != first.SID {
			t.Fatalf("reconnected with recovered=%v sid %s, want recovered with the first sid %s", again.Recovered, again.SID, first.SID)
		}
		for want := 1; want <= 4; want++ {
			if got := seqOf(t, d.WaitEvent("carol", "seq", wait)); got != want {
				t.Fatalf("missed message %d arrived as %d: want them in order", want, got)
			}
		}
		// Its room came back: a room message reaches it, once, after the
		// missed ones.
		broadcast(t, s, map[string]any{"room": "news", "event": "seq", "data": map[string]any{"seq": 5}})
		if got := seqOf(t, d.WaitEvent("carol", "seq", wait)); got != 5 {
			t.Fatalf("room message arrived as %d, want 5", got)
		}
		d.AssertNoEvent("carol", "seq", quiet)
	})
}

// TestNoRecoveryAfterTheWindow: a client away for longer than
// RECOVERY_WINDOW comes back with a fresh session.
func TestNoRecoveryAfterTheWindow(t *testing.T) {
	env := harness.DefaultEnv()
	env["RECOVERY_WINDOW"] = "1s"
	s := harness.StartServer(t, env)
	p := harness.StartProxy(t, hostPort(s))
	d := harness.NewDriver(t)
	ws := harness.Modes[0]
	d.Connect("dan", p.URL, harness.ConnectOptions{Mode: ws, Opts: reconnecting, Token: harness.UserToken(t, s.JWTSecret(), "dan", nil)})
	first := awaitConnected(t, d, ws, "dan")
	postMessage(t, s, "dan", "seq", map[string]any{"seq": 0})
	d.WaitEvent("dan", "seq", wait)
	p.Pause()
	p.Cut()
	d.WaitDisconnect("dan", wait)
	waitNoConnections(t, s)
	time.Sleep(1500 * time.Millisecond)
	p.Resume()
	if late := waitReconnect(t, d, "dan"); late.Recovered || late.SID == first.SID {
		t.Errorf("reconnected after the window with recovered=%v sid %s, want a fresh session", late.Recovered, late.SID)
	}
}

// TestRecoveryAcrossInstancesAfterKill9 runs two instances on Redis behind a
// proxy. Clients on A receive a steady stream of messages published on B;
// A is killed with SIGKILL mid-stream and the proxy sends the clients to B,
// where they recover their sessions (kept in Redis by A) and every message,
// in order, each once.
func TestRecoveryAcrossInstancesAfterKill9(t *testing.T) {
	r, a, b := startRedisPair(t)
	p := harness.StartProxy(t, hostPort(a))
	d := harness.NewDriver(t)
	const users = 4
	first := map[string]harness.Report{}
	for i := range users {
		name := fmt.Sprintf("k%d", i)
		d.Connect(name, p.URL, harness.ConnectOptions{Mode: harness.Modes[i%len(harness.Modes)], Opts: reconnecting,
			Token: harness.UserToken(t, a.JWTSecret(), name, nil)})
	}
	for i := range users {
		name := fmt.Sprintf("k%d", i)
		first[name] = awaitConnected(t, d, harness.Modes[i%len(harness.Modes)], name)
	}

	// Publish on B, one message per user every 20ms, until told to stop.
	var sent sync.Map // user → messages accepted
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := 0; seq < 10_000; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for i := range users {
				user := fmt.Sprintf("k%d", i)
				status, body := b.Do("POST", "/api/message", map[string]any{"userId": user, "event": "seq", "data": map[string]any{"seq": seq}}, nil)
				if status != 202 {
					t.Errorf("POST /api/message on B: %d %s", status, body)
					return
				}
				sent.Store(user, seq+1)
			}
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// Every client gets a few messages from A, then A dies.
	next := map[string]int{}
	for i := range users {
		name := fmt.Sprintf("k%d", i)
		for next[name] < 5 {
			if got := seqOf(t, d.WaitEvent(name, "seq", wait)); got != next[name] {
				t.Fatalf("%s got seq %d, want %d", name, got, next[name])
			}
			next[name]++
		}
	}
	// A saves new sessions every 200ms: one that dies sooner after a
	// client connected loses it (as documented). Here A dies once it has.
	awaitSessionsKept(t, r, users)
	p.SetTarget(hostPort(b))
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := range users {
		name := fmt.Sprintf("k%d", i)
		again := waitReconnect(t, d, name)
		if !again.Recovered || again.SID != first[name].SID {
			t.Errorf("%s reconnected to B with recovered=%v sid %s, want recovered with sid %s", name, again.Recovered, again.SID, first[name].SID)
		}
	}
	time.Sleep(500 * time.Millisecond) // some more traffic through B
	close(stop)
	wg.Wait()

	for i := range users {
		name := fmt.Sprintf("k%d", i)
		total, _ := sent.Load(name)
		for next[name] < total.(int) {
			r, err := d.NextEvent(name, "seq", wait)
			if err != nil {
				t.Fatalf("%s: message %d of %d never arrived: %v", name, next[name], total, err)
			}
			if got := seqOf(t, r); got != next[name] {
				t.Fatalf("%s got seq %d, want %d (every message once, in order)", name, got, next[name])
			}
			next[name]++
		}
		d.AssertNoEvent(name, "seq", quiet)
	}
	if got := metric(t, b, "socket_recovered_total"); got < users {
		t.Errorf("socket_recovered_total on B = %v, want at least %d", got, users)
	}
}

// awaitSessionsKept waits until Redis holds n sessions (socket.session:*).
func awaitSessionsKept(t *testing.T, r *harness.Redis, n int) {
	t.Helper()
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		keys, err := rc.Keys(ctx, "socket.session:*").Result()
		cancel()
		if err == nil && len(keys) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis holds %d sessions (%v), want %d", len(keys), err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
