package router

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

type ctxKey struct{}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
		return nil
	}
}

func TestMemoryPubSubEverySubscriberGetsEveryMessageInPublishOrder(t *testing.T) {
	ps := newMemoryPubSub()
	defer ps.Close()
	const publishers, each = 3, 200
	var subs [2]<-chan *message.Message
	for i := range subs {
		ch, err := ps.Subscribe(context.Background(), "t")
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = ch
	}
	var got [2][]string
	var readers sync.WaitGroup
	for i, ch := range subs {
		readers.Go(func() {
			for range publishers * each {
				m := receive(t, ch)
				got[i] = append(got[i], string(m.Payload))
				m.Ack()
			}
		})
	}
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for n := range each {
				if err := ps.Publish("t", message.NewMessage(fmt.Sprint(p, n), []byte(fmt.Sprintf("%d/%d", p, n)))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	pubs.Wait()
	readers.Wait()
	for i := range subs {
		next := make([]int, publishers)
		for _, s := range got[i] {
			var p, n int
			fmt.Sscanf(s, "%d/%d", &p, &n)
			if n != next[p] {
				t.Fatalf("subscriber %d: publisher %d's message %d came when %d was due", i, p, n, next[p])
			}
			next[p]++
		}
	}
}

func TestMemoryPubSubRedeliversANackedMessageWithItsContext(t *testing.T) {
	ps := newMemoryPubSub()
	defer ps.Close()
	ch, _ := ps.Subscribe(context.Background(), "t")
	msg := message.NewMessage("1", []byte("x"))
	msg.SetContext(context.WithValue(context.Background(), ctxKey{}, "kept"))
	published := make(chan error, 1)
	go func() { published <- ps.Publish("t", msg) }()
	first := receive(t, ch)
	first.Nack()
	second := receive(t, ch)
	if second.UUID != "1" || second == first || second.Context().Value(ctxKey{}) != "kept" {
		t.Fatalf("redelivered %q (same object: %v), context value %v", second.UUID, second == first, second.Context().Value(ctxKey{}))
	}
	select {
	case <-published:
		t.Fatal("Publish returned before the message was acked")
	case <-time.After(50 * time.Millisecond):
	}
	second.Ack()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}

func TestMemoryPubSubEndedSubscriptionReleasesItsPublisher(t *testing.T) {
	ps := newMemoryPubSub()
	defer ps.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, _ := ps.Subscribe(ctx, "t")
	published := make(chan error, 1)
	go func() { published <- ps.Publish("t", message.NewMessage("1", nil)) }()
	receive(t, ch) // taken, never acked
	cancel()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish still waits for a subscription that ended")
	}
	if _, open := <-ch; open {
		t.Fatal("the ended subscription's channel is still open")
	}
	// With no subscriber left, publishing drops the message and returns.
	if err := ps.Publish("t", message.NewMessage("2", nil)); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryPubSubCloseEndsEverything(t *testing.T) {
	ps := newMemoryPubSub()
	ch, _ := ps.Subscribe(context.Background(), "t")
	published := make(chan error, 1)
	go func() { published <- ps.Publish("t", message.NewMessage("1", nil)) }()
	receive(t, ch)
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-published:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish still waits after Close")
	}
	if _, open := <-ch; open {
		t.Fatal("channel open after Close")
	}
	if err := ps.Publish("t", message.NewMessage("2", nil)); err == nil {
		t.Fatal("Publish after Close: want an error")
	}
	if _, err := ps.Subscribe(context.Background(), "t"); err == nil {
		t.Fatal("Subscribe after Close: want an error")
	}
	if err := ps.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}
