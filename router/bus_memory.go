package router

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// memoryBus is the embedded bus for a single instance: an in-process
// Watermill Pub/Sub. It does what Watermill's GoChannel does with
// BlockPublishUntilSubscriberAck and PreserveContext, which is what this
// service needs from it (every subscriber of a topic gets every message, in
// publish order, and Publish returns once each has acked), at a fraction of
// the cost: GoChannel starts two goroutines and makes two copies for every
// message, which made it the largest allocator of a busy instance.
//
// Its work queues are buffered instead (see memoryQueue): a publisher of
// client events must not wait for a consumer that is waiting for a backend.
type memoryBus struct {
	ps *memoryPubSub

	mu     sync.Mutex
	queues map[string]*memoryQueue
}

func newMemoryBus(*slog.Logger) *memoryBus {
	return &memoryBus{ps: newMemoryPubSub(), queues: map[string]*memoryQueue{}}
}

func (b *memoryBus) Kind() string                 { return KindMemory }
func (b *memoryBus) Publisher() message.Publisher { return b.ps }
func (b *memoryBus) FanOut() message.Subscriber   { return b.ps }

// WorkQueue returns the queue of group; its subscribers share its messages.
func (b *memoryBus) WorkQueue(group string) message.Subscriber {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[group]
	if !ok {
		q = newMemoryQueue(b.ps, memoryQueueSize)
		b.queues[group] = q
	}
	return q
}

func (b *memoryBus) Ping(context.Context) error {
	if b.ps.isClosed() {
		return errBusClosed
	}
	return nil
}
func (b *memoryBus) Close() error {
	b.mu.Lock()
	queues := b.queues
	b.queues = map[string]*memoryQueue{}
	b.mu.Unlock()
	for _, q := range queues {
		_ = q.Close()
	}
	return b.ps.Close()
}

var errBusClosed = errors.New("memory bus: closed")

// memoryPubSub is an in-process message.Publisher and message.Subscriber.
// Messages published with no subscriber are dropped, as on a broker topic
// nobody reads.
type memoryPubSub struct {
	mu     sync.RWMutex
	subs   map[string][]*memorySubscription
	closed bool

	// topicLocks holds one mutex per topic: publishers of a topic take
	// turns, so messages reach subscribers in publish order.
	topicLocks sync.Map
	closing    chan struct{}
	watchers   sync.WaitGroup
}

func newMemoryPubSub() *memoryPubSub {
	return &memoryPubSub{subs: map[string][]*memorySubscription{}, closing: make(chan struct{})}
}

type memorySubscription struct {
	out  chan *message.Message
	done chan struct{} // closed when the subscription ends
	// sending is held while a message is handed over, so that out is closed
	// only between two sends.
	sending sync.Mutex
}

func (p *memoryPubSub) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// Publish hands each message to every subscriber of topic, in order, and
// returns once each has acked it (a nack hands it over again), or when the
// subscription or the bus ends. A handler must not publish to the topic it
// consumes: the publisher waiting for its ack holds the topic.
func (p *memoryPubSub) Publish(topic string, msgs ...*message.Message) error {
	lock, _ := p.topicLocks.LoadOrStore(topic, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()

	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return errBusClosed
	}
	subs := p.subs[topic]
	p.mu.RUnlock()
	for _, msg := range msgs {
		for _, s := range subs {
			s.deliver(msg, p.closing)
		}
	}
	return nil
}

// deliver hands a copy of msg (each subscriber acks its own) with msg's
// context to the subscription and waits for its ack.
func (s *memorySubscription) deliver(msg *message.Message, closing <-chan struct{}) {
	for {
		m := msg.Copy()
		m.SetContext(msg.Context())
		s.sending.Lock()
		select {
		case <-s.done:
			s.sending.Unlock()
			return
		default:
		}
		select {
		case s.out <- m:
		case <-s.done:
			s.sending.Unlock()
			return
		case <-closing:
			s.sending.Unlock()
			return
		}
		s.sending.Unlock()
		select {
		case <-m.Acked():
			return
		case <-m.Nacked():
		case <-s.done:
			return
		case <-closing:
			return
		}
	}
}

// Subscribe returns the messages of topic published from now on, until ctx is
// done or the bus is closed.
func (p *memoryPubSub) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s := &memorySubscription{out: make(chan *message.Message), done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errBusClosed
	}
	p.subs[topic] = append(p.subs[topic], s)
	p.watchers.Add(1)
	p.mu.Unlock()

	go func() {
		defer p.watchers.Done()
		select {
		case <-ctx.Done():
		case <-p.closing:
		}
		p.mu.Lock()
		subs := p.subs[topic]
		for i, x := range subs {
			if x == s {
				p.subs[topic] = append(subs[:i:i], subs[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		close(s.done)
		s.sending.Lock()
		close(s.out)
		s.sending.Unlock()
	}()
	return s.out, nil
}

// Close ends every subscription; publishers waiting for acks return.
func (p *memoryPubSub) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closing)
	p.mu.Unlock()
	p.watchers.Wait()
	return nil
}
