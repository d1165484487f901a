package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/web3-socket/web3-socket/schemas"
)

// Enqueue hands a deliver envelope to the local delivery loop. It blocks while
// the queue is full, which holds back the bus consumer instead of growing
// memory, and gives up when ctx is done.
func (b *Bridge) Enqueue(ctx context.Context, env *schemas.Envelope) error {
	select {
	case b.queue <- env:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RunDelivery delivers queued envelopes to local sockets until ctx is done,
// then delivers what is still queued and returns. It takes whatever is queued
// at each wake-up, up to MaxBatch, as one batch.
func (b *Bridge) RunDelivery(ctx context.Context) {
	batch := make([]*schemas.Envelope, 0, b.cfg.MaxBatch)
	for {
		select {
		case env := <-b.queue:
			batch = b.fill(append(batch[:0], env))
			b.deliver(batch)
		case <-ctx.Done():
			for {
				batch = b.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				b.deliver(batch)
			}
		}
	}
}

// fill appends what is queued, without waiting, up to MaxBatch.
func (b *Bridge) fill(batch []*schemas.Envelope) []*schemas.Envelope {
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
func (b *Bridge) deliver(batch []*schemas.Envelope) {
	b.metrics.batchSize.Observe(float64(len(batch)))
	now := time.Now()
	nsp := b.io.Sockets()
	adapter := nsp.Adapter()
	packets := make([]encodedPacket, 0, len(batch))
	pending := map[socket.SocketId][]int{}
	var order []socket.SocketId
	for _, env := range batch {
		p, err := b.encode(nsp.Name(), env)
		if err != nil {
			b.log.Warn("envelope not deliverable", "id", env.ID, "event", env.Event, "error", err)
			continue
		}
		packets = append(packets, p)
		for _, id := range recipients(adapter, env.To).Keys() {
			if _, seen := pending[id]; !seen {
				order = append(order, id)
			}
			pending[id] = append(pending[id], len(packets)-1)
		}
		b.metrics.deliveryLatency.Observe(now.Sub(env.TS).Seconds())
	}
	sent := 0
	var frames []wsFrame
	for _, id := range order {
		s, ok := nsp.Sockets().Load(id)
		if !ok || !s.Connected() {
			continue
		}
		indexes := pending[id]
		sent += len(indexes)
		if t, direct := s.Conn().Transport().(*wsTransport); direct {
			frames = frames[:0]
			for _, i := range indexes {
				frames = append(frames, packets[i].frame)
			}
			t.writeFrames(frames)
			continue
		}
		buffers := make([]types.BufferInterface, len(indexes))
		for k, i := range indexes {
			// The engine reads what it is given: each socket gets its own
			// buffer over a copy.
			buffers[k] = types.NewStringBuffer(bytes.Clone(packets[i].packet))
		}
		s.Client().WriteToEngine(buffers, &socket.WriteOptions{PreEncoded: true})
	}
	b.metrics.messagesSent.Add(float64(sent))
}

// encode encodes env as the Socket.IO EVENT packet its recipients receive.
func (b *Bridge) encode(nsp string, env *schemas.Envelope) (encodedPacket, error) {
	args := []any{env.Event}
	if len(env.Data) > 0 {
		args = append(args, env.Data)
	}
	encoded := b.io.Encoder().Encode(&parser.Packet{Type: parser.EVENT, Nsp: nsp, Data: args})
	if len(encoded) != 1 {
		return encodedPacket{}, fmt.Errorf("encoded to %d parts; JSON data encodes to one", len(encoded))
	}
	text, isText := encoded[0].(*types.StringBuffer)
	if !isText {
		return encodedPacket{}, errors.New("encoded to a binary packet; JSON data encodes to text")
	}
	pkt := text.Bytes()
	// "4" is the Engine.IO message packet type.
	return encodedPacket{packet: pkt, frame: newTextFrame([]byte{'4'}, pkt)}, nil
}

// recipients resolves a target to the ids of the local sockets it reaches:
// users are their private rooms, sockets their own ids.
func recipients(adapter socket.Adapter, to *schemas.Target) *types.Set[socket.SocketId] {
	in := types.NewSet[socket.Room]()
	if !to.All {
		// An empty set asks the adapter for every socket, so a target that
		// names nobody must not reach it.
		named := rooms(to.Users, to.Rooms, to.Sockets)
		if len(named) == 0 {
			return types.NewSet[socket.SocketId]()
		}
		in.Add(named...)
	}
	ids := adapter.Sockets(in)
	if x := to.Except; x != nil {
		if out := rooms(x.Users, x.Rooms, x.Sockets); len(out) > 0 {
			ids.Delete(adapter.Sockets(types.NewSet(out...)).Keys()...)
		}
	}
	return ids
}

func rooms(users, named, sockets []string) []socket.Room {
	out := make([]socket.Room, 0, len(users)+len(named)+len(sockets))
	for _, u := range users {
		out = append(out, userRoom(u))
	}
	for _, r := range named {
		out = append(out, namedRoom(r))
	}
	for _, s := range sockets {
		out = append(out, socket.Room(s))
	}
	return out
}
