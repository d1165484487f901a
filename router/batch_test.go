package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// flakyPoisonBus is a memory bus whose poison topic refuses the first
// refusals publishes, as a broker that is briefly away would.
type flakyPoisonBus struct {
	*memoryBus
	mu       sync.Mutex
	refusals int
}

func (b *flakyPoisonBus) Publisher() message.Publisher { return b }

func (b *flakyPoisonBus) Publish(topic string, msgs ...*message.Message) error {
	if topic == topics.Poison {
		b.mu.Lock()
		refuse := b.refusals > 0
		b.refusals--
		b.mu.Unlock()
		if refuse {
			return errors.New("poison topic unavailable")
		}
	}
	return b.memoryBus.ps.Publish(topic, msgs...)
}

func (b *flakyPoisonBus) Close() error { return b.memoryBus.Close() }

// TestBatchNackedMidwayIsHandedOverFromTheFailedMessage publishes five
// messages as one batch; the third fails and the poison topic refuses it
// once, which nacks the batch: the first two are not handled again, the
// third is retried and poisoned, and the last two follow, in order.
func TestBatchNackedMidwayIsHandedOverFromTheFailedMessage(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus := &flakyPoisonBus{memoryBus: newMemoryBus(0, log), refusals: 1}
	metrics := NewMetrics(prometheus.NewRegistry())
	rt, err := New(Config{Poison: topics.Poison, RetryInterval: time.Millisecond, MaxRetries: 1}, bus, metrics, log)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var handled []string
	rt.HandleFanOut("test", topics.Outbound, func(msg *message.Message) error {
		mu.Lock()
		handled = append(handled, msg.UUID)
		mu.Unlock()
		if msg.UUID == "m3" {
			return Permanent(errors.New("cannot ever work"))
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	poisoned, err := bus.FanOut().Subscribe(ctx, topics.Poison)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); _ = rt.Close(); <-done; _ = bus.Close() })
	<-rt.Running()

	var msgs []*message.Message
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		msgs = append(msgs, message.NewMessage(id, []byte(id)))
	}
	published := make(chan error, 1)
	go func() { published <- bus.Publish(topics.Outbound, msgs...) }()
	if p := waitPoison(t, poisoned); p.UUID != "m3" || p.Metadata.Get("handler_poisoned") != "test" || p.Metadata.Get("topic_poisoned") != topics.Outbound {
		t.Fatalf("poisoned %s with %v, want m3 from handler test on %s", p.UUID, p.Metadata, topics.Outbound)
	}
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the batch was not published")
	}
	// Publish returns once the batch is queued; the handler goes on.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		if n >= 6 || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"m1", "m2", "m3", "m3", "m4", "m5"}; !slices.Equal(handled, want) {
		t.Fatalf("handled %v, want %v", handled, want)
	}
	if got := testutil.ToFloat64(metrics.consumed.WithLabelValues(topics.Outbound)); got != 6 {
		t.Fatalf("consumed counter = %v, want 6 (m3 twice)", got)
	}
	if msgs[0].Metadata.Get("reason_poisoned") != "" || msgs[2].Metadata.Get("reason_poisoned") != "" {
		t.Fatal("the poison queue marked the published messages themselves, not copies")
	}
}

// TestMemoryPubSubHandsEachPublishAsOneBatch checks SubscribeBatches: one
// batch message per Publish call, with the messages themselves in order,
// while a Subscribe subscription of the same topic gets them one by one.
func TestMemoryPubSubHandsEachPublishAsOneBatch(t *testing.T) {
	ps := newMemoryPubSub()
	defer ps.Close()
	batches, err := ps.SubscribeBatches(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	each, err := ps.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*message.Message{message.NewMessage("a", nil), message.NewMessage("b", nil), message.NewMessage("c", nil)}
	published := make(chan error, 1)
	go func() { published <- ps.Publish("t", msgs...) }()
	m := receive(t, batches)
	b, ok := batchOf(m)
	if !ok || !slices.Equal(b.msgs, msgs) {
		t.Fatalf("got %v, want one batch of the published messages", m)
	}
	b.done = len(b.msgs)
	m.Ack()
	for _, want := range msgs {
		got := receive(t, each)
		if got.UUID != want.UUID {
			t.Fatalf("got %s, want %s", got.UUID, want.UUID)
		}
		got.Ack()
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}

// TestMemoryPubSubQueuesForSubscribersOfBatches checks that a publisher does
// not wait for a subscriber of batches, that what queued while its handler
// was busy is handed over as one batch, in order, and that the queue is
// bounded: a publisher waits while it is full.
func TestMemoryPubSubQueuesForSubscribersOfBatches(t *testing.T) {
	ps := newMemoryPubSub()
	defer ps.Close()
	batches, err := ps.SubscribeBatches(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(msgs ...*message.Message) <-chan error {
		done := make(chan error, 1)
		go func() { done <- ps.Publish("t", msgs...) }()
		return done
	}
	returns := func(done <-chan error, within time.Duration) bool {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return true
		case <-time.After(within):
			return false
		}
	}
	if !returns(publish(message.NewMessage("m1", nil)), 5*time.Second) {
		t.Fatal("Publish waited for the subscriber of batches")
	}
	first := receive(t, batches) // the handler is busy with m1 from here on
	for _, id := range []string{"m2", "m3"} {
		if !returns(publish(message.NewMessage(id, nil)), 5*time.Second) {
			t.Fatalf("Publish of %s waited for the busy handler", id)
		}
	}
	// Fill the queue to its bound: the next publisher waits.
	fill := make([]*message.Message, memoryQueueMax-2)
	for i := range fill {
		fill[i] = message.NewMessage(fmt.Sprint("f", i), nil)
	}
	if !returns(publish(fill...), 5*time.Second) {
		t.Fatal("Publish waited before the queue was full")
	}
	over := publish(message.NewMessage("over", nil))
	if returns(over, 200*time.Millisecond) {
		t.Fatal("Publish did not wait for room in a full queue")
	}

	var got []string
	ack := func(m *message.Message) {
		b, ok := batchOf(m)
		if !ok {
			t.Fatalf("got %v, want a batch", m)
		}
		for _, msg := range b.msgs {
			got = append(got, msg.UUID)
		}
		b.done = len(b.msgs)
		m.Ack()
	}
	ack(first)
	second := receive(t, batches)
	if b, _ := batchOf(second); len(b.msgs) != memoryBatchMax || b.msgs[0].UUID != "m2" || b.msgs[1].UUID != "m3" {
		t.Fatalf("the backlog came as a batch of %d starting %v, want %d starting m2, m3", len(b.msgs), b.msgs[:min(2, len(b.msgs))], memoryBatchMax)
	}
	ack(second)
	if !returns(over, 5*time.Second) {
		t.Fatal("the waiting publisher was not let in once there was room")
	}
	for len(got) < memoryQueueMax+2 {
		ack(receive(t, batches))
	}
	want := append([]string{"m1", "m2", "m3"}, make([]string, 0, len(fill)+1)...)
	for _, m := range fill {
		want = append(want, m.UUID)
	}
	want = append(want, "over")
	if !slices.Equal(got, want) {
		t.Fatalf("handed over %d messages, want %d in publish order", len(got), len(want))
	}
}

// TestMemoryPubSubDrainWaitsForTheHandlers checks Drain: it returns once what
// was published to a subscriber of batches has been acked, and says so when
// its context ends first.
func TestMemoryPubSubDrainWaitsForTheHandlers(t *testing.T) {
	ps := newMemoryPubSub()
	defer ps.Close()
	batches, err := ps.SubscribeBatches(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		if err := ps.Publish("t", message.NewMessage(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing takes the batches yet: Drain gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ps.Drain(ctx); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with nothing handled: %v, want the context's deadline", err)
	}

	var handled atomic.Int32
	go func() {
		for m := range batches {
			time.Sleep(20 * time.Millisecond) // a slow handler
			b, _ := batchOf(m)
			handled.Add(int32(len(b.msgs)))
			b.done = len(b.msgs)
			m.Ack()
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ps.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := handled.Load(); n != 3 {
		t.Fatalf("Drain returned with %d of 3 messages handled", n)
	}
}
