package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

// TestMessageReachesEveryTabOfTheUser proves that POST /api/message reaches
// every socket of the user (three tabs) and no other user.
func TestMessageReachesEveryTabOfTheUser(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		user, other := "tabs-"+mode.Name, "other-"+mode.Name
		tabs := []string{"tab1", "tab2", "tab3"}
		for _, tab := range tabs {
			connect(t, d, s, mode, tab, harness.UserToken(t, s.JWTSecret(), user, nil))
		}
		connect(t, d, s, mode, "other", harness.UserToken(t, s.JWTSecret(), other, nil))

		data := map[string]any{"message": "Hello", "n": 1, "nested": map[string]any{"ok": true}}
		status, body := s.Do("POST", "/api/message", map[string]any{"userId": user, "event": "notification", "data": data}, nil)
		if status != 202 {
			t.Fatalf("POST /api/message: %d %s, want 202", status, body)
		}
		var accepted struct{ ID string }
		decode(t, "POST /api/message answer", body, &accepted)
		if accepted.ID == "" {
			t.Errorf("POST /api/message answered %s, want an id", body)
		}
		for _, tab := range tabs {
			expectData(t, d.WaitEvent(tab, "notification", wait), data)
		}

		// The other user gets its own message, and never the first one.
		status, body = s.Do("POST", "/api/message", map[string]any{"userId": other, "event": "notification", "data": "yours"}, nil)
		if status != 202 {
			t.Fatalf("POST /api/message: %d %s, want 202", status, body)
		}
		expectData(t, d.WaitEvent("other", "notification", wait), "yours")
		d.AssertNoEvent("other", "notification", quiet)
		for _, tab := range tabs {
			d.AssertNoEvent(tab, "notification", 0)
		}
	})
}

// TestBroadcastWithoutRoomReachesEveryone proves that POST /api/broadcast
// without a room reaches every connected socket of every user.
func TestBroadcastWithoutRoomReachesEveryone(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	// One driver for all modes so that every socket of the server is watched:
	// a broadcast reaches all of them.
	d := harness.NewDriver(t)
	var names []string
	for _, mode := range harness.Modes {
		for i := range 2 {
			name := fmt.Sprintf("%s-%d", mode.Name, i)
			connect(t, d, s, mode, name, harness.UserToken(t, s.JWTSecret(), "bc-"+name, nil))
			names = append(names, name)
		}
	}
	data := map[string]any{"maintenance": "in 5 minutes"}
	status, body := s.Do("POST", "/api/broadcast", map[string]any{"event": "announcement", "data": data}, nil)
	if status != 202 {
		t.Fatalf("POST /api/broadcast: %d %s, want 202", status, body)
	}
	for _, name := range names {
		expectData(t, d.WaitEvent(name, "announcement", wait), data)
	}
	for i, name := range names {
		within := time.Duration(0) // already watched for quiet below
		if i == 0 {
			within = quiet
		}
		d.AssertNoEvent(name, "announcement", within) // exactly once
	}
}

// TestDeliveryLatencyCountsOnlyWhatWasDeliveredHere proves that
// socket_delivery_latency_seconds measures deliveries: envelopes for users
// with no socket on the instance are not counted.
func TestDeliveryLatencyCountsOnlyWhatWasDeliveredHere(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	d := harness.NewDriver(t)
	connect(t, d, s, harness.Modes[0], "here", harness.UserToken(t, s.JWTSecret(), "latency-here", nil))
	for _, user := range []string{"latency-away", "latency-away", "latency-away", "latency-here"} {
		status, body := s.Do("POST", "/api/message", map[string]any{"userId": user, "event": "n", "data": user}, nil)
		if status != 202 {
			t.Fatalf("POST /api/message: %d %s, want 202", status, body)
		}
	}
	// The outbound topic is handled in order: once the last message arrived,
	// the three before it were handled.
	expectData(t, d.WaitEvent("here", "n", wait), "latency-here")
	if n := sampleOf(t, s, "socket_delivery_latency_seconds_count"); n != 1 {
		t.Errorf("socket_delivery_latency_seconds_count = %v, want 1 (three envelopes reached no socket here)", n)
	}
}
