package bridge

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/web3-socket/web3-socket/schemas"
)

// MissedLog reads the outbound topic's log for connection-state recovery.
type MissedLog interface {
	// Has reports whether offset is still in the log.
	Has(ctx context.Context, offset string) (bool, error)
	// ReadAfter calls fn with each envelope after offset, with its offset,
	// in order, up to the end of the log when it was called.
	ReadAfter(ctx context.Context, offset string, fn func(offset string, env *schemas.Envelope) error) error
	// Compare orders two offsets (-1, 0, +1).
	Compare(a, b string) int
}

// recoveryTimeout bounds reading what one recovered client missed.
const recoveryTimeout = 10 * time.Second

// recoveryGate holds the packets delivered live to a socket while what it
// missed is read from the log, so that it gets both in log order and each
// once. Once released it drops the live packets that recovery already sent:
// the live path may be behind the end of the log recovery read.
type recoveryGate struct {
	mu       sync.Mutex
	released bool
	// floor, once released, is the offset of the last message recovery
	// read from the log.
	floor string
	held  []encodedPacket
}

// pass takes the live packets of indexes for the socket. Before release it
// keeps them and returns none; after, it returns those after floor, for the
// caller to write, and past reports that the live path has gone beyond
// floor (the gate has nothing left to do).
func (g *recoveryGate) pass(packets []encodedPacket, indexes []int, compare func(a, b string) int) (write []int, past bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.released {
		for _, i := range indexes {
			g.held = append(g.held, packets[i])
		}
		return nil, false
	}
	for k, i := range indexes {
		if compare(packets[i].offset, g.floor) > 0 {
			// The live path is in log order: everything from here on is new.
			return indexes[k:], true
		}
	}
	return nil, false
}

// gate starts holding live packets for s, before it is registered.
func (b *Bridge) gate(s *socket.Socket) {
	b.recovering.Add(1)
	b.gates.Store(s, &recoveryGate{})
}

// ungate forgets s's gate (a socket that closed before it connected).
func (b *Bridge) ungate(s *socket.Socket) {
	if _, ok := b.gates.LoadAndDelete(s); ok {
		b.recovering.Add(-1)
	}
}

// gateOf returns s's gate while it is recovering.
func (b *Bridge) gateOf(s *socket.Socket) (*recoveryGate, bool) {
	if b.recovering.Load() == 0 {
		return nil, false
	}
	g, ok := b.gates.Load(s)
	if !ok {
		return nil, false
	}
	return g.(*recoveryGate), true
}

// recover sends a recovered socket what it missed since offset: every
// envelope of the log after it that reaches the socket, then what was
// delivered live meanwhile and came later in the log. If the log cannot be
// read, the connection is closed: the client reconnects and tries again from
// the last event it got.
func (b *Bridge) recover(ctx context.Context, s *socket.Socket, user, offset string) {
	g, ok := b.gateOf(s)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	rooms := types.NewSet(s.Rooms().Keys()...)
	nsp := b.io.Sockets().Name()
	var missed []encodedPacket
	last := offset
	err := b.cfg.Log.ReadAfter(ctx, offset, func(off string, env *schemas.Envelope) error {
		last = off
		if env.Kind != schemas.KindDeliver || env.To == nil || !reaches(env.To, user, s.Id(), rooms) {
			return nil
		}
		p, err := b.encode(nsp, env, off)
		if err != nil {
			return nil
		}
		missed = append(missed, p)
		return nil
	})

	g.mu.Lock()
	defer g.mu.Unlock()
	g.released = true
	g.floor = last
	if err != nil {
		defer b.ungate(s)
		b.metrics.errors.WithLabelValues(errRecovery).Inc()
		b.log.Warn("missed messages could not be read; closing the connection so that the client tries again",
			"user", user, "socket", string(s.Id()), "offset", offset, "error", err)
		s.Conn().Close(false)
		return
	}
	for _, p := range g.held {
		if b.cfg.Log.Compare(p.offset, last) > 0 {
			missed = append(missed, p)
		}
	}
	g.held = nil
	b.metrics.recovered.Inc()
	b.metrics.recoveredMessages.Add(float64(len(missed)))
	b.log.Debug("connection state recovered", "user", user, "socket", string(s.Id()), "offset", offset, "missed", len(missed))
	if len(missed) > 0 {
		b.write(s, missed, nil)
	}
}

// reaches reports whether a deliver target reaches a socket of user with id
// and rooms.
func reaches(to *schemas.Target, user string, id socket.SocketId, rooms *types.Set[socket.Room]) bool {
	if x := to.Except; x != nil {
		if slices.Contains(x.Users, user) || slices.Contains(x.Sockets, string(id)) ||
			slices.ContainsFunc(x.Rooms, func(r string) bool { return rooms.Has(namedRoom(r)) }) {
			return false
		}
	}
	return to.All || slices.Contains(to.Users, user) || slices.Contains(to.Sockets, string(id)) ||
		slices.ContainsFunc(to.Rooms, func(r string) bool { return rooms.Has(namedRoom(r)) })
}
