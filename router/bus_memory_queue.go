package router

import (
	"context"
	"errors"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// memoryQueueSize is how many messages a memory work queue holds per topic
// before its publishers wait for room.
const memoryQueueSize = 10_000

// memoryQueue is a work queue (one consumer group) of the memory bus. It
// takes each message of a topic into a bounded buffer and acks it to the
// publisher at once, so a publish returns as soon as the message is queued
// rather than once it is handled; only a full buffer makes publishers wait
// (backpressure). The queue's subscribers share the buffer: each message goes
// to one of them, and a nacked message is handed over again before the next,
// so a single subscriber sees the messages in publish order.
//
// What the buffer holds is lost when the process ends, like everything the
// memory bus holds.
type memoryQueue struct {
	ps   *memoryPubSub
	size int

	mu      sync.Mutex
	topics  map[string]chan *message.Message
	closed  bool
	closing chan struct{}
	workers sync.WaitGroup
}

func newMemoryQueue(ps *memoryPubSub, size int) *memoryQueue {
	return &memoryQueue{ps: ps, size: size, topics: map[string]chan *message.Message{}, closing: make(chan struct{})}
}

var errQueueClosed = errors.New("memory queue: closed")

// Subscribe adds a consumer of topic's queue, until ctx is done or the
// queue is closed. The first subscriber of a topic starts queueing it.
func (q *memoryQueue) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	buf, err := q.buffer(topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	q.workers.Add(1)
	go func() {
		defer q.workers.Done()
		defer close(out)
		ctx, cancel := untilClosed(ctx, q.closing)
		defer cancel()
		for {
			select {
			case msg := <-buf:
				if !handOver(ctx, msg, out) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// buffer returns topic's buffer, subscribing the queue to topic the first
// time.
func (q *memoryQueue) buffer(topic string) (chan *message.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, errQueueClosed
	}
	if buf, ok := q.topics[topic]; ok {
		return buf, nil
	}
	ctx, cancel := untilClosed(context.Background(), q.closing)
	in, err := q.ps.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	buf := make(chan *message.Message, q.size)
	q.topics[topic] = buf
	q.workers.Add(1)
	go func() {
		defer q.workers.Done()
		defer cancel()
		for msg := range in {
			select {
			case buf <- msg:
				msg.Ack()
			case <-q.closing:
				return
			}
		}
	}()
	return buf, nil
}

// Close stops the queue's subscribers and stops queueing.
func (q *memoryQueue) Close() error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.closing)
	}
	q.mu.Unlock()
	q.workers.Wait()
	return nil
}
