package integration

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/handlers"
	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// BenchmarkRedisBusFanOut measures one message through Redis Streams:
// published in batches of 100 (one MULTI/EXEC each) and read back by a
// fan-out subscriber that acks at once. Run: go test -run x -bench RedisBus ./test/integration
func BenchmarkRedisBusFanOut(b *testing.B) {
	r := harness.StartRedis(b)
	bus := redisBus(b, r)
	benchFanOut(b, bus.Publisher(), bus.FanOut())
}

// BenchmarkRedisAdapterFanOut is the baseline: the same through
// watermill-redisstream's own fan-out subscriber (one entry per XREAD), reading
// this fresh stream from its start: from "$" it misses what is added between
// two of its empty blocking reads.
func BenchmarkRedisAdapterFanOut(b *testing.B) {
	r := harness.StartRedis(b)
	bus := redisBus(b, r)
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: redis.NewClient(opts), FanOutOldestId: "0",
		DisableIndefiniteInitialBlock: true}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	benchFanOut(b, bus.Publisher(), sub)
}

// BenchmarkRedisBusFanOutDedupe is BenchmarkRedisBusFanOut with the outbound
// handler (decoding, no delivery) on each message: without deduplication,
// and with the Redis-shared IDEMPOTENCY_WINDOW dedupe for envelopes a
// backend published, and for envelopes web3-socket published (checked only
// against replays, in memory). Run: go test -run x -bench RedisBusFanOutDedupe ./test/integration
func BenchmarkRedisBusFanOutDedupe(b *testing.B) {
	for _, tt := range []struct{ name, origin string }{
		{"no-dedupe", "backend"}, {"backend-published", "backend"}, {"server-published", schemas.OriginServer},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r := harness.StartRedis(b)
			bus := redisBus(b, r)
			d := &fakeDeliverer{}
			handle := handlers.OutboundOnce(d, router.NewDedupe(bus, "bench.", time.Minute), router.ReplayDedupe(bus))
			if tt.name == "no-dedupe" {
				handle = handlers.Outbound(d)
			}
			origin := tt.origin
			benchFanOutEach(b, &withOrigin{bus.Publisher(), origin}, bus.FanOut(), func(m *message.Message) {
				if err := handle(m); err != nil {
					panic(err)
				}
			})
		})
	}
}

// withOrigin marks what it publishes with schemas.MetaOrigin origin, unless
// origin is "backend".
type withOrigin struct {
	message.Publisher
	origin string
}

func (p *withOrigin) Publish(topic string, msgs ...*message.Message) error {
	if p.origin != "backend" {
		for _, m := range msgs {
			m.Metadata.Set(schemas.MetaOrigin, p.origin)
		}
	}
	return p.Publisher.Publish(topic, msgs...)
}

// fakeDeliverer takes every envelope.
type fakeDeliverer struct{}

func (*fakeDeliverer) Enqueue(context.Context, *schemas.Envelope, string) error { return nil }

func benchFanOut(b *testing.B, pub message.Publisher, sub message.Subscriber) {
	benchFanOutEach(b, pub, sub, func(*message.Message) {})
}

// benchFanOutEach is benchFanOut running each on every message before it
// is acked.
func benchFanOutEach(b *testing.B, pub message.Publisher, sub message.Subscriber, each func(*message.Message)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, "bench.fanout")
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the subscriber's first XREAD is under way
	batch := make([]*message.Message, 100)
	// Each envelope has its own id: a deduplicating consumer sees no duplicate.
	payload := func(id string) []byte {
		return []byte(`{"v":1,"id":"` + id + `","kind":"deliver","to":{"users":["u1"]},"event":"e","data":{"n":1},"ts":"2026-11-27T10:00:00Z"}`)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range b.N {
			select {
			case m := <-ch:
				each(m)
				m.Ack()
			case <-time.After(10 * time.Second):
				panic("stalled")
			}
		}
	}()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += len(batch) {
		n := min(len(batch), b.N-sent)
		for i := range n {
			id := fmt.Sprint(sent + i)
			batch[i] = message.NewMessage(id, payload(id))
		}
		if err := pub.Publish("bench.fanout", batch[:n]...); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// redisBus returns a Redis bus on r, closed when the benchmark ends.
func redisBus(b *testing.B, r *harness.Redis) router.Bus {
	b.Helper()
	bus, err := router.NewBus(router.BusConfig{Kind: router.KindRedis, Redis: router.RedisConfig{URL: r.URL, Instance: "bench"}},
		slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	return bus
}
