package integration

import (
	"testing"

	"github.com/web3-socket/web3-socket/test/harness"
)

// broadcast posts to /api/broadcast and fails the test unless it is accepted.
func broadcast(t *testing.T, s *harness.Server, body map[string]any) {
	t.Helper()
	status, answer := s.Do("POST", "/api/broadcast", body, nil)
	if status != 202 {
		t.Fatalf("POST /api/broadcast %s: %d %s, want 202", mustJSON(body), status, answer)
	}
}

// postMessage posts to /api/message and fails the test unless it is accepted.
func postMessage(t *testing.T, s *harness.Server, userID, event string, data any) {
	t.Helper()
	status, answer := s.Do("POST", "/api/message", map[string]any{"userId": userID, "event": event, "data": data}, nil)
	if status != 202 {
		t.Fatalf("POST /api/message to %s: %d %s, want 202", userID, status, answer)
	}
}

// settle awaits a direct message to userID on client name, so that whatever
// the server sent to that client before has arrived too.
func settle(t *testing.T, d *harness.Driver, s *harness.Server, name, userID string) {
	t.Helper()
	postMessage(t, s, userID, "sentinel", name)
	expectData(t, d.WaitEvent(name, "sentinel", wait), name)
}

// TestRoomJoinAllowedByRoomsClaimReceivesRoomBroadcast proves that a client
// whose rooms claim matches ("news-*") joins a room with an {ok:true} ack and
// then receives broadcasts to that room, while a client that did not join
// does not.
func TestRoomJoinAllowedByRoomsClaimReceivesRoomBroadcast(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		room := "news-sport-" + mode.Name
		member, outsider := "member-"+mode.Name, "outsider-"+mode.Name
		connect(t, d, s, mode, "member", harness.UserToken(t, s.JWTSecret(), member, []string{"news-*"}))
		connect(t, d, s, mode, "outsider", harness.UserToken(t, s.JWTSecret(), outsider, []string{"news-*"}))

		expectAck(t, "join "+room, d.MustAck("member", "join", wait, map[string]any{"room": room}), true)

		data := map[string]any{"title": "Goal!"}
		broadcast(t, s, map[string]any{"room": room, "event": "headline", "data": data})
		expectData(t, d.WaitEvent("member", "headline", wait), data)

		settle(t, d, s, "outsider", outsider)
		d.AssertNoEvent("outsider", "headline", quiet)
	})
}

// TestRoomJoinRefusedOutsideRoomsClaim proves that join answers {ok:false,
// error} for a room the rooms claim does not match (or without a rooms claim),
// and that broadcasts to that room do not reach the client.
func TestRoomJoinRefusedOutsideRoomsClaim(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		limited, unlisted := "limited-"+mode.Name, "unlisted-"+mode.Name
		connect(t, d, s, mode, "limited", harness.UserToken(t, s.JWTSecret(), limited, []string{"news-*"}))
		connect(t, d, s, mode, "unlisted", harness.UserToken(t, s.JWTSecret(), unlisted, nil))

		refused := []struct{ client, room string }{
			{"limited", "admin-" + mode.Name},
			{"limited", "sports-news-" + mode.Name}, // the pattern is anchored
			{"limited", "news"},                     // "news-*" needs the dash
			{"unlisted", "news-" + mode.Name},       // no rooms claim, no joining
		}
		for _, r := range refused {
			expectAck(t, r.client+" join "+r.room, d.MustAck(r.client, "join", wait, map[string]any{"room": r.room}), false)
		}
		for _, r := range refused {
			broadcast(t, s, map[string]any{"room": r.room, "event": "secret", "data": r.room})
		}
		settle(t, d, s, "limited", limited)
		settle(t, d, s, "unlisted", unlisted)
		d.AssertNoEvent("limited", "secret", quiet)
		d.AssertNoEvent("unlisted", "secret", 0)
	})
}

// TestNoRoomDeliveryAfterLeave proves that after leave {room} (ack {ok:true})
// broadcasts to the room no longer reach the client.
func TestNoRoomDeliveryAfterLeave(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		user, room := "leaver-"+mode.Name, "news-leave-"+mode.Name
		connect(t, d, s, mode, "c", harness.UserToken(t, s.JWTSecret(), user, []string{"news-*"}))

		expectAck(t, "join "+room, d.MustAck("c", "join", wait, map[string]any{"room": room}), true)
		broadcast(t, s, map[string]any{"room": room, "event": "headline", "data": "before leave"})
		expectData(t, d.WaitEvent("c", "headline", wait), "before leave")

		expectAck(t, "leave "+room, d.MustAck("c", "leave", wait, map[string]any{"room": room}), true)
		broadcast(t, s, map[string]any{"room": room, "event": "headline", "data": "after leave"})
		settle(t, d, s, "c", user)
		d.AssertNoEvent("c", "headline", quiet)
	})
}

// TestJoiningAnotherUsersRoomDoesNotReceiveTheirMessages proves that even a
// rooms claim of "*" does not let a client into another user's private room:
// join "user:<other>" is refused or joins a different room, and messages to
// the other user never reach the client.
func TestJoiningAnotherUsersRoomDoesNotReceiveTheirMessages(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		spy, victim := "spy-"+mode.Name, "victim-"+mode.Name
		connect(t, d, s, mode, "spy", harness.UserToken(t, s.JWTSecret(), spy, []string{"*"}))
		connect(t, d, s, mode, "victim", harness.UserToken(t, s.JWTSecret(), victim, nil))

		raw := d.MustAck("spy", "join", wait, map[string]any{"room": "user:" + victim})
		var a ack
		decode(t, "join user:"+victim+" ack", raw, &a)
		t.Logf("join user:%s answered %s", victim, raw)

		postMessage(t, s, victim, "private", "for the victim only")
		expectData(t, d.WaitEvent("victim", "private", wait), "for the victim only")
		settle(t, d, s, "spy", spy)
		d.AssertNoEvent("spy", "private", quiet)
	})
}
