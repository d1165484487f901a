package bridge

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/time/rate"
)

// registry tracks which sockets each user has on this instance, and each
// user's event budget.
type registry struct {
	mu         sync.RWMutex
	users      map[string]*userEntry
	count      int
	newLimiter func() *rate.Limiter // nil: events are not limited
}

type userEntry struct {
	// sockets is a slice: most users have one or a few sockets, and a map
	// per user is several times larger than a one-socket slice.
	sockets []*socket.Socket
	// limiter is the user's token bucket, shared by all of its sockets;
	// made at the user's first event (a bucket starts full, so one made
	// later is the same as one made at connect), idle users have none.
	limiter atomic.Pointer[rate.Limiter]
}

func newRegistry(newLimiter func() *rate.Limiter) *registry {
	return &registry{users: map[string]*userEntry{}, newLimiter: newLimiter}
}

func (r *registry) add(user string, s *socket.Socket) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.users[user]
	if e == nil {
		e = &userEntry{}
		r.users[user] = e
	}
	if slices.Contains(e.sockets, s) {
		return
	}
	e.sockets = append(e.sockets, s)
	r.count++
}

func (r *registry) remove(user string, id socket.SocketId) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.users[user]
	if e == nil {
		return
	}
	i := slices.IndexFunc(e.sockets, func(s *socket.Socket) bool { return s.Id() == id })
	if i < 0 {
		return
	}
	last := len(e.sockets) - 1
	e.sockets[i], e.sockets[last] = e.sockets[last], nil
	e.sockets = e.sockets[:last]
	r.count--
	if len(e.sockets) == 0 {
		delete(r.users, user)
	}
}

// connections returns how many sockets the user has here.
func (r *registry) connections(user string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.users[user]; e != nil {
		return len(e.sockets)
	}
	return 0
}

// allow takes one event from the user's budget and reports whether there was
// one.
func (r *registry) allow(user string) bool {
	if r.newLimiter == nil {
		return true
	}
	r.mu.RLock()
	e := r.users[user]
	r.mu.RUnlock()
	if e == nil {
		return true
	}
	l := e.limiter.Load()
	if l == nil {
		if l = r.newLimiter(); !e.limiter.CompareAndSwap(nil, l) {
			l = e.limiter.Load()
		}
	}
	return l.Allow()
}

// sockets returns a snapshot of the user's sockets.
func (r *registry) sockets(user string) []*socket.Socket {
	return r.appendUser(nil, user)
}

// appendUser appends the user's sockets to out.
func (r *registry) appendUser(out []*socket.Socket, user string) []*socket.Socket {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.users[user]; e != nil {
		out = append(out, e.sockets...)
	}
	return out
}

// appendAll appends every socket to out.
func (r *registry) appendAll(out []*socket.Socket) []*socket.Socket {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out = slices.Grow(out, r.count)
	for _, e := range r.users {
		out = append(out, e.sockets...)
	}
	return out
}

func (r *registry) counts() (connections, users int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count, len(r.users)
}

// Presence is what this instance knows of one user.
type Presence struct {
	Sockets int
	Rooms   []string
}

// Stats counts this instance's connections, users and named rooms.
type Stats struct {
	Connections int
	Users       int
	Rooms       int
}

// LocalStats returns this instance's counts.
func (b *Bridge) LocalStats() Stats {
	connections, users := b.registry.counts()
	return Stats{Connections: connections, Users: users, Rooms: len(b.LocalRooms())}
}

// LocalUser returns the user's sockets and named rooms on this instance.
func (b *Bridge) LocalUser(user string) Presence {
	sockets := b.registry.sockets(user)
	rooms := map[string]bool{}
	for _, s := range sockets {
		for _, room := range s.Rooms().Keys() {
			if name, isNamed := strings.CutPrefix(string(room), roomPrefix); isNamed {
				rooms[name] = true
			}
		}
	}
	return Presence{Sockets: len(sockets), Rooms: sortedKeys(rooms)}
}

// LocalRooms returns the named rooms on this instance with their member counts.
func (b *Bridge) LocalRooms() map[string]int {
	out := map[string]int{}
	b.io.Sockets().Adapter().Rooms().Range(func(room socket.Room, members *types.Set[socket.SocketId]) bool {
		if name, isNamed := strings.CutPrefix(string(room), roomPrefix); isNamed && members.Len() > 0 {
			out[name] = members.Len()
		}
		return true
	})
	return out
}

// JoinUser makes every local socket of user join room.
func (b *Bridge) JoinUser(user, room string) {
	for _, s := range b.registry.sockets(user) {
		s.Join(namedRoom(room))
	}
}

// LeaveUser makes every local socket of user leave room.
func (b *Bridge) LeaveUser(user, room string) {
	for _, s := range b.registry.sockets(user) {
		s.Leave(namedRoom(room))
	}
}

// DisconnectUser disconnects every local socket of user. Clients see "io
// server disconnect" and do not reconnect by themselves.
func (b *Bridge) DisconnectUser(user string) {
	for _, s := range b.registry.sockets(user) {
		// Disconnect(true) would close the transport before the DISCONNECT
		// packet is flushed, and a client seeing a bare transport close
		// reconnects. So send the packet and leave the closing to the client
		// (the official one closes its connection once it has no namespace
		// left), closing it ourselves after a grace period otherwise.
		//
		// On the socket's task queue: a socket is registered before its
		// "connection" handlers run, and its disconnect must come after
		// them, as every other close of a socket does.
		s.Enqueue(func() { s.Disconnect(false) })
		conn := s.Conn()
		time.AfterFunc(disconnectGrace, func() { conn.Close(false) })
	}
}

// disconnectGrace is how long a client disconnected by the server has to close
// its connection itself.
const disconnectGrace = 2 * time.Second

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
