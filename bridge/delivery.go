package bridge

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/web3-socket/web3-socket/schemas"
)

// queued is an envelope waiting for local delivery, with its offset in the
// outbound topic's log ("" when the bus keeps none).
type queued struct {
	env    *schemas.Envelope
	offset string
}

// Enqueue hands a deliver envelope, with its offset in the bus's log, to the
// local delivery loop. It blocks while the queue is full, which holds back the
// bus consumer instead of growing memory, and gives up when ctx is done.
func (b *Bridge) Enqueue(ctx context.Context, env *schemas.Envelope, offset string) error {
	b.inflight.Add(1)
	select {
	case b.queue <- queued{env: env, offset: offset}:
		return nil
	case <-ctx.Done():
		b.inflight.Add(-1)
		return ctx.Err()
	}
}

// inlineMaxTargets bounds the users and socket ids of an envelope Deliver
// may deliver in its caller's goroutine.
const inlineMaxTargets = 4

// Deliver is Enqueue for an envelope the bus handed over alone. When nothing
// is queued or being delivered and the envelope is for a few users or socket
// ids (no room, not everyone), the caller delivers it at once: a lone message
// then waits for no other goroutine. Anything else is queued, so that a busy
// bridge, and an envelope for many sockets, is delivered in batches.
func (b *Bridge) Deliver(ctx context.Context, env *schemas.Envelope, offset string) error {
	to := env.To
	if to == nil || to.All || len(to.Rooms) > 0 || len(to.Users)+len(to.Sockets) > inlineMaxTargets ||
		!b.inflight.CompareAndSwap(0, 1) {
		return b.Enqueue(ctx, env, offset)
	}
	b.delivering.Lock()
	b.deliver([]queued{{env: env, offset: offset}})
	b.delivering.Unlock()
	b.inflight.Add(-1)
	return nil
}

// RunDelivery delivers queued envelopes to local sockets until ctx is done,
// then delivers what is still queued and returns. It takes whatever is queued
// at each wake-up, up to MaxBatch, as one batch.
func (b *Bridge) RunDelivery(ctx context.Context) {
	batch := make([]queued, 0, b.cfg.MaxBatch)
	run := func(batch []queued) {
		b.delivering.Lock()
		b.deliver(batch)
		b.delivering.Unlock()
		b.inflight.Add(-int64(len(batch)))
	}
	for {
		select {
		case env := <-b.queue:
			batch = b.fill(append(batch[:0], env))
			run(batch)
		case <-ctx.Done():
			for {
				batch = b.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				run(batch)
			}
		}
	}
}

// fill appends what is queued, without waiting, up to MaxBatch.
func (b *Bridge) fill(batch []queued) []queued {
	for len(batch) < b.cfg.MaxBatch {
		select {
		case env := <-b.queue:
			batch = append(batch, env)
		default:
			return batch
		}
	}
	return batch
}

// encodedPacket is one envelope as its recipients receive it, encoded once.
type encodedPacket struct {
	// offset is the envelope's offset in the log, also the packet's last
	// argument when clients can recover.
	offset string
	// packet is the Socket.IO packet (`2["event",data]`), for the engine's
	// own write path (polling, or a socket in the middle of an upgrade).
	packet []byte
	// frame is the same packet as a complete WebSocket frame, shared by every
	// socket on our WebSocket transport.
	frame wsFrame
}

// deliver writes a batch to the local sockets. Each envelope is encoded once,
// and the encoding is shared by every recipient. Packets are grouped by
// recipient socket, keeping the batch's order, so each socket gets all of its
// packets of the batch in one write.
func (b *Bridge) deliver(batch []queued) {
	b.metrics.batchSize.Observe(float64(len(batch)))
	now := time.Now()
	nsp := b.io.Sockets()
	packets := make([]encodedPacket, 0, len(batch))
	type pendingSocket struct {
		s       *socket.Socket
		packets []int
	}
	var pending []pendingSocket
	slot := map[*socket.Socket]int{}
	var reach []*socket.Socket
	for _, q := range batch {
		env := q.env
		// Envelopes for sockets of other instances are common in a cluster:
		// those are not encoded, and have no delivery latency here.
		if reach = b.recipients(reach[:0], env.To); len(reach) == 0 {
			continue
		}
		b.metrics.deliveryLatency.Observe(now.Sub(env.TS).Seconds())
		p, err := b.encode(nsp.Name(), env, q.offset)
		if err != nil {
			b.log.Warn("envelope not deliverable", "id", env.ID, "event", env.Event, "error", err)
			continue
		}
		packets = append(packets, p)
		for _, s := range reach {
			i, seen := slot[s]
			if !seen {
				i = len(pending)
				slot[s] = i
				pending = append(pending, pendingSocket{s: s})
			}
			pending[i].packets = append(pending[i].packets, len(packets)-1)
		}
	}
	sent := 0
	for _, ps := range pending {
		s := ps.s
		if g, recovering := b.gateOf(s); recovering {
			keep, held, passed := g.admit(packets, ps.packets)
			if held {
				// Written in log order once what it missed is (Bridge.recover).
				continue
			}
			if passed {
				b.ungate(s)
			}
			if ps.packets = keep; len(keep) == 0 {
				continue
			}
		}
		if !s.Connected() {
			continue
		}
		sent += len(ps.packets)
		b.write(s, packets, ps.packets)
	}
	b.metrics.messagesSent.Add(float64(sent))
}

// write writes packets to s: those of indexes, or all of them when indexes is
// nil. On our WebSocket transport the shared frames are queued as they are;
// on the engine's own path (polling, or a socket in the middle of an upgrade)
// each socket gets its own copy, since the engine reads what it is given.
func (b *Bridge) write(s *socket.Socket, packets []encodedPacket, indexes []int) {
	n := len(indexes)
	if indexes == nil {
		n = len(packets)
	}
	at := func(k int) *encodedPacket {
		if indexes == nil {
			return &packets[k]
		}
		return &packets[indexes[k]]
	}
	if t, direct := s.Conn().Transport().(*wsTransport); direct {
		frames := make([]wsFrame, n)
		for k := range n {
			frames[k] = at(k).frame
		}
		t.writeFrames(frames)
		return
	}
	buffers := make([]types.BufferInterface, n)
	for k := range n {
		buffers[k] = types.NewStringBuffer(bytes.Clone(at(k).packet))
	}
	s.Client().WriteToEngine(buffers, &socket.WriteOptions{PreEncoded: true})
}

// encode encodes env as the Socket.IO EVENT packet its recipients receive:
// `2["event",data]` (Socket.IO v5, default namespace, no ack id), written by
// hand since the data is already JSON. When clients can recover, the
// envelope's offset is the last argument (`2["event",data,"offset"]`), as
// Socket.IO's connection-state recovery has it: the client keeps the last one
// and sends it back when it reconnects.
func (b *Bridge) encode(nsp string, env *schemas.Envelope, offset string) (encodedPacket, error) {
	if nsp != "/" {
		return encodedPacket{}, fmt.Errorf("namespace %q: only the default namespace is served", nsp)
	}
	p := make([]byte, 0, len(env.Event)+len(env.Data)+len(offset)+10)
	p = append(p, '2', '[')
	p = schemas.AppendJSONString(p, env.Event)
	if len(env.Data) > 0 {
		p = append(p, ',')
		p = append(p, env.Data...)
	}
	if offset != "" && b.sessions != nil {
		p = append(p, ',')
		p = schemas.AppendJSONString(p, offset)
	}
	p = append(p, ']')
	// "4" is the Engine.IO message packet type.
	return encodedPacket{offset: offset, packet: p, frame: newTextFrame([]byte{'4'}, p)}, nil
}

// recipients appends to out the local sockets a target reaches: the union of
// its users, rooms and sockets (or every socket), minus its exclusions.
func (b *Bridge) recipients(out []*socket.Socket, to *schemas.Target) []*socket.Socket {
	groups := len(to.Users) + len(to.Rooms) + len(to.Sockets)
	if to.All {
		out = b.registry.appendAll(out)
	} else {
		out = b.appendMembers(out, to.Users, to.Rooms, to.Sockets)
	}
	if groups > 1 {
		// A socket reached twice (a user's socket in a named room, say) gets
		// the packet once.
		out = dedupe(out)
	}
	if x := to.Except; x != nil {
		excluded := b.appendMembers(nil, x.Users, x.Rooms, x.Sockets)
		if len(excluded) <= 8 {
			out = slices.DeleteFunc(out, func(s *socket.Socket) bool { return slices.Contains(excluded, s) })
		} else {
			drop := make(map[*socket.Socket]struct{}, len(excluded))
			for _, s := range excluded {
				drop[s] = struct{}{}
			}
			out = slices.DeleteFunc(out, func(s *socket.Socket) bool { _, x := drop[s]; return x })
		}
	}
	return out
}

// Reaches reports whether to may reach a socket connected to this instance:
// one of its users, named rooms or socket ids is here, or it is a broadcast
// and any socket is. Except is not applied, so a target whose local sockets
// are all excluded still reaches. The outbound handler asks it before
// claiming an envelope id in the shared dedupe store: an instance with
// nobody to deliver to has nothing to claim.
func (b *Bridge) Reaches(to *schemas.Target) bool {
	if to == nil {
		return false
	}
	if to.All {
		n, _ := b.registry.counts()
		return n > 0
	}
	for _, u := range to.Users {
		if b.registry.connections(u) > 0 {
			return true
		}
	}
	if len(to.Rooms) > 0 {
		rooms := b.io.Sockets().Adapter().Rooms()
		for _, r := range to.Rooms {
			if members, ok := rooms.Load(namedRoom(r)); ok && members.Len() > 0 {
				return true
			}
		}
	}
	for _, id := range to.Sockets {
		if _, ok := b.io.Sockets().Sockets().Load(socket.SocketId(id)); ok {
			return true
		}
	}
	return false
}

// appendMembers appends the local sockets of the users, named rooms and
// socket ids.
func (b *Bridge) appendMembers(out []*socket.Socket, users, rooms, sockets []string) []*socket.Socket {
	for _, u := range users {
		out = b.registry.appendUser(out, u)
	}
	for _, r := range rooms {
		out = b.appendRoom(out, namedRoom(r))
	}
	for _, id := range sockets {
		if s, ok := b.io.Sockets().Sockets().Load(socket.SocketId(id)); ok {
			out = append(out, s)
		}
	}
	return out
}

// appendRoom appends the local members of an adapter room.
func (b *Bridge) appendRoom(out []*socket.Socket, room socket.Room) []*socket.Socket {
	members, ok := b.io.Sockets().Adapter().Rooms().Load(room)
	if !ok {
		return out
	}
	sockets := b.io.Sockets().Sockets()
	for _, id := range members.Keys() {
		if s, ok := sockets.Load(id); ok {
			out = append(out, s)
		}
	}
	return out
}

func dedupe(sockets []*socket.Socket) []*socket.Socket {
	seen := make(map[*socket.Socket]struct{}, len(sockets))
	return slices.DeleteFunc(sockets, func(s *socket.Socket) bool {
		if _, dup := seen[s]; dup {
			return true
		}
		seen[s] = struct{}{}
		return false
	})
}
