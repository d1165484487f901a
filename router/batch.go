package router

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// The router takes the messages of a subscription in batches: a bus
// subscriber that can (every one of this package's) hands the Watermill router
// one message per batch of consecutive messages, which carries them, and the
// router's handler runs the handler function on each of them, in order
// (wrap). Watermill's router starts a goroutine for every message it gets and
// the subscriber waits for each ack before the next, to keep order: per
// message, that cost several times what handling an envelope costs, and
// capped what one instance could consume.
//
// Each message of a batch is still handled on its own: counted, retried,
// poisoned with its reason. A batch is acked once all of its messages were
// handled; after a nack (the poison topic refused a message, or the
// subscription is ending), the subscriber hands over again, as a new batch,
// the messages from the first that was not handled.

// batchSubscriber is a message.Subscriber that can also hand over batches.
type batchSubscriber interface {
	message.Subscriber
	// SubscribeBatches is Subscribe with each batch of consecutive messages
	// (many stream entries read at once, the messages of one Publish call)
	// handed over as one batch message (newBatchMessage), acked or nacked
	// as a whole. The messages of a batch are never acked themselves.
	SubscribeBatches(ctx context.Context, topic string) (<-chan *message.Message, error)
}

// batchesOf returns sub as the router should subscribe to it: its batches
// when it has them.
func batchesOf(sub message.Subscriber) message.Subscriber {
	if b, ok := sub.(batchSubscriber); ok {
		return batchSubscription{b}
	}
	return sub
}

// batchSubscription is a batchSubscriber whose Subscribe hands over batches.
type batchSubscription struct{ batchSubscriber }

func (b batchSubscription) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return b.SubscribeBatches(ctx, topic)
}

// messageBatch is what a batch message carries.
type messageBatch struct {
	msgs []*message.Message
	// done counts the messages handled, written by the handler before it
	// acks or nacks the batch message and read by the subscriber after.
	done int
}

type batchKey struct{}

// newBatchMessage returns the message that carries msgs through the router,
// with ctx (the subscription's) as its context. Its UUID is the first
// message's, for Watermill's logs.
func newBatchMessage(ctx context.Context, b *messageBatch) *message.Message {
	m := message.NewMessage(b.msgs[0].UUID, nil)
	m.SetContext(context.WithValue(ctx, batchKey{}, b))
	return m
}

// batchOf returns the batch a batch message carries.
func batchOf(msg *message.Message) (*messageBatch, bool) {
	b, ok := msg.Context().Value(batchKey{}).(*messageBatch)
	return b, ok
}

// handOff hands msgs over in order to a subscription's consumer and returns
// how many of them it has handled (all of them, unless ctx ended first).
type handOff func(ctx context.Context, msgs []*message.Message, out chan<- *message.Message) int

// handOverEach is the handOff of Subscribe: one message at a time.
func handOverEach(ctx context.Context, msgs []*message.Message, out chan<- *message.Message) int {
	for i, msg := range msgs {
		if !handOver(ctx, msg, out) {
			return i
		}
	}
	return len(msgs)
}

// handOverBatch is the handOff of SubscribeBatches: it gives msgs to the
// consumer as one batch message and waits until it is acked; after a nack it
// hands over, as a new batch, the messages that were not handled.
func handOverBatch(ctx context.Context, msgs []*message.Message, out chan<- *message.Message) int {
	handled := 0
	for handled < len(msgs) {
		b := &messageBatch{msgs: msgs[handled:]}
		m := newBatchMessage(ctx, b)
		select {
		case out <- m:
		case <-ctx.Done():
			return handled
		}
		select {
		case <-m.Acked():
			return len(msgs)
		case <-m.Nacked():
			handled += b.done
		case <-ctx.Done():
			return handled
		}
	}
	return handled
}
