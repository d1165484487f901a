package router

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// memoryBus is the embedded bus for a single instance: Watermill's GoChannel.
type memoryBus struct {
	ch *gochannel.GoChannel
}

func newMemoryBus(log *slog.Logger) *memoryBus {
	return &memoryBus{ch: gochannel.NewGoChannel(gochannel.Config{
		// Blocking until every subscriber acks is what keeps order: without it
		// GoChannel hands each message to its own goroutine and two messages
		// to the same user may overtake each other. Our handlers ack as soon as
		// the message is queued for delivery, so the wait is short.
		BlockPublishUntilSubscriberAck: true,
		OutputChannelBuffer:            1024,
		// In one process the message can carry the envelope it was built
		// from (see EnvelopeOf), which spares every handler a decode.
		PreserveContext: true,
	}, watermillLogger(log))}
}

func (b *memoryBus) Kind() string                        { return KindMemory }
func (b *memoryBus) Publisher() message.Publisher        { return b.ch }
func (b *memoryBus) FanOut() message.Subscriber          { return b.ch }
func (b *memoryBus) WorkQueue(string) message.Subscriber { return b.ch }
func (b *memoryBus) Ping(context.Context) error          { return nil }
func (b *memoryBus) Close() error                        { return b.ch.Close() }
