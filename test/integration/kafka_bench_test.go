package integration

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/test/harness"
)

// The Kafka benchmarks run against KAFKA_BROKERS when set, else kfake. Run:
//
//	KAFKA_BROKERS=127.0.0.1:9092 go test -run x -bench 'Kafka(Bus|Adapter)' -benchtime 20000x ./test/integration
//
// Each topic has 3 partitions.
const benchPartitions = 3

// BenchmarkKafkaBusFanOut measures one message through Kafka: published in
// batches of 100 (one produce round each, acks=all) and read back by a
// fan-out subscriber that acks at once.
func BenchmarkKafkaBusFanOut(b *testing.B) {
	k := harness.StartKafka(b)
	bus := kafkaBenchBus(b, k)
	benchKafkaFanOut(b, bus.Publisher(), bus.FanOut(), benchTopic(b, k))
}

// BenchmarkKafkaAdapterFanOut is the baseline: the same through
// watermill-kafka's own publisher (one message per round trip) and
// subscriber, with sarama speaking protocol 3.9 (its default, 1.0, is
// refused by Kafka 4) and reading the fresh topic from its start.
func BenchmarkKafkaAdapterFanOut(b *testing.B) {
	k := harness.StartKafka(b)
	pub, sub := kafkaAdapter(b, k)
	benchKafkaFanOut(b, pub, sub, benchTopic(b, k))
}

// BenchmarkKafkaBusBatchPublish measures publishing alone, in batches of
// 100 as /api/batch does: one Publish call each, returning once the broker
// acknowledged all of them.
func BenchmarkKafkaBusBatchPublish(b *testing.B) {
	k := harness.StartKafka(b)
	benchBatchPublish(b, kafkaBenchBus(b, k).Publisher(), benchTopic(b, k))
}

// BenchmarkKafkaAdapterBatchPublish is its baseline with the adapter's
// publisher, which sends the messages of a call one after the other.
func BenchmarkKafkaAdapterBatchPublish(b *testing.B) {
	k := harness.StartKafka(b)
	pub, _ := kafkaAdapter(b, k)
	benchBatchPublish(b, pub, benchTopic(b, k))
}

func benchBatchPublish(b *testing.B, pub message.Publisher, topic string) {
	payload := []byte(`{"v":1,"id":"x","kind":"deliver","to":{"users":["u1"]},"event":"e","data":{"n":1},"ts":"2026-11-27T10:00:00Z"}`)
	batch := make([]*message.Message, 100)
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += len(batch) {
		n := min(len(batch), b.N-sent)
		for i := range n {
			batch[i] = message.NewMessage(fmt.Sprint(sent+i), payload)
		}
		if err := pub.Publish(topic, batch[:n]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkKafkaBusConcurrentPublish measures single-message publishes (one
// REST /api/message each) from 64 goroutines: the bus's producer carries
// what they queued in shared produce requests.
func BenchmarkKafkaBusConcurrentPublish(b *testing.B) {
	k := harness.StartKafka(b)
	benchConcurrentPublish(b, kafkaBenchBus(b, k).Publisher(), benchTopic(b, k))
}

// BenchmarkKafkaAdapterConcurrentPublish is its baseline with the adapter's
// publisher.
func BenchmarkKafkaAdapterConcurrentPublish(b *testing.B) {
	k := harness.StartKafka(b)
	pub, _ := kafkaAdapter(b, k)
	benchConcurrentPublish(b, pub, benchTopic(b, k))
}

func benchKafkaFanOut(b *testing.B, pub message.Publisher, sub message.Subscriber, topic string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"v":1,"id":"x","kind":"deliver","to":{"users":["u1"]},"event":"e","data":{"n":1},"ts":"2026-11-27T10:00:00Z"}`)
	done := make(chan struct{})
	b.ResetTimer()
	go func() {
		defer close(done)
		for range b.N {
			select {
			case m := <-ch:
				m.Ack()
			case <-time.After(30 * time.Second):
				b.Error("stalled")
				return
			}
		}
	}()
	batch := make([]*message.Message, 100)
	for sent := 0; sent < b.N; sent += len(batch) {
		n := min(len(batch), b.N-sent)
		for i := range n {
			batch[i] = message.NewMessage(fmt.Sprint(sent+i), payload)
		}
		if err := pub.Publish(topic, batch[:n]...); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func benchConcurrentPublish(b *testing.B, pub message.Publisher, topic string) {
	payload := []byte(`{"v":1,"id":"x","kind":"deliver","to":{"users":["u1"]},"event":"e","data":{"n":1},"ts":"2026-11-27T10:00:00Z"}`)
	var next sync.Mutex
	sent := 0
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				next.Lock()
				if sent == b.N {
					next.Unlock()
					return
				}
				sent++
				n := sent
				next.Unlock()
				if err := pub.Publish(topic, message.NewMessage(fmt.Sprint(n), payload)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func kafkaBenchBus(b *testing.B, k *harness.Kafka) router.Bus {
	b.Helper()
	bus, err := router.NewBus(router.BusConfig{Kind: router.KindKafka, Kafka: router.KafkaConfig{
		Brokers: strings.Split(k.Brokers, ","), Partitions: benchPartitions}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	return bus
}

func kafkaAdapter(b *testing.B, k *harness.Kafka) (message.Publisher, message.Subscriber) {
	b.Helper()
	pubConfig := kafka.DefaultSaramaSyncPublisherConfig()
	pubConfig.Version = sarama.V3_9_0_0
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: strings.Split(k.Brokers, ","), Marshaler: kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: pubConfig}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	subConfig := kafka.DefaultSaramaSubscriberConfig()
	subConfig.Version = sarama.V3_9_0_0
	subConfig.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: strings.Split(k.Brokers, ","), Unmarshaler: kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: subConfig}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pub.Close(); _ = sub.Close() })
	return pub, sub
}

// benchTopic creates a fresh topic with benchPartitions partitions.
func benchTopic(b *testing.B, k *harness.Kafka) string {
	b.Helper()
	client, err := k.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	topic := "bench-" + watermill.NewShortUUID()
	adm := kadm.NewClient(client)
	if _, err := adm.CreateTopic(context.Background(), benchPartitions, -1, nil, topic); err != nil {
		b.Fatal(err)
	}
	// A new topic is served once each partition's leader answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		offsets, err := adm.ListEndOffsets(context.Background(), topic)
		if err == nil {
			err = offsets.Error()
		}
		if err == nil && len(offsets[topic]) == benchPartitions {
			return topic
		}
		if time.Now().After(deadline) {
			b.Fatalf("topic %s not served: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
