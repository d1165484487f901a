package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// groupReader is a work-queue message.Subscriber over a Redis Streams
// consumer group: the consumers of a group share its entries. It reads many
// entries per XREADGROUP and acknowledges them together once the batch is
// handled; entries a dead consumer left pending are claimed (XAUTOCLAIM) once
// they have been idle for claimIdle. A group lost with a Redis restart
// without persistence (NOGROUP) is created again. Delivery is at least once.
type groupReader struct {
	client   *redis.Client
	log      *slog.Logger
	group    string
	consumer string
	count    int64
	block    time.Duration
	// claimIdle is how long an entry stays pending before another consumer
	// takes it over; claims are looked for every claimIdle/2.
	claimIdle time.Duration
	// fromStart makes a new group start at the stream's first entry instead
	// of its end (Watermill's universal test suite expects old messages).
	fromStart bool

	closing chan struct{}
	once    sync.Once
	readers sync.WaitGroup
}

func newGroupReader(client *redis.Client, group, consumer string, claimIdle time.Duration, log *slog.Logger) *groupReader {
	return &groupReader{client: client, log: log.With("component", "redis-group", "group", group), group: group,
		consumer: consumer, count: 256, block: 200 * time.Millisecond, claimIdle: claimIdle, closing: make(chan struct{})}
}

func (g *groupReader) createGroup(ctx context.Context, topic string) error {
	start := "$"
	if g.fromStart {
		start = "0"
	}
	return g.createGroupAt(ctx, topic, start)
}

func (g *groupReader) createGroupAt(ctx context.Context, topic, start string) error {
	err := g.client.XGroupCreateMkStream(ctx, topic, g.group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redis group %s on %s: %w", g.group, topic, err)
	}
	return nil
}

// Subscribe joins the group on topic (creating it when needed) and reads.
func (g *groupReader) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return g.subscribe(ctx, topic, handOverEach)
}

// SubscribeBatches is Subscribe with the entries of each read handed over as
// one batch (see batchSubscriber).
func (g *groupReader) SubscribeBatches(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return g.subscribe(ctx, topic, handOverBatch)
}

func (g *groupReader) subscribe(ctx context.Context, topic string, hand handOff) (<-chan *message.Message, error) {
	select {
	case <-g.closing:
		return nil, errors.New("redis group reader: closed")
	default:
	}
	if err := g.createGroup(ctx, topic); err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	g.readers.Add(1)
	go g.read(ctx, topic, hand, out)
	return out, nil
}

func (g *groupReader) read(ctx context.Context, topic string, hand handOff, out chan<- *message.Message) {
	defer g.readers.Done()
	defer close(out)
	ctx, cancel := untilClosed(ctx, g.closing)
	defer cancel()
	// Entries this consumer took before it stopped come first ("0"), then
	// new ones (">").
	next := "0"
	lastClaim := time.Now()
	var delay retryDelay
	for ctx.Err() == nil {
		if g.claimIdle > 0 && time.Since(lastClaim) >= g.claimIdle/2 {
			lastClaim = time.Now()
			if !g.claim(ctx, topic, hand, out) {
				return
			}
		}
		streams, err := g.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: g.group, Consumer: g.consumer,
			Streams: []string{topic, next}, Count: g.count, Block: g.block}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				// Redis lost the group (restarted without persistence):
				// the stream is as new as the group, so the group reads it
				// from its first entry (entries added since the restart,
				// replays among them).
				err = g.createGroupAt(ctx, topic, "0")
			}
			if err != nil {
				g.log.Warn("xreadgroup failed; retrying", "topic", topic, "error", err)
				if !delay.wait(ctx) {
					return
				}
			}
			continue
		}
		delay = 0
		var entries []redis.XMessage
		for _, xs := range streams {
			entries = append(entries, xs.Messages...)
		}
		if next == "0" && len(entries) == 0 {
			next = ">" // no pending entries of ours left
			continue
		}
		if !g.handle(ctx, topic, entries, hand, out) {
			return
		}
	}
}

// claim takes over entries other consumers left pending too long.
func (g *groupReader) claim(ctx context.Context, topic string, hand handOff, out chan<- *message.Message) bool {
	start := "0-0"
	for {
		entries, cursor, err := g.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: topic, Group: g.group,
			Consumer: g.consumer, MinIdle: g.claimIdle, Start: start, Count: g.count}).Result()
		if err != nil {
			if ctx.Err() == nil {
				g.log.Debug("xautoclaim failed", "topic", topic, "error", err)
			}
			return ctx.Err() == nil
		}
		if len(entries) > 0 {
			g.log.Info("claimed pending entries", "topic", topic, "count", len(entries))
			if !g.handle(ctx, topic, entries, hand, out) {
				return false
			}
		}
		if cursor == "0-0" || cursor == "" {
			return true
		}
		start = cursor
	}
}

// handle hands the entries over in order and acknowledges together those
// that were handled (or skipped, not being messages).
func (g *groupReader) handle(ctx context.Context, topic string, entries []redis.XMessage, hand handOff, out chan<- *message.Message) bool {
	msgs := make([]*message.Message, 0, len(entries))
	ids := make([]string, 0, len(entries)) // ids[i] is msgs[i]'s entry
	var skipped []string
	for _, entry := range entries {
		msg, err := unmarshalEntry(entry)
		if err != nil {
			g.log.Warn("stream entry skipped", "topic", topic, "entry", entry.ID, "error", err)
			skipped = append(skipped, entry.ID)
			continue
		}
		msg.SetContext(ctx)
		msgs = append(msgs, msg)
		ids = append(ids, entry.ID)
	}
	handled := hand(ctx, msgs, out)
	if done := append(skipped, ids[:handled]...); len(done) > 0 {
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.client.XAck(actx, topic, g.group, done...).Err(); err != nil {
			// Not acknowledged: the entries stay pending and are handed
			// over again (by this consumer on restart, or a claim).
			g.log.Warn("xack failed", "topic", topic, "entries", len(done), "error", err)
		}
	}
	return handled == len(msgs)
}

// Close stops every reader and waits for them.
func (g *groupReader) Close() error {
	g.once.Do(func() { close(g.closing) })
	g.readers.Wait()
	return nil
}
