package bridge

import (
	"context"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

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

// deliver writes each envelope of the batch, in order, to its local
// recipients. The adapter encodes each packet once for all of them.
func (b *Bridge) deliver(batch []*schemas.Envelope) {
	b.metrics.batchSize.Observe(float64(len(batch)))
	now := time.Now()
	for _, env := range batch {
		op := b.operator(env.To)
		var err error
		if len(env.Data) == 0 {
			err = op.Emit(env.Event)
		} else {
			err = op.Emit(env.Event, env.Data)
		}
		if err != nil {
			b.metrics.errors.WithLabelValues("delivery").Inc()
			b.log.Warn("delivery failed", "id", env.ID, "event", env.Event, "error", err)
			continue
		}
		b.metrics.deliveryLatency.Observe(now.Sub(env.TS).Seconds())
	}
}

// operator turns a target into a broadcast over the adapter's rooms: users
// are their private rooms, sockets their own ids.
func (b *Bridge) operator(to *schemas.Target) *socket.BroadcastOperator {
	var except []socket.Room
	if x := to.Except; x != nil {
		except = rooms(x.Users, x.Rooms, x.Sockets)
	}
	op := b.io.Except(except...)
	if to.All {
		return op
	}
	return op.To(rooms(to.Users, to.Rooms, to.Sockets)...)
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
