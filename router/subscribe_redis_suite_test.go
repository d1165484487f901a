package router

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/test/harness"
)

// TestStreamReaderPassesTheUniversalPubSubSuite runs Watermill's shared
// Pub/Sub tests on the Redis publisher and fan-out reader, against a real
// redis-server.
func TestStreamReaderPassesTheUniversalPubSubSuite(t *testing.T) {
	r := harness.StartRedis(t)
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:                   false,
		ExactlyOnceDelivery:              false,
		GuaranteedOrder:                  true,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: true,
	}, func(t *testing.T) (message.Publisher, message.Subscriber) {
		opts, err := redis.ParseURL(r.URL) // NewClient writes to its options: one each
		if err != nil {
			t.Fatal(err)
		}
		client := redis.NewClient(opts)
		t.Cleanup(func() { _ = client.Close() })
		reader := newStreamReader(client, slog.New(slog.DiscardHandler))
		reader.fromStart = true
		return &redisPublisher{client: client, timeout: 5 * time.Second}, reader
	}, nil)
}
