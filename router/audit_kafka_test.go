package router

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// TestAuditMirrorDoesNotHoldDeliveryAndCatchesUpWhenKafkaComes: the mirror
// of a memory bus starts while Kafka is down; messages published meanwhile
// reach their subscriber at once; once Kafka listens, every one of them is in
// the Kafka topic of the same name, with the routing headers.
func TestAuditMirrorDoesNotHoldDeliveryAndCatchesUpWhenKafkaComes(t *testing.T) {
	port := harness.FreePort(t)
	bus := newMemoryBus(0, nil)
	defer bus.Close()
	reg := prometheus.NewRegistry()
	mirror, err := NewAuditMirror(AuditConfig{Kafka: KafkaConfig{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Partitions: 2},
		Topics: []string{"audit.outbound"}}, bus.FanOut(), reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mirror.Run(ctx) }()
	defer func() { cancel(); <-done }()

	delivered, err := bus.FanOut().Subscribe(ctx, "audit.outbound")
	if err != nil {
		t.Fatal(err)
	}
	// The mirror subscribes on its own goroutine: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for bus.ps.subscribers("audit.outbound") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	const n = 50
	ids := map[string]bool{}
	for i := range n {
		env := schemas.NewDeliver(schemas.Target{Users: []string{fmt.Sprint("u", i%3)}}, "note", []byte(fmt.Sprint(i)))
		env.Instance = "i-1"
		msg, err := NewMessage(env)
		if err != nil {
			t.Fatal(err)
		}
		ids[env.ID] = true
		go func() { _ = bus.Publisher().Publish("audit.outbound", msg) }()
		select {
		case m := <-delivered:
			m.Ack()
		case <-time.After(2 * time.Second):
			t.Fatalf("message %d was not delivered while Kafka is down", i)
		}
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("audit.outbound"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	for len(ids) > 0 && rctx.Err() == nil {
		client.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["event"] != "note" || h["user"] == "" || h["instance"] != "i-1" || h["ts"] == "" || string(r.Key) != h["user"] {
				t.Errorf("record %s: key %q headers %v", r.Value, r.Key, h)
			}
			if _, leaked := h[auditTopicKey]; leaked {
				t.Errorf("internal header sent: %v", h)
			}
			delete(ids, h["_watermill_message_uuid"])
		})
	}
	if len(ids) > 0 {
		t.Fatalf("%d of %d envelopes never reached Kafka", len(ids), n)
	}
	// The mirror counts a batch once Kafka acknowledged it, which may come
	// after the test's consumer read it.
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(mirror.mirrored) < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(mirror.mirrored); got != n {
		t.Errorf("audit_mirrored_total = %v, want %d", got, n)
	}
}

// TestAuditMirrorDropsAndCountsWhenItsBufferIsFull: with Kafka away and a
// memory bus, a full buffer drops (and counts) instead of holding delivery.
func TestAuditMirrorDropsAndCountsWhenItsBufferIsFull(t *testing.T) {
	bus := newMemoryBus(0, nil)
	defer bus.Close()
	mirror, err := NewAuditMirror(AuditConfig{Kafka: KafkaConfig{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))}},
		Topics: []string{"t"}, Buffer: 5, Batch: 1, FlushTimeout: 100 * time.Millisecond}, bus.FanOut(), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mirror.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for bus.ps.subscribers("t") < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	for i := range 100 {
		if err := bus.Publisher().Publish("t", message.NewMessage(fmt.Sprint(i), []byte("{}"))); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("100 publishes took %v with the mirror's Kafka away", took)
	}
	// 5 buffered, and the one the sender may have taken into its batch of
	// one (it holds it while it cannot reach Kafka).
	if got := testutil.ToFloat64(mirror.dropped); got < 94 || got > 95 {
		t.Errorf("audit_dropped_total = %v, want 94 or 95", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its flush timeout")
	}
}

// subscribers counts the subscriptions of topic.
func (p *memoryPubSub) subscribers(topic string) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.subs[topic])
}
