package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// memoryBus is the embedded bus for a single instance: an in-process
// Watermill Pub/Sub. Every subscriber of a topic gets every message, in
// publish order, at a fraction of the cost of Watermill's GoChannel, which
// starts two goroutines and makes two copies for every message (it was the
// largest allocator of a busy instance).
//
// A plain subscriber (Subscribe) is handed each message and Publish returns
// once it has acked, as GoChannel does with BlockPublishUntilSubscriberAck.
// A subscriber of batches (SubscribeBatches: the router's fan-out handlers)
// has a bounded queue instead: Publish returns once the messages are queued
// (and in the log), and the subscription hands over everything queued as one
// batch when its handler is ready. A publisher then does not wait for the
// handlers, and a busy handler takes its backlog in batches.
//
// Its work queues are buffered instead (see memoryQueue): a publisher of
// client events must not wait for a consumer that is waiting for a backend.
type memoryBus struct {
	ps *memoryPubSub

	mu     sync.Mutex
	queues map[string]*memoryQueue
}

// newMemoryBus returns the embedded bus. With logWindow > 0 it keeps each
// topic's messages of the last logWindow (at most memoryLogMax of them) as
// its Log.
func newMemoryBus(logWindow time.Duration, _ *slog.Logger) *memoryBus {
	ps := newMemoryPubSub()
	ps.logWindow = logWindow
	return &memoryBus{ps: ps, queues: map[string]*memoryQueue{}}
}

// memoryLogMax and memoryLogMaxBytes bound each topic's log of the embedded
// bus, whatever the window: past either, the oldest messages go first (a
// client away for longer than the log covers is not recovered).
const (
	memoryLogMax      = 100_000
	memoryLogMaxBytes = 32 << 20
)

// Has reports whether offset is in topic's log.
func (b *memoryBus) Has(_ context.Context, topic, offset string) (bool, error) {
	l := b.ps.log(topic)
	if l == nil {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, found := l.find(offset)
	return found, nil
}

// ReadAfter calls fn with each message of topic's log after offset.
func (b *memoryBus) ReadAfter(ctx context.Context, topic, offset string, fn func(*message.Message) error) error {
	l := b.ps.log(topic)
	if l == nil {
		return nil
	}
	l.mu.Lock()
	i, found := l.find(offset)
	var after []*message.Message
	if found {
		after = append(after, l.msgs[i+1:]...)
	}
	l.mu.Unlock()
	for _, m := range after {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Drain waits until the router's handlers have taken what was published
// (see memoryPubSub.Drain).
func (b *memoryBus) Drain(ctx context.Context) error { return b.ps.Drain(ctx) }

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

	// logWindow > 0 keeps each topic's recent messages in logs (topic →
	// *memoryLog); epoch, the bus's start in ms, makes offsets of another
	// run of the process unknown to this one.
	logWindow time.Duration
	logs      sync.Map
	epoch     string
}

func newMemoryPubSub() *memoryPubSub {
	return &memoryPubSub{subs: map[string][]*memorySubscription{}, closing: make(chan struct{}),
		epoch: strconv.FormatInt(time.Now().UnixMilli(), 10)}
}

// memoryLog is one topic's recent messages, oldest first, with their
// sequence numbers (seqs[i] is msgs[i]'s).
type memoryLog struct {
	epoch string
	mu    sync.Mutex
	next  uint64
	seqs  []uint64
	at    []time.Time
	msgs  []*message.Message
	bytes int // payload bytes of msgs
}

func (p *memoryPubSub) log(topic string) *memoryLog {
	if l, ok := p.logs.Load(topic); ok {
		return l.(*memoryLog)
	}
	return nil
}

// append gives msg the next offset of the log and keeps it, dropping what
// is older than window or past memoryLogMax.
func (l *memoryLog) append(window time.Duration, msg *message.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	now := time.Now()
	msg.Metadata.Set(MetaOffset, l.epoch+"-"+strconv.FormatUint(l.next, 10))
	l.seqs = append(l.seqs, l.next)
	l.at = append(l.at, now)
	l.msgs = append(l.msgs, msg)
	l.bytes += len(msg.Payload)
	drop := 0
	for drop < len(l.at) && (len(l.msgs)-drop > memoryLogMax || l.bytes > memoryLogMaxBytes || now.Sub(l.at[drop]) > window) {
		l.bytes -= len(l.msgs[drop].Payload)
		drop++
	}
	if drop > 0 && drop >= len(l.msgs)/4 {
		// Compacted in steps, so that appending stays amortised O(1).
		l.seqs = append(l.seqs[:0:0], l.seqs[drop:]...)
		l.at = append(l.at[:0:0], l.at[drop:]...)
		l.msgs = append(l.msgs[:0:0], l.msgs[drop:]...)
	} else if drop > 0 {
		for i := range drop {
			l.msgs[i] = nil
		}
		l.seqs, l.at, l.msgs = l.seqs[drop:], l.at[drop:], l.msgs[drop:]
	}
}

// find returns the index of offset in the log. Called with l.mu held.
func (l *memoryLog) find(offset string) (int, bool) {
	epoch, seqText, ok := strings.Cut(offset, "-")
	if !ok || epoch != l.epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return 0, false
	}
	i := sort.Search(len(l.seqs), func(i int) bool { return l.seqs[i] >= seq })
	return i, i < len(l.seqs) && l.seqs[i] == seq
}

type memorySubscription struct {
	// ctx is the subscriber's; batches says it takes batches (SubscribeBatches).
	ctx     context.Context
	batches bool
	out     chan *message.Message
	done    chan struct{} // closed when the subscription ends
	// sending is held while a message is handed over, so that out is closed
	// only between two sends.
	sending sync.Mutex

	// queue holds, for a subscriber of batches, the messages published and
	// not handed over yet (at most memoryQueueMax); wake tells its goroutine
	// there are some, space tells waiting publishers there is room.
	qmu   sync.Mutex
	queue []*message.Message
	// handing counts the messages of the batch handed over and not yet
	// acked (Drain waits for them too).
	handing int
	wake    chan struct{}
	space   chan struct{}
}

// memoryQueueMax bounds the queue of a subscriber of batches: a publisher
// waits while it is full, so what is queued stays a short wait (a deeper
// queue only adds latency once the handler is the bottleneck).
// memoryBatchMax bounds one batch handed over.
const (
	memoryQueueMax = 1_000
	memoryBatchMax = 500
)

// enqueue adds msgs to the queue of a subscriber of batches, waiting for room
// while it is full, and reports false when the subscription or the bus ended
// first.
func (s *memorySubscription) enqueue(msgs []*message.Message, closing <-chan struct{}) bool {
	for len(msgs) > 0 {
		s.qmu.Lock()
		room := memoryQueueMax - len(s.queue)
		if room <= 0 {
			s.qmu.Unlock()
			select {
			case <-s.space:
				continue
			case <-s.done:
				return false
			case <-closing:
				return false
			}
		}
		n := min(room, len(msgs))
		s.queue = append(s.queue, msgs[:n]...)
		s.qmu.Unlock()
		msgs = msgs[n:]
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take removes up to memoryBatchMax messages from the front of the queue.
func (s *memorySubscription) take() []*message.Message {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	n := min(len(s.queue), memoryBatchMax)
	if n == 0 {
		return nil
	}
	batch := slices.Clone(s.queue[:n])
	clear(s.queue[:n])
	s.queue = s.queue[n:]
	s.handing = n
	if len(s.queue) == 0 {
		s.queue = nil // let a drained backlog's array go
	}
	select {
	case s.space <- struct{}{}:
	default:
	}
	return batch
}

// pending counts the messages queued or handed over and not acked yet.
func (s *memorySubscription) pending() int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue) + s.handing
}

// handBatches hands the queue over, batch by batch, until the subscription
// or the bus ends.
func (s *memorySubscription) handBatches(closing <-chan struct{}) {
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		case <-closing:
			return
		}
		for batch := s.take(); len(batch) > 0; batch = s.take() {
			s.deliverBatch(batch, closing)
			s.qmu.Lock()
			s.handing = 0
			s.qmu.Unlock()
			select {
			case <-s.done:
				return
			case <-closing:
				return
			default:
			}
		}
	}
}

func (p *memoryPubSub) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// Publish queues the messages for every subscriber of batches of topic, and
// hands each to every plain subscriber, in order, returning once each has
// acked it (a nack hands it over again), or when the subscription or the bus
// ends. A plain subscriber's handler must not publish to the topic it
// consumes: the publisher waiting for its ack holds the topic.
func (p *memoryPubSub) Publish(topic string, msgs ...*message.Message) error {
	lock, ok := p.topicLocks.Load(topic)
	if !ok {
		lock, _ = p.topicLocks.LoadOrStore(topic, &sync.Mutex{})
	}
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()

	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return errBusClosed
	}
	subs := p.subs[topic]
	p.mu.RUnlock()
	if p.logWindow > 0 {
		l, ok := p.logs.Load(topic)
		if !ok {
			l, _ = p.logs.LoadOrStore(topic, &memoryLog{epoch: p.epoch})
		}
		for _, msg := range msgs {
			l.(*memoryLog).append(p.logWindow, msg)
		}
	}
	// Subscribers of batches share the messages, which they do not ack;
	// the others get a copy each.
	for _, s := range subs {
		if s.batches {
			s.enqueue(msgs, p.closing)
		}
	}
	for _, msg := range msgs {
		for _, s := range subs {
			if !s.batches {
				s.deliver(msg, p.closing)
			}
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
		if acked, ended := s.handOver(m, closing); acked || ended {
			return
		}
	}
}

// deliverBatch hands msgs to the subscription as one batch message and waits
// for its ack; after a nack it hands over the messages that were not handled.
func (s *memorySubscription) deliverBatch(msgs []*message.Message, closing <-chan struct{}) {
	for len(msgs) > 0 {
		b := &messageBatch{msgs: msgs}
		if acked, ended := s.handOver(newBatchMessage(s.ctx, b), closing); acked || ended {
			return
		}
		msgs = msgs[b.done:]
	}
}

// handOver gives m to the subscriber and waits until it acks or nacks it, or
// the subscription or the bus ends.
func (s *memorySubscription) handOver(m *message.Message, closing <-chan struct{}) (acked, ended bool) {
	s.sending.Lock()
	select {
	case <-s.done:
		s.sending.Unlock()
		return false, true
	default:
	}
	select {
	case s.out <- m:
	case <-s.done:
		s.sending.Unlock()
		return false, true
	case <-closing:
		s.sending.Unlock()
		return false, true
	}
	s.sending.Unlock()
	select {
	case <-m.Acked():
		return true, false
	case <-m.Nacked():
		return false, false
	case <-s.done:
	case <-closing:
	}
	return false, true
}

// Subscribe returns the messages of topic published from now on, until ctx is
// done or the bus is closed.
func (p *memoryPubSub) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return p.subscribe(ctx, topic, false)
}

// SubscribeBatches is Subscribe with the messages of each Publish call handed
// over as one batch (see batchSubscriber).
func (p *memoryPubSub) SubscribeBatches(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return p.subscribe(ctx, topic, true)
}

func (p *memoryPubSub) subscribe(ctx context.Context, topic string, batches bool) (<-chan *message.Message, error) {
	s := &memorySubscription{ctx: ctx, batches: batches, out: make(chan *message.Message), done: make(chan struct{}),
		wake: make(chan struct{}, 1), space: make(chan struct{}, 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errBusClosed
	}
	p.subs[topic] = append(p.subs[topic], s)
	p.watchers.Add(1)
	if batches {
		p.watchers.Add(1)
	}
	p.mu.Unlock()
	if batches {
		go func() {
			defer p.watchers.Done()
			s.handBatches(p.closing)
		}()
	}

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

// drainPoll is how often Drain looks at the queues.
const drainPoll = 5 * time.Millisecond

// Drain waits until what was published to subscribers of batches has been
// handed over and acked, or ctx is done: at shutdown, what the REST API
// accepted is delivered before the router stops.
func (p *memoryPubSub) Drain(ctx context.Context) error {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		p.mu.RLock()
		left := 0
		for _, subs := range p.subs {
			for _, s := range subs {
				if s.batches {
					left += s.pending()
				}
			}
		}
		p.mu.RUnlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("memory bus: %d messages not handled: %w", left, ctx.Err())
		case <-t.C:
		}
	}
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
