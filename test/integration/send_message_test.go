package integration

import (
	"testing"

	"github.com/web3-socket/web3-socket/test/harness"
)

// expectChat checks a "message" event delivered by send_message.
func expectChat(t *testing.T, r harness.Report, id, from, content string) {
	t.Helper()
	if len(r.Args) != 1 {
		t.Fatalf("client %s got message with args %s, want one object", r.Name, argsOf(r))
	}
	var m chatMessage
	decode(t, "message event", r.Arg(0), &m)
	if m.ID != id || m.From != from || m.Content != content {
		t.Errorf("client %s got message %s, want id %q from %q content %q", r.Name, r.Arg(0), id, from, content)
	}
	if len(m.TS) == 0 || string(m.TS) == "null" || string(m.TS) == `""` {
		t.Errorf("client %s got message %s without ts", r.Name, r.Arg(0))
	}
}

// TestSendMessageToUserDeliversToEveryTabWithAck proves send_message
// {recipient, content}: the sender's ack is {ok:true, id}, every socket of
// the recipient gets event "message" {id (the same), from, content, ts}, and
// nobody else does.
func TestSendMessageToUserDeliversToEveryTabWithAck(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		alice, bob, carol := "alice-"+mode.Name, "bob-"+mode.Name, "carol-"+mode.Name
		connect(t, d, s, mode, "alice", harness.UserToken(t, s.JWTSecret(), alice, nil))
		connect(t, d, s, mode, "bob1", harness.UserToken(t, s.JWTSecret(), bob, nil))
		connect(t, d, s, mode, "bob2", harness.UserToken(t, s.JWTSecret(), bob, nil))
		connect(t, d, s, mode, "carol", harness.UserToken(t, s.JWTSecret(), carol, nil))

		a := expectAck(t, "send_message", d.MustAck("alice", "send_message", wait,
			map[string]any{"recipient": bob, "content": "hi bob"}), true)
		if a.ID == "" {
			t.Fatalf("send_message ack has no id")
		}
		expectChat(t, d.WaitEvent("bob1", "message", wait), a.ID, alice, "hi bob")
		expectChat(t, d.WaitEvent("bob2", "message", wait), a.ID, alice, "hi bob")

		settle(t, d, s, "carol", carol)
		settle(t, d, s, "alice", alice)
		d.AssertNoEvent("carol", "message", quiet)
		d.AssertNoEvent("alice", "message", 0)
	})
}

// TestSendMessageToRoomReachesOtherMembersOnlyFromMember proves send_message
// {room, content}: from a member it reaches the room's other members (ack
// {ok:true, id}, same id in the event); from a non-member it is refused with
// {ok:false, error} and reaches nobody.
func TestSendMessageToRoomReachesOtherMembersOnlyFromMember(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		room := "chat-" + mode.Name
		users := map[string]string{}
		for _, name := range []string{"ann", "ben", "cat", "dan"} {
			users[name] = name + "-" + mode.Name
			connect(t, d, s, mode, name, harness.UserToken(t, s.JWTSecret(), users[name], []string{"chat-*"}))
		}
		for _, name := range []string{"ann", "ben", "cat"} {
			expectAck(t, name+" join "+room, d.MustAck(name, "join", wait, map[string]any{"room": room}), true)
		}

		a := expectAck(t, "send_message to room", d.MustAck("ann", "send_message", wait,
			map[string]any{"room": room, "content": "hello room"}), true)
		if a.ID == "" {
			t.Fatalf("send_message ack has no id")
		}
		expectChat(t, d.WaitEvent("ben", "message", wait), a.ID, users["ann"], "hello room")
		expectChat(t, d.WaitEvent("cat", "message", wait), a.ID, users["ann"], "hello room")

		// dan is allowed to join but did not: he may not post to the room.
		expectAck(t, "send_message from non-member", d.MustAck("dan", "send_message", wait,
			map[string]any{"room": room, "content": "let me in"}), false)

		// A second message from ann is the next thing ben and cat get, not dan's.
		a2 := expectAck(t, "second send_message", d.MustAck("ann", "send_message", wait,
			map[string]any{"room": room, "content": "still here"}), true)
		expectChat(t, d.WaitEvent("ben", "message", wait), a2.ID, users["ann"], "still here")
		expectChat(t, d.WaitEvent("cat", "message", wait), a2.ID, users["ann"], "still here")
		settle(t, d, s, "dan", users["dan"])
		d.AssertNoEvent("ben", "message", quiet)
		d.AssertNoEvent("cat", "message", 0)
		d.AssertNoEvent("dan", "message", 0)
	})
}
