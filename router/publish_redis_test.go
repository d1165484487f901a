package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/test/harness"
)

// TestRedisPublisherGroupsConcurrentPublishes: single-message publishes from
// many goroutines at once all land, each once, in fewer round trips than
// messages.
func TestRedisPublisherGroupsConcurrentPublishes(t *testing.T) {
	client := redisClient(t, harness.StartRedis(t).URL)
	pub := &redisPublisher{client: client, timeout: 5 * time.Second}
	const writers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := pub.Publish("grouped", message.NewMessage(fmt.Sprintf("w%d-%d", w, i), []byte("x"))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, err := client.XRange(context.Background(), "grouped", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		msg, err := redisstream.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			t.Fatal(err)
		}
		seen[msg.UUID]++
	}
	for w := range writers {
		for i := range each {
			if id := fmt.Sprintf("w%d-%d", w, i); seen[id] != 1 {
				t.Errorf("message %s is in the stream %d times, want once", id, seen[id])
			}
		}
	}
	if len(entries) != writers*each {
		t.Errorf("%d entries in the stream, want %d", len(entries), writers*each)
	}
	if rounds := pub.group.rounds.Load(); rounds >= writers*each {
		t.Errorf("%d round trips for %d concurrent publishes: none was grouped", rounds, writers*each)
	}
	if n := len(pub.recent.recent()); n != writers*each {
		t.Errorf("the replay buffer holds %d entries, want %d", n, writers*each)
	}
}

// TestRedisPublisherGroupGivesEachEntryItsOwnFate: in one grouped pipeline,
// an entry Redis refuses fails alone, and the others are added.
func TestRedisPublisherGroupGivesEachEntryItsOwnFate(t *testing.T) {
	client := redisClient(t, harness.StartRedis(t).URL)
	ctx := context.Background()
	if err := client.Set(ctx, "not-a-stream", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pub := &redisPublisher{client: client, timeout: 5 * time.Second}
	batch := []*xaddRequest{
		{topic: "fates", fields: entryFields{payload: []byte("1")}},
		{topic: "not-a-stream", fields: entryFields{payload: []byte("2")}},
		{topic: "fates", fields: entryFields{payload: []byte("3")}},
	}
	pub.group.write(pub, batch)
	if batch[0].err != nil || batch[2].err != nil {
		t.Errorf("entries to a stream failed: %v, %v", batch[0].err, batch[2].err)
	}
	if batch[1].err == nil || !strings.Contains(batch[1].err.Error(), "WRONGTYPE") {
		t.Errorf("entry to a string key: error %v, want WRONGTYPE", batch[1].err)
	}
	if n, err := client.XLen(ctx, "fates").Result(); err != nil || n != 2 {
		t.Errorf("fates holds %d entries (%v), want 2", n, err)
	}
}

// TestRedisPublisherGroupFailsEveryEntryWhenRedisIsAway: a grouped pipeline
// that cannot reach Redis fails each of its entries, within the deadline.
func TestRedisPublisherGroupFailsEveryEntryWhenRedisIsAway(t *testing.T) {
	r := harness.StartRedis(t)
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries, opts.DialTimeout = 0, time.Second
	client := redis.NewClient(opts)
	defer client.Close()
	r.Stop()
	pub := &redisPublisher{client: client, timeout: 2 * time.Second}
	batch := []*xaddRequest{
		{topic: "away", fields: entryFields{payload: []byte("1")}},
		{topic: "away", fields: entryFields{payload: []byte("2")}},
	}
	start := time.Now()
	pub.group.write(pub, batch)
	for i, b := range batch {
		if b.err == nil {
			t.Errorf("entry %d: no error with Redis away", i)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the failed pipeline took %v", took)
	}
	if n := len(pub.recent.recent()); n != 0 {
		t.Errorf("the replay buffer holds %d entries that were not added", n)
	}
}

// BenchmarkRedisPublishConcurrent publishes single messages from 32
// goroutines to a real redis-server, grouped (the publisher) and each in a
// round trip of its own (one XADD per message, as before grouping): compare
// the two in one run.
func BenchmarkRedisPublishConcurrent(b *testing.B) {
	client := redisClient(b, harness.StartRedis(b).URL)
	msg := message.NewMessage("m", []byte(`{"id":"m","kind":"deliver"}`))
	values, err := redisstream.DefaultMarshallerUnmarshaller{}.Marshal("bench", msg)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, publish func() error) {
		b.SetParallelism(16) // 32 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := publish(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("alone", func(b *testing.B) {
		run(b, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return client.XAdd(ctx, &redis.XAddArgs{Stream: "bench", Values: values, MaxLen: 100000, Approx: true}).Err()
		})
	})
	b.Run("grouped", func(b *testing.B) {
		pub := &redisPublisher{client: client, maxLen: 100000, timeout: 5 * time.Second}
		run(b, func() error { return pub.Publish("bench", msg) })
		b.ReportMetric(float64(b.N)/float64(pub.group.rounds.Load()), "msgs/round")
	})
}
