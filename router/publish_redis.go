package router

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
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
}

func (p *redisPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return errors.New("redis publisher: closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	if len(msgs) == 1 {
		// One entry is all or nothing by itself: no MULTI/EXEC around it.
		values, err := redisstream.DefaultMarshallerUnmarshaller{}.Marshal(topic, msgs[0])
		if err != nil {
			return fmt.Errorf("message %s: %w", msgs[0].UUID, err)
		}
		if err := p.client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: values, MaxLen: p.maxLen, Approx: true}).Err(); err != nil {
			return fmt.Errorf("xadd to %s: %w", topic, err)
		}
		p.recent.add(topic, []map[string]any{values})
		return nil
	}
	added := make([]map[string]any, 0, len(msgs))
	_, err := p.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, msg := range msgs {
			values, err := redisstream.DefaultMarshallerUnmarshaller{}.Marshal(topic, msg)
			if err != nil {
				return fmt.Errorf("message %s: %w", msg.UUID, err)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: values, MaxLen: p.maxLen, Approx: true})
			added = append(added, values)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("xadd %d entries to %s: %w", len(msgs), topic, err)
	}
	p.recent.add(topic, added)
	return nil
}

// Close stops publishing; the client belongs to the bus.
func (p *redisPublisher) Close() error {
	p.closed.Store(true)
	return nil
}
