package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// Presence answers the cluster-wide questions of the REST API (where is this
// user, which rooms exist) by asking every instance over the control topic:
// a query envelope goes out, each live instance answers with a reply naming
// the query, and the asking instance merges what arrives before its timeout.
type Presence struct {
	instance string
	pub      Publisher
	topic    string
	edge     Edge
	view     ClusterView
	timeout  time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	waiting map[string]chan queryReply
	// toAnswer holds the queries this instance has to answer. The control
	// handler must not publish on the control topic itself (an in-process
	// bus holds the topic until the handler acks), so Run answers them.
	toAnswer chan *schemas.Envelope
}

// PresenceConfig configures Presence.
type PresenceConfig struct {
	Instance     string
	ControlTopic string
	// Timeout bounds the wait for replies; instances that have not answered
	// by then are left out of the answer.
	Timeout time.Duration
}

// NewPresence returns the cluster-wide presence of an instance.
func NewPresence(cfg PresenceConfig, pub Publisher, edge Edge, view ClusterView, log *slog.Logger) *Presence {
	if cfg.Timeout == 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	return &Presence{instance: cfg.Instance, pub: pub, topic: cfg.ControlTopic, edge: edge, view: view,
		timeout: cfg.Timeout, log: log.With("component", "presence"),
		waiting: map[string]chan queryReply{}, toAnswer: make(chan *schemas.Envelope, 256)}
}

const (
	queryUser  = "user"
	queryRooms = "rooms"
)

type queryData struct {
	Query string `json:"query"`
}

// queryReply is the data of a reply envelope.
type queryReply struct {
	QueryID  string         `json:"queryId"`
	To       string         `json:"to"`
	Instance string         `json:"-"`
	Sockets  int            `json:"sockets,omitempty"`
	Rooms    []string       `json:"rooms,omitempty"`
	Members  map[string]int `json:"members,omitempty"`
}

// Members returns the live instances the heartbeats tell of.
func (p *Presence) Members() []router.Member {
	if p.view == nil {
		return nil
	}
	return p.view.Members()
}

// HandleQuery takes a query seen on the control topic, to be answered by Run.
// When the queue is full the query is dropped: the asker times out on this
// instance rather than the control topic stalling.
func (p *Presence) HandleQuery(env *schemas.Envelope) {
	select {
	case p.toAnswer <- env:
	default:
		p.log.Warn("presence query dropped: too many waiting", "query", env.ID)
	}
}

// HandleReply takes a reply seen on the control topic.
func (p *Presence) HandleReply(env *schemas.Envelope) error {
	var r queryReply
	if err := json.Unmarshal(env.Data, &r); err != nil {
		return fmt.Errorf("reply data: %w", err)
	}
	if r.To != p.instance {
		return nil
	}
	r.Instance = env.Instance
	p.mu.Lock()
	ch := p.waiting[r.QueryID]
	p.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default: // more replies than instances expected: a duplicate
		}
	}
	return nil
}

// Run answers queries until ctx is done.
func (p *Presence) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-p.toAnswer:
			p.answer(ctx, q)
		}
	}
}

func (p *Presence) answer(ctx context.Context, q *schemas.Envelope) {
	var d queryData
	if err := json.Unmarshal(q.Data, &d); err != nil {
		return
	}
	r := queryReply{QueryID: q.ID, To: q.Instance}
	switch d.Query {
	case queryUser:
		u := p.edge.LocalUser(q.UserID)
		r.Sockets, r.Rooms = u.Sockets, u.Rooms
	case queryRooms:
		r.Members = p.edge.LocalRooms()
	default:
		return
	}
	data, err := json.Marshal(r)
	if err != nil {
		return
	}
	reply := schemas.NewControl(schemas.ActionReply, "", "", p.instance)
	reply.Data = data
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.pub.Publish(ctx, p.topic, reply); err != nil {
		p.log.Warn("presence reply not published", "query", q.ID, "error", err)
	}
}

// ask publishes a query and returns the replies that arrive in time, one per
// live instance at most.
func (p *Presence) ask(ctx context.Context, what, user string) ([]queryReply, error) {
	expected := map[string]bool{p.instance: true}
	if p.view != nil {
		for _, m := range p.view.Members() {
			expected[m.Instance] = true
		}
	}
	q := schemas.NewControl(schemas.ActionQuery, user, "", p.instance)
	q.Data, _ = json.Marshal(queryData{Query: what})
	ch := make(chan queryReply, len(expected))
	p.mu.Lock()
	p.waiting[q.ID] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, q.ID)
		p.mu.Unlock()
	}()
	if err := p.pub.Publish(ctx, p.topic, q); err != nil {
		return nil, err
	}
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	var replies []queryReply
	seen := map[string]bool{}
	for len(seen) < len(expected) {
		select {
		case r := <-ch:
			if !seen[r.Instance] {
				seen[r.Instance] = true
				replies = append(replies, r)
			}
		case <-timer.C:
			p.log.Debug("presence query timed out", "query", q.ID, "answered", len(seen), "expected", len(expected))
			return replies, nil
		case <-ctx.Done():
			return replies, nil
		}
	}
	return replies, nil
}

// UserPresence is where a user is connected, cluster-wide.
type UserPresence struct {
	Sockets   int
	Instances []string
	Rooms     []string
}

// User returns the user's sockets, instances and named rooms over the cluster.
func (p *Presence) User(ctx context.Context, user string) (UserPresence, error) {
	replies, err := p.ask(ctx, queryUser, user)
	if err != nil {
		return UserPresence{}, err
	}
	out := UserPresence{Instances: []string{}, Rooms: []string{}}
	rooms := map[string]bool{}
	for _, r := range replies {
		if r.Sockets == 0 {
			continue
		}
		out.Sockets += r.Sockets
		out.Instances = append(out.Instances, r.Instance)
		for _, room := range r.Rooms {
			rooms[room] = true
		}
	}
	for room := range rooms {
		out.Rooms = append(out.Rooms, room)
	}
	sort.Strings(out.Instances)
	sort.Strings(out.Rooms)
	return out, nil
}

// Rooms returns the named rooms over the cluster with their member counts.
func (p *Presence) Rooms(ctx context.Context) (map[string]int, error) {
	replies, err := p.ask(ctx, queryRooms, "")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, r := range replies {
		for name, n := range r.Members {
			out[name] += n
		}
	}
	return out, nil
}
