package router

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// kafkaPublisher writes records in the watermill-kafka format (see
// kafkaMarshaler) and sends all the messages of one Publish call together:
// sarama's producer batches them into produce requests, one per broker, and
// Publish returns once the brokers acknowledged every one of them (acks=all).
// The adapter's publisher sends one message per round trip. Concurrent
// Publish calls share the producer, whose requests carry what they queued.
//
// A failed call may still have put some of its messages on the bus: Kafka
// acknowledges partitions independently and this publisher is not
// transactional. The client's short network timeouts and few retries (see
// saramaConfig) bound a call when the brokers are away: sarama's producer
// takes no context.
type kafkaPublisher struct {
	producer sarama.SyncProducer
	ensure   func(topic string) error
	closed   atomic.Bool
}

func (p *kafkaPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return errors.New("kafka publisher: closed")
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := p.ensure(topic); err != nil {
		return fmt.Errorf("kafka publish: %w", err)
	}
	records := make([]*sarama.ProducerMessage, len(msgs))
	for i, msg := range msgs {
		r, err := kafkaMarshaler{}.Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("message %s: %w", msg.UUID, err)
		}
		records[i] = r
	}
	var err error
	if len(records) == 1 {
		_, _, err = p.producer.SendMessage(records[0])
	} else {
		err = p.producer.SendMessages(records)
	}
	if err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			return fmt.Errorf("produce %d records to %s: %d failed, first: %w", len(records), topic, len(perrs), perrs[0].Err)
		}
		return fmt.Errorf("produce %d records to %s: %w", len(records), topic, err)
	}
	return nil
}

// Close flushes what is being sent and stops the producer.
func (p *kafkaPublisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	return p.producer.Close()
}
