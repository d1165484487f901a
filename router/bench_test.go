package router

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/web3-socket/web3-socket/schemas"
)

// BenchmarkMemoryBusRoundTrip measures one envelope published in batches of
// 100 and handled by a router handler that does nothing: the bus and router
// cost per message.
func BenchmarkMemoryBusRoundTrip(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus, err := NewBus(BusConfig{Kind: KindMemory}, log)
	if err != nil {
		b.Fatal(err)
	}
	metrics := NewMetrics(prometheus.NewRegistry())
	rt, err := New(Config{Poison: topics.Poison}, bus, metrics, log)
	if err != nil {
		b.Fatal(err)
	}
	handled := make(chan struct{}, 1024)
	rt.HandleFanOut("bench", topics.Outbound, func(*message.Message) error { handled <- struct{}{}; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rt.Run(ctx) }()
	<-rt.Running()
	pub := NewPublisher(bus.Publisher(), metrics)
	envs := make([]*schemas.Envelope, 100)
	for i := range envs {
		envs[i] = schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "ev", json.RawMessage(`{"n":1}`))
	}
	done := make(chan struct{})
	go func() {
		for range b.N {
			select {
			case <-handled:
			case <-time.After(10 * time.Second):
				panic("stalled")
			}
		}
		close(done)
	}()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += len(envs) {
		n := min(len(envs), b.N-sent)
		if err := pub.Publish(ctx, topics.Outbound, envs[:n]...); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	_ = rt.Close()
}
