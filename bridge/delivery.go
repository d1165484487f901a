package bridge

import (
	"context"
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

// deliver writes a batch to the local sockets. Each envelope is encoded once;
// its packet is shared by every recipient. Packets are grouped by recipient
// socket, keeping the batch's order, so each socket gets all of its packets
// of the batch in one write.
func (b *Bridge) deliver(batch []*schemas.Envelope) {
	b.metrics.batchSize.Observe(float64(len(batch)))
	now := time.Now()
	nsp := b.io.Sockets()
	adapter := nsp.Adapter()
	pending := map[socket.SocketId][]types.BufferInterface{}
	var order []socket.SocketId
	for _, env := range batch {
		var data []any
		if len(env.Data) > 0 {
			data = []any{env.Data}
		}
		encoded := b.io.Encoder().Encode(&parser.Packet{Type: parser.EVENT, Nsp: nsp.Name(), Data: append([]any{env.Event}, data...)})
		for _, id := range recipients(adapter, env.To).Keys() {
			if _, seen := pending[id]; !seen {
				order = append(order, id)
			}
			pending[id] = append(pending[id], encoded...)
		}
		b.metrics.deliveryLatency.Observe(now.Sub(env.TS).Seconds())
	}
	opts := &socket.WriteOptions{PreEncoded: true}
	sent := 0
	for _, id := range order {
		s, ok := nsp.Sockets().Load(id)
		if !ok || !s.Connected() {
			continue
		}
		s.Client().WriteToEngine(pending[id], opts)
		sent += len(pending[id])
	}
	b.metrics.messagesSent.Add(float64(sent))
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
