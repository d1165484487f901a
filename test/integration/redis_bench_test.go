package integration

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/bridge"
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

// BenchmarkRedisOutboundConsumption measures what one instance spends to
// consume one outbound entry: read from Redis Streams by the fan-out reader,
// through the Watermill router and the real Outbound handler, into the
// bridge's delivery loop. The entries are what a backend adds (a payload
// field holding a deliver envelope, as make bench's redis-bus scenario
// does), to users with no socket here. They are all added first, while the
// handler is held back, so that only consumption is timed:
//
//	go test -run x -bench RedisOutboundConsumption -benchtime 200000x ./test/integration
func BenchmarkRedisOutboundConsumption(b *testing.B) {
	r := harness.StartRedis(b)
	log := slog.New(slog.DiscardHandler)
	bus := redisBus(b, r)
	topics := router.NewTopics("bench.")
	edge, err := bridge.New(bridge.Config{Instance: "bench", Auth: bridge.AuthConfig{Secret: "bench-secret-bench-secret-bench-secret"},
		OutboundTopic: topics.Outbound, InboundTopic: topics.Inbound}, router.NewPublisher(bus.Publisher(), router.NewMetrics(prometheus.NewRegistry())),
		bridge.NewMetrics(prometheus.NewRegistry(), prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socket_errors_total"}, []string{"type"})), log)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := router.New(router.Config{Poison: topics.Poison}, bus, router.NewMetrics(prometheus.NewRegistry()), log)
	if err != nil {
		b.Fatal(err)
	}
	gate := make(chan struct{})
	consumed := &countingDeliverer{d: edge, gate: gate, want: int64(b.N), done: make(chan struct{})}
	rt.HandleFanOut("deliver", topics.Outbound, handlers.Outbound(consumed))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	routed := make(chan error, 1)
	go func() { routed <- rt.Run(ctx) }()
	delivered := make(chan struct{})
	go func() { defer close(delivered); edge.RunDelivery(ctx) }()
	defer func() {
		cancel()
		_ = rt.Close()
		<-routed
		<-delivered
	}()
	<-rt.Running()

	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		b.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for lo := 0; lo < b.N; lo += 500 {
		pipe := rc.Pipeline()
		for seq := lo; seq < min(lo+500, b.N); seq++ {
			body := fmt.Sprintf(`{"v":1,"id":"bus-%d","kind":"deliver","to":{"users":["absent-%d"]},"event":"bench","data":{"t":%d,"seq":%d},"ts":"%s"}`,
				seq, seq%1000, time.Now().UnixNano(), seq, ts)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topics.Outbound, Values: []string{"payload", body}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cpu0 := processCPU()
	close(gate)
	select {
	case <-consumed.done:
	case <-time.After(time.Duration(b.N)*100*time.Microsecond + 30*time.Second):
		b.Fatalf("consumed %d of %d", consumed.n.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// CPU time says more than wall time on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/msg")
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingDeliverer passes envelopes on to d once gate is closed, and closes
// done at the want-th.
type countingDeliverer struct {
	d    handlers.Deliverer
	gate chan struct{}
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *countingDeliverer) Enqueue(ctx context.Context, env *schemas.Envelope, offset string) error {
	<-c.gate
	if err := c.d.Enqueue(ctx, env, offset); err != nil {
		return err
	}
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return nil
}
