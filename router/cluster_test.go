package router

import (
	"testing"
	"time"
)

func TestClusterForgetsAnInstanceWhoseHeartbeatsStop(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c := NewCluster(3 * time.Second)
	c.now = func() time.Time { return now }
	c.Observe(Member{Instance: "b", Connections: 2, LastSeen: now})
	c.Observe(Member{Instance: "a", Connections: 1, LastSeen: now})
	if got := c.Members(); len(got) != 2 || got[0].Instance != "a" || got[1].Instance != "b" {
		t.Fatalf("members = %+v, want a and b", got)
	}
	now = now.Add(2 * time.Second)
	c.Observe(Member{Instance: "a", Connections: 5, LastSeen: now})
	now = now.Add(2 * time.Second) // b silent for 4s, a for 2s
	got := c.Members()
	if len(got) != 1 || got[0].Instance != "a" || got[0].Connections != 5 {
		t.Fatalf("members = %+v, want only a with its latest stats", got)
	}
	// A heartbeat older than the one kept does not replace it.
	c.Observe(Member{Instance: "a", Connections: 9, LastSeen: now.Add(-3 * time.Second)})
	if got := c.Members(); got[0].Connections != 5 {
		t.Fatalf("a late heartbeat replaced a newer one: %+v", got)
	}
}
