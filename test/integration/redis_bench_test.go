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

	"github.com/web3-socket/web3-socket/router"
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

func benchFanOut(b *testing.B, pub message.Publisher, sub message.Subscriber) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, "bench.fanout")
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the subscriber's first XREAD is under way
	batch := make([]*message.Message, 100)
	payload := []byte(`{"v":1,"id":"x","kind":"deliver","to":{"users":["u1"]},"event":"e","data":{"n":1},"ts":"2026-11-27T10:00:00Z"}`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range b.N {
			select {
			case m := <-ch:
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
			batch[i] = message.NewMessage(fmt.Sprint(sent+i), payload)
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
