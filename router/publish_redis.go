package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// redisPublisher writes entries in the watermill-redisstream wire format, so
// the adapter's subscribers (and any backend using the adapter) read them,
// but sends all the messages of one Publish call in one MULTI/EXEC: one round
// trip instead of one per message, and all or nothing. The adapter's own
// publisher stops at the first failed XADD, after the earlier ones were
// added, so a batch could be partly published and still reported as failed.
type redisPublisher struct {
	client  *redis.Client
	maxLen  int64
	timeout time.Duration
	closed  atomic.Bool
	// recent keeps what was published lately, for a replay after Redis
	// restarts (replay_redis.go).
	recent replayBuffer
	// group gathers concurrent single-message publishes into one pipeline.
	group xaddGroup
}

func (p *redisPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return errors.New("redis publisher: closed")
	}
	if len(msgs) == 1 {
		// One entry is all or nothing by itself: no MULTI/EXEC around it,
		// and it may share a round trip with other callers' entries.
		fields, err := marshalEntry(msgs[0])
		if err != nil {
			return fmt.Errorf("message %s: %w", msgs[0].UUID, err)
		}
		if err := p.group.add(p, &xaddRequest{topic: topic, fields: fields}); err != nil {
			return fmt.Errorf("xadd to %s: %w", topic, err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	added := make([]entryFields, 0, len(msgs))
	_, err := p.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, msg := range msgs {
			fields, err := marshalEntry(msg)
			if err != nil {
				return fmt.Errorf("message %s: %w", msg.UUID, err)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: fields.values(), MaxLen: p.maxLen, Approx: true})
			added = append(added, fields)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("xadd %d entries to %s: %w", len(msgs), topic, err)
	}
	p.recent.add(topic, added...)
	return nil
}

// Close stops publishing; the client belongs to the bus.
func (p *redisPublisher) Close() error {
	p.closed.Store(true)
	return nil
}

// maxGroup bounds the entries of one grouped pipeline.
const maxGroup = 256

// xaddGroup commits concurrent single-entry publishes together: a caller
// that finds no pipeline in flight writes its entry at once, alone (no wait
// is added); entries that arrive meanwhile queue, and the first of them,
// when the pipeline in flight is answered, writes every queued entry in one
// pipeline, one round trip and one write for all. Under load the groups grow
// with the rate; each caller still learns the fate of its own entry (each
// XADD succeeds or fails alone, as it did in a round trip of its own).
type xaddGroup struct {
	mu sync.Mutex
	// busy: a caller is writing; queue: the entries waiting for it to end.
	busy  bool
	queue []*xaddRequest
	// rounds counts the pipelines written (for tests).
	rounds atomic.Int64
}

type xaddRequest struct {
	topic  string
	fields entryFields
	err    error
	// done is closed when the entry was written (err set), or when its
	// caller is to write the queue (lead).
	done chan struct{}
	lead bool
}

// add writes r's entry, alone or with others, and returns its error.
func (g *xaddGroup) add(p *redisPublisher, r *xaddRequest) error {
	g.mu.Lock()
	if g.busy {
		r.done = make(chan struct{})
		g.queue = append(g.queue, r)
		g.mu.Unlock()
		<-r.done
		if !r.lead {
			return r.err
		}
		g.mu.Lock()
	}
	g.busy = true
	batch := g.take(r)
	g.mu.Unlock()
	g.write(p, batch)
	g.mu.Lock()
	if len(g.queue) > 0 {
		// The first waiter writes what queued meanwhile, itself included.
		next := g.queue[0]
		next.lead = true
		close(next.done)
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	for _, o := range batch[1:] {
		close(o.done)
	}
	return r.err
}

// take returns r and as many queued entries as fit in a group, removing them
// from the queue; g.mu is held.
func (g *xaddGroup) take(r *xaddRequest) []*xaddRequest {
	if len(g.queue) > 0 && g.queue[0] == r {
		g.queue = g.queue[1:]
	}
	n := min(len(g.queue), maxGroup-1)
	batch := make([]*xaddRequest, 0, n+1)
	batch = append(batch, r)
	batch = append(batch, g.queue[:n]...)
	g.queue = append(g.queue[:0:0], g.queue[n:]...)
	return batch
}

// write adds the entries of batch in one round trip and sets each one's
// error.
func (g *xaddGroup) write(p *redisPublisher, batch []*xaddRequest) {
	g.rounds.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	if len(batch) == 1 {
		r := batch[0]
		r.err = p.client.XAdd(ctx, &redis.XAddArgs{Stream: r.topic, Values: r.fields.values(), MaxLen: p.maxLen, Approx: true}).Err()
		if r.err == nil {
			p.recent.add(r.topic, r.fields)
		}
		return
	}
	pipe := p.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(batch))
	for i, r := range batch {
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.topic, Values: r.fields.values(), MaxLen: p.maxLen, Approx: true})
	}
	_, execErr := pipe.Exec(ctx)
	for i, r := range batch {
		r.err = cmds[i].Err()
		if r.err == nil && cmds[i].Val() == "" {
			// Not answered (no connection, or the pipeline broke before
			// it): go-redis leaves the command's own error unset.
			r.err = execErr
			if r.err == nil {
				r.err = errors.New("no answer")
			}
		}
		if r.err == nil {
			p.recent.add(r.topic, r.fields)
		}
	}
}
