package integration

import (
	"testing"

	"github.com/web3-socket/web3-socket/test/harness"
)

// deliversAcrossInstances proves, for two instances on one bus with client
// alice on A and bob on B, what every shared bus must do: a message
// published on B reaches alice on A, a broadcast on A reaches both, a room
// joined through B's REST API applies on A (and only to its members), and a
// send_message from bob reaches alice.
func deliversAcrossInstances(t *testing.T, d *harness.Driver, a, b *harness.Server) {
	t.Helper()
	t.Run("message published on B reaches a user on A", func(t *testing.T) {
		postMessage(t, b, "alice", "notification", "from B")
		expectData(t, d.WaitEvent("alice", "notification", wait), "from B")
	})

	t.Run("broadcast on A reaches both instances", func(t *testing.T) {
		broadcast(t, a, map[string]any{"event": "news", "data": "everyone"})
		expectData(t, d.WaitEvent("alice", "news", wait), "everyone")
		expectData(t, d.WaitEvent("bob", "news", wait), "everyone")
	})

	t.Run("room joined through B applies on A", func(t *testing.T) {
		if status, body := b.Do("POST", "/api/users/alice/rooms", map[string]any{"room": "lobby"}, nil); status != 202 {
			t.Fatalf("join through B: %d %s", status, body)
		}
		eventually(t, wait, func() (bool, string) {
			status, body := a.Do("GET", "/api/users/alice", nil, nil)
			var p struct{ Rooms []string }
			decode(t, "presence", body, &p)
			return status == 200 && len(p.Rooms) == 1 && p.Rooms[0] == "lobby", "presence on A: " + string(body)
		})
		broadcast(t, b, map[string]any{"room": "lobby", "event": "lobby-news", "data": "members only"})
		expectData(t, d.WaitEvent("alice", "lobby-news", wait), "members only")
		settle(t, d, b, "bob", "bob")
		d.AssertNoEvent("bob", "lobby-news", quiet)
	})
	t.Run("send_message between users on different instances", func(t *testing.T) {
		a := expectAck(t, "send_message", d.MustAck("bob", "send_message", wait, map[string]any{"recipient": "alice", "content": "hi alice"}), true)
		got := d.WaitEvent("alice", "message", wait)
		var m chatMessage
		decode(t, "message", got.Arg(0), &m)
		if m.ID != a.ID || m.From != "bob" || m.Content != "hi alice" {
			t.Fatalf("alice got %+v, want id %s from bob", m, a.ID)
		}
	})
}
