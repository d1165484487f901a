package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/bridge"
	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

type fixedView []router.Member

func (v fixedView) Members() []router.Member { return v }

// awaitQuery returns the query the presence published.
func awaitQuery(t *testing.T, pub *fakePublisher) *schemas.Envelope {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range pub.calls() {
			if c.envs[0].Action == schemas.ActionQuery {
				return c.envs[0]
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no query published")
	return nil
}

func reply(t *testing.T, from, to, queryID string, r queryReply) *schemas.Envelope {
	t.Helper()
	r.QueryID, r.To = queryID, to
	env := schemas.NewControl(schemas.ActionReply, "", "", from)
	env.Data, _ = json.Marshal(r)
	return env
}

func TestPresenceMergesTheRepliesOfEveryInstance(t *testing.T) {
	pub := &fakePublisher{}
	view := fixedView{{Instance: "a"}, {Instance: "b"}}
	p := NewPresence(PresenceConfig{Instance: "a", ControlTopic: "c", Timeout: 5 * time.Second}, pub, &fakeEdge{}, view, slog.New(slog.DiscardHandler))
	done := make(chan UserPresence, 1)
	go func() {
		u, err := p.User(context.Background(), "u1")
		if err != nil {
			t.Error(err)
		}
		done <- u
	}()
	q := awaitQuery(t, pub)
	if q.UserID != "u1" || q.Instance != "a" {
		t.Fatalf("query %+v", q)
	}
	// A reply to another instance's query is not ours.
	_ = p.HandleReply(reply(t, "b", "someone-else", q.ID, queryReply{Sockets: 9}))
	_ = p.HandleReply(reply(t, "b", "a", q.ID, queryReply{Sockets: 2, Rooms: []string{"lobby", "vip"}}))
	_ = p.HandleReply(reply(t, "a", "a", q.ID, queryReply{Sockets: 1, Rooms: []string{"lobby"}}))
	select {
	case u := <-done:
		if u.Sockets != 3 || len(u.Instances) != 2 || u.Instances[0] != "a" || u.Instances[1] != "b" || len(u.Rooms) != 2 {
			t.Fatalf("merged %+v, want 3 sockets on a and b in lobby and vip", u)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("User did not return once every instance had answered")
	}
}

func TestPresenceAnswersWithWhatArrivedBeforeItsTimeout(t *testing.T) {
	pub := &fakePublisher{}
	view := fixedView{{Instance: "a"}, {Instance: "dead"}}
	// Long enough that the reply below comes first on a busy machine.
	p := NewPresence(PresenceConfig{Instance: "a", ControlTopic: "c", Timeout: time.Second}, pub, &fakeEdge{}, view, slog.New(slog.DiscardHandler))
	done := make(chan map[string]int, 1)
	go func() {
		rooms, _ := p.Rooms(context.Background())
		done <- rooms
	}()
	q := awaitQuery(t, pub)
	_ = p.HandleReply(reply(t, "a", "a", q.ID, queryReply{Members: map[string]int{"lobby": 2}}))
	select {
	case rooms := <-done:
		if len(rooms) != 1 || rooms["lobby"] != 2 {
			t.Fatalf("rooms %v, want lobby: 2 from the instance that answered", rooms)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Rooms waited past its timeout for an instance that never answers")
	}
}

func TestPresenceAnswersQueriesFromItsEdge(t *testing.T) {
	pub := &fakePublisher{}
	edge := &fakeEdge{presence: map[string]bridge.Presence{"u1": {Sockets: 2, Rooms: []string{"lobby"}}}}
	p := NewPresence(PresenceConfig{Instance: "b", ControlTopic: "c"}, pub, edge, nil, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	q := schemas.NewControl(schemas.ActionQuery, "u1", "", "a")
	q.Data = json.RawMessage(`{"query":"user"}`)
	p.HandleQuery(q)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range pub.calls() {
			env := c.envs[0]
			if env.Action != schemas.ActionReply {
				continue
			}
			var r queryReply
			if err := json.Unmarshal(env.Data, &r); err != nil {
				t.Fatal(err)
			}
			if c.topic != "c" || env.Instance != "b" || r.QueryID != q.ID || r.To != "a" || r.Sockets != 2 || len(r.Rooms) != 1 {
				t.Fatalf("reply on %s: %+v %+v", c.topic, env, r)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no reply published")
}
