package router

import (
	"sort"
	"sync"
	"time"
)

// Member is one instance as the cluster sees it, from its last heartbeat.
type Member struct {
	Instance    string
	Connections int
	Users       int
	Rooms       int
	LastSeen    time.Time
}

// Cluster keeps the instances heard from on the control topic. An instance
// whose heartbeats stop leaves it after the time-to-live.
type Cluster struct {
	ttl     time.Duration
	now     func() time.Time
	mu      sync.Mutex
	members map[string]Member
}

// NewCluster returns a Cluster that forgets an instance silent for ttl.
func NewCluster(ttl time.Duration) *Cluster {
	return &Cluster{ttl: ttl, now: time.Now, members: map[string]Member{}}
}

// Observe records a heartbeat.
func (c *Cluster) Observe(m Member) {
	if m.LastSeen.IsZero() {
		m.LastSeen = c.now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.members[m.Instance]; ok && old.LastSeen.After(m.LastSeen) {
		return // a late heartbeat does not roll an instance back
	}
	c.members[m.Instance] = m
}

// Members returns the live instances, sorted by name, and forgets the others.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	cutoff := c.now().Add(-c.ttl)
	out := make([]Member, 0, len(c.members))
	for name, m := range c.members {
		if m.LastSeen.Before(cutoff) {
			delete(c.members, name)
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}
