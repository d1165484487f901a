package router

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// Every shared bus passes Watermill's universal Pub/Sub suite with the same
// features: these run it for one bus's fan-out and work queue.

// fanOutSuite runs the suite on a fan-out subscriber: every subscriber sees
// every message, in order; old messages are read by a new subscriber (the
// constructor reads from the start of the topic).
func fanOutSuite(t *testing.T, newPubSub func(t *testing.T) (message.Publisher, message.Subscriber)) {
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:                   false,
		ExactlyOnceDelivery:              false,
		GuaranteedOrder:                  true,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: true,
	}, newPubSub, nil)
}

// workQueueSuite runs the suite on a work queue: subscribers of one group
// share its messages, each group gets them all.
func workQueueSuite(t *testing.T, newPubSub func(t *testing.T, group string) (message.Publisher, message.Subscriber)) {
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		NewSubscriberReceivesOldMessages:    true,
	}, func(t *testing.T) (message.Publisher, message.Subscriber) {
		return newPubSub(t, watermill.NewShortUUID())
	}, newPubSub)
}
