package bridge

import (
	"testing"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

func TestRegistryCountsEachSocketOnceAndForgetsAUserWithNone(t *testing.T) {
	r := newRegistry(nil)
	a, b := &socket.Socket{}, &socket.Socket{}
	r.add("u", a)
	r.add("u", a) // the same socket again
	if got := r.connections("u"); got != 1 {
		t.Fatalf("one socket added twice counts %d, want 1", got)
	}
	r.add("u", b)
	r.add("v", &socket.Socket{})
	if conns, users := r.counts(); conns != 3 || users != 2 {
		t.Fatalf("counts %d connections, %d users, want 3, 2", conns, users)
	}
	if got := r.sockets("u"); len(got) != 2 {
		t.Fatalf("user u has %d sockets, want 2", len(got))
	}
	r.remove("u", "not-a-socket")
	r.remove("u", a.Id())
	r.remove("u", b.Id())
	if conns, users := r.counts(); conns != 1 || users != 1 || r.connections("u") != 0 {
		t.Fatalf("after removing u's sockets: %d connections, %d users, u has %d; want 1, 1, 0", conns, users, r.connections("u"))
	}
}

func TestUsersEventBudgetIsSharedByItsSocketsAndStartsFull(t *testing.T) {
	r := newRegistry(limiterFactory(0.001, 2))
	r.add("u", &socket.Socket{})
	r.add("u", &socket.Socket{})
	got := []bool{r.allow("u"), r.allow("u"), r.allow("u")}
	if !got[0] || !got[1] || got[2] {
		t.Fatalf("a user's first three events with a burst of 2: %v, want true, true, false", got)
	}
	if !r.allow("unknown") {
		t.Fatal("an event of a user with no socket here was refused")
	}
}
