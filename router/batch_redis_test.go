package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/web3-socket/web3-socket/test/harness"
)

// TestRouterHandlesRedisBatchesInOrderWithPoison runs a router over the
// Redis bus, fan-out and work queue: more entries than one read takes, one
// of them failing, are handled in order and each once, the failing one goes
// to the poison topic and the others go on, and a work queue acknowledges
// everything.
func TestRouterHandlesRedisBatchesInOrderWithPoison(t *testing.T) {
	for _, queue := range []bool{false, true} {
		t.Run(map[bool]string{false: "fan-out", true: "work queue"}[queue], func(t *testing.T) {
			r := harness.StartRedis(t)
			log := slog.New(slog.DiscardHandler)
			bus, err := newRedisBus(RedisConfig{URL: r.URL, Instance: "i1"}, nil, log)
			if err != nil {
				t.Fatal(err)
			}
			rt, err := New(Config{Poison: topics.Poison, RetryInterval: time.Millisecond}, bus, NewMetrics(prometheus.NewRegistry()), log)
			if err != nil {
				t.Fatal(err)
			}
			const n, bad = 600, 300 // more than the 256 entries of one read
			handled := make(chan string, 2*n)
			fn := func(msg *message.Message) error {
				if msg.UUID == fmt.Sprint("m", bad) {
					return Permanent(errors.New("cannot ever work"))
				}
				handled <- msg.UUID
				return nil
			}
			if queue {
				rt.HandleWorkQueue("test", topics.Outbound, "g", fn)
			} else {
				rt.HandleFanOut("test", topics.Outbound, fn)
			}
			ctx, cancel := context.WithCancel(context.Background())
			poisoned, err := bus.FanOut().Subscribe(ctx, topics.Poison)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); _ = rt.Run(ctx) }()
			t.Cleanup(func() { cancel(); _ = rt.Close(); <-done; _ = bus.Close() })
			<-rt.Running()

			msgs := make([]*message.Message, n)
			for i := range msgs {
				msgs[i] = message.NewMessage(fmt.Sprint("m", i), []byte(fmt.Sprint(i)))
			}
			for lo := 0; lo < n; lo += 100 {
				if err := bus.Publisher().Publish(topics.Outbound, msgs[lo:lo+100]...); err != nil {
					t.Fatal(err)
				}
			}
			for i := range n {
				if i == bad {
					continue
				}
				select {
				case id := <-handled:
					if id != msgs[i].UUID {
						t.Fatalf("handled %s, want %s", id, msgs[i].UUID)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("only %d of %d messages handled", i, n)
				}
			}
			select {
			case p := <-poisoned:
				p.Ack()
				if p.UUID != msgs[bad].UUID || p.Metadata.Get(middleware.ReasonForPoisonedKey) != "cannot ever work" {
					t.Fatalf("poisoned %s (%q), want %s", p.UUID, p.Metadata.Get(middleware.ReasonForPoisonedKey), msgs[bad].UUID)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("nothing reached the poison topic")
			}
			select {
			case id := <-handled:
				t.Fatalf("%s handled again", id)
			case <-time.After(300 * time.Millisecond):
			}
			if !queue {
				return
			}
			client := redisClient(t, r.URL)
			deadline := time.Now().Add(5 * time.Second)
			for {
				pending, err := client.XPending(context.Background(), topics.Outbound, "g").Result()
				if err == nil && pending.Count == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("entries still pending after they were handled: %v %v", pending, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
