package router

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/test/harness"
)

// TestStreamReaderPassesTheUniversalPubSubSuite runs Watermill's shared
// Pub/Sub tests on the Redis publisher and fan-out reader, against a real
// redis-server.
func TestStreamReaderPassesTheUniversalPubSubSuite(t *testing.T) {
	r := harness.StartRedis(t)
	fanOutSuite(t, func(t *testing.T) (message.Publisher, message.Subscriber) {
		client := redisClient(t, r.URL)
		reader := newStreamReader(client, nil, slog.New(slog.DiscardHandler))
		reader.fromStart = true
		return &redisPublisher{client: client, timeout: 5 * time.Second}, reader
	})
}

// TestGroupReaderPassesTheUniversalPubSubSuite does the same for the work
// queue: consumer groups, batched reads and acknowledgements.
func TestGroupReaderPassesTheUniversalPubSubSuite(t *testing.T) {
	r := harness.StartRedis(t)
	constructor := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		client := redisClient(t, r.URL)
		reader := newGroupReader(client, group, watermill.NewShortUUID(), 10*time.Second, slog.New(slog.DiscardHandler))
		reader.fromStart = true
		return &redisPublisher{client: client, timeout: 5 * time.Second}, reader
	}
	workQueueSuite(t, constructor)
}

// TestGroupReaderClaimsWhatADeadConsumerLeftPending: a consumer takes entries
// and dies without acknowledging them; another consumer of the group gets
// them once they have been idle for the claim time.
func TestGroupReaderClaimsWhatADeadConsumerLeftPending(t *testing.T) {
	client := redisClient(t, harness.StartRedis(t).URL)
	log := slog.New(slog.DiscardHandler)
	pub := &redisPublisher{client: client, timeout: 5 * time.Second}
	msgs := make([]*message.Message, 5)
	for i := range msgs {
		msgs[i] = message.NewMessage(fmt.Sprint("m", i), []byte(fmt.Sprint(i)))
	}
	dead := newGroupReader(client, "g", "dead", time.Second, log)
	dead.fromStart = true
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := dead.Subscribe(ctx, "claims")
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("claims", msgs...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch: // taken, never acknowledged
	case <-time.After(5 * time.Second):
		t.Fatal("the first consumer got nothing")
	}
	cancel()
	_ = dead.Close()

	alive := newGroupReader(client, "g", "alive", time.Second, log)
	defer alive.Close()
	ch, err = alive.Subscribe(context.Background(), "claims")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range msgs {
		select {
		case m := <-ch:
			if string(m.Payload) != fmt.Sprint(i) {
				t.Fatalf("claimed message %d is %q", i, m.Payload)
			}
			m.Ack()
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d pending entries were claimed", i, len(msgs))
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("claiming took %v with a 1s claim time", took)
	}
	pending, err := client.XPending(context.Background(), "claims", "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for pending.Count != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		pending, _ = client.XPending(context.Background(), "claims", "g").Result()
	}
	if pending.Count != 0 {
		t.Errorf("%d entries still pending after they were handled and acknowledged", pending.Count)
	}
}

// TestStreamReaderReportsTrimmingThatOvertookIt: while a reader is held on an
// entry, MAXLEN trimming removes entries it has not read; once it moves on it
// counts and logs that.
func TestStreamReaderReportsTrimmingThatOvertookIt(t *testing.T) {
	client := redisClient(t, harness.StartRedis(t).URL)
	metrics := NewMetrics(prometheus.NewRegistry())
	reader := newStreamReader(client, metrics, slog.New(slog.DiscardHandler))
	// Reads of 2 entries are full: the reader is behind, so it checks
	// before each read, wherever the trimming lands between its reads (it
	// reads ahead of the held message).
	reader.count = 2
	defer reader.Close()
	ch, err := reader.Subscribe(context.Background(), "trim")
	if err != nil {
		t.Fatal(err)
	}
	pub := &redisPublisher{client: client, maxLen: 10, timeout: 5 * time.Second}
	if err := pub.Publish("trim", message.NewMessage("first", []byte("0"))); err != nil {
		t.Fatal(err)
	}
	var held *message.Message
	select {
	case held = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing read")
	}
	for i := range 20 {
		batch := make([]*message.Message, 100)
		for j := range batch {
			batch[j] = message.NewMessage(fmt.Sprint(i, "-", j), []byte("x"))
		}
		if err := pub.Publish("trim", batch...); err != nil {
			t.Fatal(err)
		}
	}
	held.Ack()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(metrics.trimmedUnread.WithLabelValues("trim")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("trimming past the reader was not reported")
		}
		select {
		case m := <-ch:
			m.Ack()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestStreamReaderReportsItsLag: a reader held by its consumer reports how far
// (in entry id time) the newest entry is ahead of what it read, and nothing
// once it has read everything.
func TestStreamReaderReportsItsLag(t *testing.T) {
	client := redisClient(t, harness.StartRedis(t).URL)
	ctx := context.Background()
	// Entries 1s, 3s and 6s after the epoch: the lag is in seconds of ids.
	for _, id := range []string{"1000-0", "3000-0", "6000-0"} {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: "lag", ID: id, Values: []string{"payload", id}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	metrics := NewMetrics(prometheus.NewRegistry())
	reader := newStreamReader(client, metrics, slog.New(slog.DiscardHandler))
	reader.fromStart, reader.count = true, 1
	defer reader.Close()
	ch, err := reader.Subscribe(ctx, "lag")
	if err != nil {
		t.Fatal(err)
	}
	lag := func() float64 { return testutil.ToFloat64(metrics.lagSeconds.WithLabelValues("lag")) }
	waitLag := func(want float64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); lag() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("lag %v s, want %v s", lag(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var held *message.Message
	select {
	case held = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing read")
	}
	// The reader has read up to 3000-0 ahead of its consumer, which holds
	// 1000-0: before that read it was 3 s behind 6000-0.
	waitLag(3)
	held.Ack()
	for range 2 {
		select {
		case m := <-ch:
			m.Ack()
		case <-time.After(5 * time.Second):
			t.Fatal("the rest was not handed over")
		}
	}
	waitLag(0)
}

// redisClient returns a client of its own for url (NewClient writes to its
// options, so parallel tests must not share them), closed with the test.
func redisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return client
}
