package router

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

func TestMemoryWorkQueuePublishReturnsBeforeTheMessageIsHandled(t *testing.T) {
	bus := newMemoryBus(0, slog.New(slog.DiscardHandler))
	defer bus.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := bus.WorkQueue("g").Subscribe(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() {
		published <- bus.Publisher().Publish("in", message.NewMessage("m0", nil), message.NewMessage("m1", nil))
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish waited for the consumer, which has not even read yet")
	}
	// A nack hands the same message over again, before the next.
	first := <-msgs
	first.Nack()
	again := <-msgs
	if again.UUID != "m0" {
		t.Fatalf("after a nack got %s, want m0 again", again.UUID)
	}
	again.Ack()
	if next := <-msgs; next.UUID != "m1" {
		t.Fatalf("got %s, want m1", next.UUID)
	}
}

func TestMemoryWorkQueueSharesMessagesAmongItsSubscribers(t *testing.T) {
	bus := newMemoryBus(0, slog.New(slog.DiscardHandler))
	defer bus.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 100)
	for range 2 {
		msgs, err := bus.WorkQueue("g").Subscribe(ctx, "in")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range msgs {
				got <- m.UUID
				m.Ack()
			}
		}()
	}
	other, err := bus.WorkQueue("other").Subscribe(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	go func() {
		for i := range n {
			_ = bus.Publisher().Publish("in", message.NewMessage(fmt.Sprint(i), nil))
		}
	}()
	seen := map[string]bool{}
	for range n {
		select {
		case id := <-got:
			if seen[id] {
				t.Fatalf("message %s handled twice in one group", id)
			}
			seen[id] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("group g handled %d of %d", len(seen), n)
		}
	}
	for i := range n { // the other group gets every message too, in order
		m := <-other
		if m.UUID != fmt.Sprint(i) {
			t.Fatalf("group other: got %s, want %d", m.UUID, i)
		}
		m.Ack()
	}
}

func TestMemoryWorkQueueHoldsPublishersBackWhenFull(t *testing.T) {
	ps := newMemoryPubSub()
	defer ps.Close()
	q := newMemoryQueue(ps, 2)
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := q.Subscribe(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	// One message waiting to be handed over, two in the buffer: the fourth
	// publish waits for room.
	done := make(chan int, 10)
	go func() {
		for i := range 5 {
			_ = ps.Publish("in", message.NewMessage(fmt.Sprint(i), nil))
			done <- i
		}
	}()
	deadline := time.After(5 * time.Second)
	for published := 0; published < 3; {
		select {
		case <-done:
			published++
		case <-deadline:
			t.Fatalf("only %d publishes returned", published)
		}
	}
	select {
	case i := <-done:
		t.Fatalf("publish %d returned while the queue was full", i)
	case <-time.After(200 * time.Millisecond):
	}
	m := <-msgs
	m.Ack()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the held publish did not return once there was room")
	}
}
