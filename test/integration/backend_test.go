package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/test/harness"
)

// backendEnv is the environment of an instance forwarding to b, with quick
// retries and a quick breaker so that outages play out in seconds.
func backendEnv(b *harness.Backend) map[string]string {
	env := harness.DefaultEnv()
	env["BACKEND_URL"] = b.URL
	env["BACKEND_SECRET"] = b.Secret
	env["BACKEND_TIMEOUT"] = "500ms"
	env["BACKEND_RETRY_INTERVAL"] = "50ms"
	env["BACKEND_RETRY_MAX_INTERVAL"] = "400ms"
	env["BACKEND_BREAKER_FAILURES"] = "3"
	env["BACKEND_BREAKER_TIMEOUT"] = "500ms"
	return env
}

// seqEvent is the data of the numbered events the suites send.
type seqEvent struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
}

// waitReceived waits until the backend accepted want events named event
// (request/reply ones left out) and returns them.
func waitReceived(t *testing.T, b *harness.Backend, event string, want int, timeout time.Duration) []harness.BackendRecord {
	t.Helper()
	var got []harness.BackendRecord
	eventually(t, timeout, func() (bool, string) {
		got = got[:0]
		for _, r := range b.Received() {
			if r.Event == event && !r.Reply {
				got = append(got, r)
			}
		}
		return len(got) >= want, fmt.Sprintf("backend accepted %d %q events, want %d", len(got), event, want)
	})
	return got
}

// checkOrderPerUser checks that records hold each user's events 0..n-1
// exactly once, in order.
func checkOrderPerUser(t *testing.T, records []harness.BackendRecord, users []string, n int) {
	t.Helper()
	next := map[string]int{}
	for _, r := range records {
		var ev seqEvent
		decode(t, "forwarded event", r.Data, &ev)
		if ev.User != r.UserID {
			t.Errorf("event %s: data says user %q, envelope says %q", r.ID, ev.User, r.UserID)
		}
		if ev.Seq != next[ev.User] {
			t.Errorf("user %s: backend got seq %d, want %d (lost, repeated or out of order)", ev.User, ev.Seq, next[ev.User])
		}
		next[ev.User] = ev.Seq + 1
	}
	for _, u := range users {
		if next[u] != n {
			t.Errorf("user %s: backend got %d events, want %d", u, next[u], n)
		}
	}
}

// TestBackendRequestReplyAnswersTheClientsAck proves request/reply against a
// real backend process: the backend's JSON answer is the client's ack; a
// backend that answers 500, answers too late or is down gives
// {ok:false, error} naming the reason; the breaker, once open, answers at
// once; an event without an ack is forwarded, and one answered by
// request/reply is not forwarded a second time.
func TestBackendRequestReplyAnswersTheClientsAck(t *testing.T) {
	b := harness.StartBackend(t)
	s := harness.StartServer(t, backendEnv(b))
	d := harness.NewDriver(t)
	connect(t, d, s, harness.Modes[0], "alice", harness.UserToken(t, s.JWTSecret(), "alice", nil))

	t.Run("the backend's answer is the ack", func(t *testing.T) {
		got := d.MustAck("alice", "quote", wait, map[string]any{"pair": "ETH/USD"})
		if !sameJSON(t, got, map[string]any{"ok": true, "echo": map[string]any{"pair": "ETH/USD"}, "user": "alice"}) {
			t.Fatalf("ack %s, want the backend's answer", got)
		}
	})

	t.Run("an event without ack is forwarded; the request/reply one is not forwarded again", func(t *testing.T) {
		d.Emit("alice", "fire-and-forget", map[string]any{"n": 1})
		waitReceived(t, b, "fire-and-forget", 1, wait)
		var quotes int
		for _, r := range b.Received() {
			if r.Event == "quote" {
				quotes++
				if !r.Reply {
					t.Errorf("the request/reply event %s was also forwarded", r.ID)
				}
			}
		}
		if quotes != 1 {
			t.Errorf("backend got the request/reply event %d times, want once", quotes)
		}
	})

	t.Run("500 answers ok:false naming the status", func(t *testing.T) {
		b.SetMode(harness.BackendMode{Status: 500})
		a := expectAck(t, "quote during 500s", d.MustAck("alice", "quote", wait, 1), false)
		if !strings.Contains(a.Error, "500") {
			t.Errorf("error %q does not name the backend's 500", a.Error)
		}
	})

	t.Run("a late backend answers ok:false with a timeout", func(t *testing.T) {
		b.SetMode(harness.BackendMode{Delay: 2 * time.Second})
		start := time.Now()
		a := expectAck(t, "quote to a slow backend", d.MustAck("alice", "quote", wait, 1), false)
		if !strings.Contains(a.Error, "timeout") {
			t.Errorf("error %q does not say timeout", a.Error)
		}
		if took := time.Since(start); took > 1900*time.Millisecond {
			t.Errorf("the ack took %v: BACKEND_TIMEOUT is 500ms", took)
		}
	})

	t.Run("a backend that is down trips the breaker, which answers at once", func(t *testing.T) {
		b.Stop()
		var last ack
		eventually(t, wait, func() (bool, string) {
			last = expectAck(t, "quote while down", d.MustAck("alice", "quote", wait, 1), false)
			return strings.Contains(last.Error, "circuit open"), "last error: " + last.Error
		})
		start := time.Now()
		expectAck(t, "quote with the breaker open", d.MustAck("alice", "quote", wait, 1), false)
		if took := time.Since(start); took > time.Second {
			t.Errorf("the open breaker took %v to answer", took)
		}
		if v := metric(t, s, `backend_circuit_state`); v != 2 {
			t.Errorf("backend_circuit_state = %v, want 2 (open)", v)
		}
	})

	t.Run("once the backend is back, request/reply works again", func(t *testing.T) {
		b.Start()
		eventually(t, wait, func() (bool, string) {
			raw := d.MustAck("alice", "quote", wait, "again")
			return sameJSON(t, raw, map[string]any{"ok": true, "echo": "again", "user": "alice"}), "ack " + string(raw)
		})
	})
}

// TestBackendFailuresUnderTrafficLoseNothingAndKeepOrderPerUser sends
// numbered events from three users while the backend, in turn, accepts,
// answers 500, answers too late, and is down (killed, then started again):
// the forwarder retries, the breaker opens, and in the end the backend has
// every event exactly once and in order for each user.
func TestBackendFailuresUnderTrafficLoseNothingAndKeepOrderPerUser(t *testing.T) {
	b := harness.StartBackend(t)
	s := harness.StartServer(t, backendEnv(b))
	d := harness.NewDriver(t)
	users := []string{"u1", "u2", "u3"}
	for _, u := range users {
		connect(t, d, s, harness.Modes[0], u, harness.UserToken(t, s.JWTSecret(), u, nil))
	}
	const perPhase = 15
	seq := 0
	send := func() {
		for range perPhase {
			for _, u := range users {
				d.Emit(u, "tick", seqEvent{User: u, Seq: seq})
			}
			seq++
		}
	}

	send() // accepted
	waitReceived(t, b, "tick", perPhase*len(users), wait)

	b.SetMode(harness.BackendMode{Status: 500})
	send()
	eventually(t, wait, func() (bool, string) {
		return sampleOf(t, s, `backend_requests_total{outcome="circuit_open",path="forward"}`) > 0,
			"the breaker never refused a forward"
	})

	b.SetMode(harness.BackendMode{Delay: 2 * time.Second})
	send()
	time.Sleep(time.Second) // a few timed-out attempts

	b.Stop()
	send()
	time.Sleep(time.Second) // refused connections
	if got := len(waitReceived(t, b, "tick", 0, wait)); got != perPhase*len(users) {
		t.Fatalf("the backend accepted %d events while failing, want only the %d before", got, perPhase*len(users))
	}

	b.Start()
	records := waitReceived(t, b, "tick", 4*perPhase*len(users), 60*time.Second)
	checkOrderPerUser(t, records, users, 4*perPhase)
	eventually(t, wait, func() (bool, string) {
		return metric(t, s, "backend_circuit_state") == 0, "the breaker did not close again"
	})
	if v := metric(t, s, "backend_forward_retries_total"); v < 3 {
		t.Errorf("backend_forward_retries_total = %v, want the failed attempts counted", v)
	}
}

// sampleOf reads one sample from /metrics; 0 when it is not exported (yet).
func sampleOf(t *testing.T, s *harness.Server, name string) float64 {
	t.Helper()
	status, body := s.Do("GET", "/metrics", nil, nil)
	if status != 200 {
		t.Fatalf("GET /metrics: %d", status)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return 0
}

// poisoned reads the poison stream: each entry's envelope id and reason.
func poisoned(t *testing.T, r *harness.Redis, topic string) map[string]string {
	t.Helper()
	opts, _ := redis.ParseURL(r.URL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	entries, err := rdb.XRange(ctx, topic, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", topic, err)
	}
	out := map[string]string{}
	for _, e := range entries {
		msg, err := redisstream.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			t.Fatalf("poison entry %s: %v", e.ID, err)
		}
		var env struct {
			Event string `json:"event"`
		}
		_ = json.Unmarshal(msg.Payload, &env)
		out[env.Event] = msg.Metadata.Get("reason_poisoned")
	}
	return out
}

// TestBackendPoisonsAfterTheLastAttempt proves that an event the backend
// rejects (422) goes to the poison topic at once, and one it always fails
// (500) after BACKEND_RETRIES attempts, each with the reason; the events
// behind them are forwarded.
func TestBackendPoisonsAfterTheLastAttempt(t *testing.T) {
	r := harness.StartRedis(t)
	b := harness.StartBackend(t)
	env := backendEnv(b)
	env["BUS"], env["REDIS_URL"], env["BACKEND_RETRIES"] = "redis", r.URL, "3"
	env["BACKEND_BREAKER_FAILURES"] = "10" // the three attempts do not open it
	s := harness.StartServer(t, env)
	d := harness.NewDriver(t)
	connect(t, d, s, harness.Modes[0], "alice", harness.UserToken(t, s.JWTSecret(), "alice", nil))
	b.SetMode(harness.BackendMode{Reject: "bad", Fail: "cursed"})

	attempts := b.Attempts()
	d.Emit("alice", "bad", 1)
	d.Emit("alice", "cursed", 2)
	d.Emit("alice", "after", 3)
	got := waitReceived(t, b, "after", 1, wait)
	if !sameJSON(t, got[0].Data, 3) {
		t.Errorf("forwarded %s, want 3", got[0].Data)
	}
	if n := b.Attempts() - attempts; n != 1+3+1 {
		t.Errorf("backend saw %d requests, want 1 (rejected) + 3 (failing) + 1", n)
	}
	var reasons map[string]string
	eventually(t, wait, func() (bool, string) {
		reasons = poisoned(t, r, "socket.poison")
		return len(reasons) == 2, fmt.Sprintf("poison topic holds %v", reasons)
	})
	if !strings.Contains(reasons["bad"], "422") {
		t.Errorf("reason for the rejected event: %q, want the 422", reasons["bad"])
	}
	if !strings.Contains(reasons["cursed"], "3 attempts") || !strings.Contains(reasons["cursed"], "500") {
		t.Errorf("reason for the failing event: %q, want 3 attempts and the 500", reasons["cursed"])
	}
}

// TestBackendForwardingHappensOnceWithTwoInstances runs two instances over
// one Redis, both forwarding to one backend: each client event, whichever
// instance received it, reaches the backend exactly once.
func TestBackendForwardingHappensOnceWithTwoInstances(t *testing.T) {
	b := harness.StartBackend(t)
	env := backendEnv(b)
	_, a, c := startPairWith(t, harness.StartRedis(t), env)
	d := harness.NewDriver(t)
	connect(t, d, a, harness.Modes[0], "on-a", harness.UserToken(t, a.JWTSecret(), "on-a", nil))
	connect(t, d, c, harness.Modes[0], "on-b", harness.UserToken(t, c.JWTSecret(), "on-b", nil))
	const n = 40
	for i := range n {
		d.Emit("on-a", "tick", seqEvent{User: "on-a", Seq: i})
		d.Emit("on-b", "tick", seqEvent{User: "on-b", Seq: i})
	}
	waitReceived(t, b, "tick", 2*n, wait)
	time.Sleep(quiet) // a duplicate would come now
	records := waitReceived(t, b, "tick", 2*n, wait)
	seen := map[string]int{}
	for _, r := range records {
		seen[r.ID]++
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("event %s forwarded %d times", id, k)
		}
	}
	if len(records) != 2*n || len(seen) != 2*n {
		t.Errorf("backend got %d forwards of %d events, want %d once each", len(records), len(seen), 2*n)
	}
}

// TestDuplicateEnvelopeIsDeliveredOnce adds one envelope twice to the
// outbound stream, as a backend retrying its publish would: the user on each
// of two instances gets it once; an envelope with another id is delivered.
func TestDuplicateEnvelopeIsDeliveredOnce(t *testing.T) {
	r, a, c := startRedisPair(t)
	d := harness.NewDriver(t)
	connect(t, d, a, harness.Modes[0], "alice", harness.UserToken(t, a.JWTSecret(), "alice", nil))
	connect(t, d, c, harness.Modes[0], "bob", harness.UserToken(t, c.JWTSecret(), "bob", nil))
	opts, _ := redis.ParseURL(r.URL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	add := func(id, event string) {
		payload := fmt.Sprintf(`{"v":1,"id":%q,"kind":"deliver","to":{"users":["alice","bob"]},"event":%q,"data":%q,"ts":"2026-11-27T10:00:00Z"}`, id, event, id)
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "socket.outbound", Values: map[string]any{"payload": payload}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add("dup-1", "once")
	add("dup-1", "once")
	add("other-1", "after")
	for _, user := range []string{"alice", "bob"} {
		expectData(t, d.WaitEvent(user, "once", wait), "dup-1")
		expectData(t, d.WaitEvent(user, "after", wait), "other-1")
		d.AssertNoEvent(user, "once", quiet)
	}
}
