package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// streamReader is a fan-out message.Subscriber over Redis Streams: every
// subscriber reads every entry added after it subscribed, many entries per
// XREAD (the adapter's fan-out subscriber reads one per round trip). Entries
// are handed over one at a time, each after the previous one was acked, or,
// to the router, the entries of each XREAD as one batch (SubscribeBatches),
// so order is kept; what was nacked is handed over again.
type streamReader struct {
	client *redis.Client
	log    *slog.Logger
	// count is how many entries one XREAD asks for; block how long it waits.
	count int64
	block time.Duration
	// interval is the least time from one XREAD that got entries to the
	// next, unless the first was full (the reader is behind): entries added
	// meanwhile come in one read instead of one read each. 0 reads again as
	// soon as the last read is handed over.
	interval time.Duration
	// fromStart reads each stream from its first entry instead of its end
	// (Watermill's universal test suite expects old messages).
	fromStart bool
	// metrics, when set, receive the reader's lag, checked after each batch
	// it handled (before the next read, which would skip trimmed entries
	// unnoticed).
	metrics *Metrics

	closing chan struct{}
	once    sync.Once
	readers sync.WaitGroup
}

func newStreamReader(client *redis.Client, metrics *Metrics, log *slog.Logger) *streamReader {
	return &streamReader{client: client, log: log.With("component", "redis-reader"), count: 256,
		block: 200 * time.Millisecond, metrics: metrics, closing: make(chan struct{})}
}

// Subscribe starts reading topic from its current end.
func (s *streamReader) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.subscribe(ctx, topic, handOverEach)
}

// SubscribeBatches is Subscribe with the entries of each XREAD handed over
// as one batch (see batchSubscriber).
func (s *streamReader) SubscribeBatches(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.subscribe(ctx, topic, handOverBatch)
}

func (s *streamReader) subscribe(ctx context.Context, topic string, hand handOff) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, errors.New("redis reader: closed")
	default:
	}
	// Start after the last entry there is now. "$" would do for the first
	// XREAD, but not for a second one after an empty block: whatever was
	// added in between would be skipped.
	start := "0-0"
	if !s.fromStart {
		last, err := s.client.XRevRangeN(ctx, topic, "+", "-", 1).Result()
		if err != nil {
			return nil, fmt.Errorf("redis reader: end of %s: %w", topic, err)
		}
		if len(last) == 1 {
			start = last[0].ID
		}
	}
	out := make(chan *message.Message)
	s.readers.Add(1)
	go s.read(ctx, topic, start, hand, out)
	return out, nil
}

// read hands over what fetch reads, in order. fetch reads the next entries
// while the consumer handles the last ones: a read's round trip and the
// decoding of its entries overlap the handling of the batch before, which
// otherwise waited for both (one batch is read ahead at most).
func (s *streamReader) read(ctx context.Context, topic, after string, hand handOff, out chan<- *message.Message) {
	defer s.readers.Done()
	defer close(out)
	ctx, cancel := untilClosed(ctx, s.closing)
	defer cancel()
	batches := make(chan []*message.Message, 1)
	go s.fetch(ctx, topic, after, batches)
	for msgs := range batches {
		if hand(ctx, msgs, out) < len(msgs) {
			// ctx ended: fetch stops and closes batches.
			cancel()
			for range batches {
			}
			return
		}
	}
}

// fetch reads topic after the entry after, until ctx ends, and sends the
// messages of each read to batches, which it closes when it returns.
func (s *streamReader) fetch(ctx context.Context, topic, after string, batches chan<- []*message.Message) {
	defer close(batches)
	var (
		delay retryDelay
		// The lag is checked, in the same round trip as the read, when the
		// reader moved since the last check and either it is behind (its
		// last read was full), which is when trimming can overtake it, or
		// lagCheckEvery has passed (also after waiting for the consumer).
		// A reader that got nothing since was at the end of the stream.
		checked   = after
		checkedAt time.Time
		behind    bool
		// next is when the next read may start (interval).
		next time.Time
	)
	for ctx.Err() == nil {
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		readAt := time.Now()
		args := &redis.XReadArgs{Streams: []string{topic, after}, Count: s.count, Block: s.block}
		var xread *redis.XStreamSliceCmd
		if s.metrics != nil && after != checked && (behind || time.Since(checkedAt) >= lagCheckEvery) {
			checked, checkedAt = after, time.Now()
			pipe := s.client.Pipeline()
			info := pipe.XInfoStream(ctx, topic)
			xread = pipe.XRead(ctx, args)
			if _, err := pipe.Exec(ctx); err != nil && xread.Err() == nil && xread.Val() == nil {
				// The read was not answered (no connection, or the
				// pipeline broke before it): go-redis leaves the
				// command's own error unset.
				xread.SetErr(err)
			}
			s.reportLag(topic, after, info)
		} else {
			xread = s.client.XRead(ctx, args)
		}
		streams, err := xread.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("xread failed; retrying", "topic", topic, "error", err)
			if !delay.wait(ctx) {
				return
			}
			continue
		}
		delay = 0
		var msgs []*message.Message
		read := 0
		for _, xs := range streams {
			read += len(xs.Messages)
			msgs = slices.Grow(msgs, len(xs.Messages))
			for _, entry := range xs.Messages {
				msg, err := unmarshalEntry(entry)
				if err != nil {
					s.log.Warn("stream entry skipped", "topic", topic, "entry", entry.ID, "error", err)
					continue
				}
				msg.SetContext(ctx)
				msgs = append(msgs, msg)
			}
			if n := len(xs.Messages); n > 0 {
				after = xs.Messages[n-1].ID
			}
		}
		behind = s.count > 0 && int64(read) >= s.count
		if s.interval > 0 && read > 0 && !behind {
			next = readAt.Add(s.interval)
		}
		if len(msgs) == 0 {
			continue
		}
		select {
		case batches <- msgs:
		case <-ctx.Done():
			return
		}
	}
}

// untilClosed returns ctx ended also when closing is closed.
func untilClosed(ctx context.Context, closing <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// retryDelay doubles a read retry's wait, from 100ms up to 2s.
type retryDelay time.Duration

// wait waits the current delay (false when ctx ended first) and doubles it.
func (d *retryDelay) wait(ctx context.Context) bool {
	if *d == 0 {
		*d = retryDelay(100 * time.Millisecond)
	}
	select {
	case <-time.After(time.Duration(*d)):
	case <-ctx.Done():
		return false
	}
	*d = retryDelay(min(2*time.Duration(*d), 2*time.Second))
	return true
}

// handOver gives msg to the reader's consumer and waits for its ack, handing
// it over again after a nack. It reports false when ctx ended first.
func handOver(ctx context.Context, msg *message.Message, out chan<- *message.Message) bool {
	for {
		m := msg.Copy()
		// The message's context ends with its ack or nack, as Watermill's
		// subscribers do.
		mctx, cancel := context.WithCancel(ctx)
		m.SetContext(mctx)
		select {
		case out <- m:
		case <-ctx.Done():
			cancel()
			return false
		}
		select {
		case <-m.Acked():
			cancel()
			return true
		case <-m.Nacked():
			cancel()
		case <-ctx.Done():
			cancel()
			return false
		}
	}
}

// Close stops every reader and waits for them.
func (s *streamReader) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.readers.Wait()
	return nil
}
