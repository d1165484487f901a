package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// TestClientEventsOverTheUsersRateAreRefused gives a user a budget of 5
// events (burst 5, one every 2 seconds) shared by its two tabs: the sixth event is
// refused with a clear ack and not published, and the budget refills.
func TestClientEventsOverTheUsersRateAreRefused(t *testing.T) {
	env := harness.DefaultEnv()
	env["EVENT_RATE_LIMIT"] = "0.5"
	env["EVENT_RATE_BURST"] = "5"
	s := harness.StartServer(t, env)
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		user := "rate-" + mode.Name
		token := harness.UserToken(t, s.JWTSecret(), user, nil)
		connect(t, d, s, mode, "a", token)
		connect(t, d, s, mode, "b", token)
		for i := range 5 {
			tab := []string{"a", "b"}[i%2]
			var a ack
			decode(t, "ack", d.MustAck(tab, "chat", wait, map[string]any{"n": i}), &a)
			if !a.OK || a.ID == "" {
				t.Fatalf("event %d within the budget: ack %+v, want ok with an id", i, a)
			}
		}
		var refused ack
		decode(t, "ack", d.MustAck("a", "chat", wait, map[string]any{"n": 5}), &refused)
		if refused.OK || !strings.Contains(refused.Error, "rate limited") || refused.ID != "" {
			t.Fatalf("sixth event: ack %+v, want {ok:false, error: rate limited…} and no id", refused)
		}
		time.Sleep(2200 * time.Millisecond) // one event's worth at 0.5 a second
		var again ack
		decode(t, "ack", d.MustAck("b", "chat", wait, map[string]any{"n": 6}), &again)
		if !again.OK {
			t.Fatalf("after the budget refilled: ack %+v, want ok", again)
		}
	})
}

// TestConnectionsPastThePerUserBoundAreRefused allows a user two sockets:
// the third connection is refused with a clear connect_error, and a new one
// is accepted once a place is free.
func TestConnectionsPastThePerUserBoundAreRefused(t *testing.T) {
	env := harness.DefaultEnv()
	env["MAX_CONNECTIONS_PER_USER"] = "2"
	s := harness.StartServer(t, env)
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		token := harness.UserToken(t, s.JWTSecret(), "bounded-"+mode.Name, nil)
		connect(t, d, s, mode, "one", token)
		connect(t, d, s, mode, "two", token)
		d.Connect("three", s.URL, harness.ConnectOptions{Mode: mode, Token: token})
		if r := d.WaitConnectError("three", wait); r.Message != "forbidden: too many connections for this user" {
			t.Fatalf("third connection: connect_error %q", r.Message)
		}
		// Another user is not affected.
		connect(t, d, s, mode, "other", harness.UserToken(t, s.JWTSecret(), "unbounded-"+mode.Name, nil))
		d.Disconnect("one")
		d.WaitDisconnect("one", wait)
		eventually(t, wait, func() (bool, string) {
			status, body := s.Do("GET", "/api/users/bounded-"+mode.Name, nil, nil)
			var p struct{ Sockets int }
			decode(t, "presence", body, &p)
			return status == 200 && p.Sockets == 1, "presence after the disconnect: " + string(body)
		})
		connect(t, d, s, mode, "four", token)
	})
}

// TestAPIKeyOverItsRateGets429: with API_RATE_LIMIT set, an API key past its
// burst is answered 429 rate_limited (documented in the OpenAPI), and nothing
// of the refused call is published.
func TestAPIKeyOverItsRateGets429(t *testing.T) {
	env := harness.DefaultEnv()
	env["API_RATE_LIMIT"] = "0.2"
	env["API_RATE_BURST"] = "2"
	s := harness.StartServer(t, env)
	d := harness.NewDriver(t)
	connect(t, d, s, harness.Modes[0], "c", harness.UserToken(t, s.JWTSecret(), "limited", nil))
	for i := range 2 {
		postMessage(t, s, "limited", "within", i)
	}
	status, body := s.Do("POST", "/api/message", map[string]any{"userId": "limited", "event": "over", "data": 3}, nil)
	var e struct{ Error struct{ Code string } }
	decode(t, "error", body, &e)
	if status != 429 || e.Error.Code != "rate_limited" {
		t.Fatalf("third call: %d %s, want 429 rate_limited", status, body)
	}
	documented, err := schemas.DocumentedStatuses()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(documented["POST /api/message"], 429) {
		t.Error("429 is not documented for POST /api/message")
	}
	expectData(t, d.WaitEvent("c", "within", wait), 0)
	expectData(t, d.WaitEvent("c", "within", wait), 1)
	d.AssertNoEvent("c", "over", quiet)
}
