package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/web3-socket/web3-socket/schemas"
)

// AuditGroup is the consumer group the audit mirror reads a Redis bus with:
// the instances share it, so each envelope is copied once.
const AuditGroup = "web3-socket-audit"

// AuditConfig configures the audit mirror.
type AuditConfig struct {
	// Kafka is where the envelopes are copied to.
	Kafka KafkaConfig
	// Topics are copied to the Kafka topics of the same names.
	Topics []string
	// Buffer bounds the envelopes read and not yet acknowledged by Kafka.
	Buffer int
	// Block makes a full buffer stop reading instead of dropping: for a
	// source that keeps what is not read yet (Redis Streams), so that an
	// outage is absorbed by the stream and caught up afterwards.
	Block bool
	// Batch is the most envelopes sent in one produce round.
	Batch int
	// FlushTimeout bounds how long Run, once stopped, still tries to send
	// what it has buffered.
	FlushTimeout time.Duration
}

func (c *AuditConfig) setDefaults() {
	c.Kafka.setDefaults()
	if c.Buffer == 0 {
		c.Buffer = 100_000
	}
	if c.Batch == 0 {
		c.Batch = 1000
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 5 * time.Second
	}
}

// AuditMirror copies every message of some bus topics to Kafka, for
// auditors, when the bus is not Kafka itself. It reads the bus as a
// subscriber of its own and hands each message to a bounded buffer, so
// delivery never waits for Kafka; a sender drains the buffer in batches and
// retries a batch until Kafka has acknowledged it. While Kafka is away the
// buffer fills: then a memory bus's messages are dropped and counted
// (audit_dropped_total), and a Redis bus is simply not read further (its
// stream keeps them, within REDIS_STREAM_MAXLEN) until Kafka is back.
// What is buffered and not yet sent when the instance dies is lost to the
// audit (at most Buffer envelopes).
type AuditMirror struct {
	cfg    AuditConfig
	src    message.Subscriber
	log    *slog.Logger
	buffer chan *message.Message

	mirrored prometheus.Counter
	dropped  prometheus.Counter
	failures prometheus.Counter
}

// NewAuditMirror returns a mirror of src's topics; Run runs it.
func NewAuditMirror(cfg AuditConfig, src message.Subscriber, reg prometheus.Registerer, log *slog.Logger) (*AuditMirror, error) {
	cfg.setDefaults()
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, fmt.Errorf("audit mirror: %w", err)
	}
	if len(cfg.Topics) == 0 {
		return nil, errors.New("audit mirror: no topics")
	}
	m := &AuditMirror{cfg: cfg, src: src, log: log.With("component", "audit-mirror"),
		buffer: make(chan *message.Message, cfg.Buffer),
		mirrored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_mirrored_total", Help: "Envelopes the audit mirror copied to Kafka.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_dropped_total", Help: "Envelopes the audit mirror dropped because its buffer was full (Kafka away).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_send_failures_total", Help: "Produce rounds of the audit mirror that Kafka refused (each is retried).",
		}),
	}
	reg.MustRegister(m.mirrored, m.dropped, m.failures, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "audit_buffered", Help: "Envelopes read by the audit mirror and not yet acknowledged by Kafka.",
	}, func() float64 { return float64(len(m.buffer)) }))
	return m, nil
}

// Run subscribes to the topics and copies their messages until ctx is done,
// then tries to send what is buffered for up to FlushTimeout. It returns an
// error only when it cannot subscribe.
func (m *AuditMirror) Run(ctx context.Context) error {
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var readers sync.WaitGroup
	for _, topic := range m.cfg.Topics {
		ch, err := m.src.Subscribe(readCtx, topic)
		if err != nil {
			stopReading()
			readers.Wait()
			return fmt.Errorf("audit mirror: subscribe %s: %w", topic, err)
		}
		readers.Go(func() { m.read(readCtx, topic, ch) })
	}
	sendCtx, stopSending := context.WithCancel(context.Background())
	defer stopSending()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		m.send(ctx, sendCtx)
	}()
	<-ctx.Done()
	readers.Wait()
	// The sender drains what is buffered, then stops; past the flush
	// timeout it gives up.
	select {
	case <-sent:
	case <-time.After(m.cfg.FlushTimeout):
		stopSending()
		<-sent
	}
	if n := len(m.buffer); n > 0 {
		m.log.Warn("audit mirror stopped with envelopes not sent to Kafka", "count", n)
	}
	return nil
}

// read hands every message of one subscription to the buffer and acks it.
func (m *AuditMirror) read(ctx context.Context, topic string, ch <-chan *message.Message) {
	for msg := range ch {
		c := message.NewMessage(msg.UUID, msg.Payload)
		c.Metadata = auditMetadata(msg)
		c.Metadata.Set(auditTopicKey, topic)
		if m.cfg.Block {
			select {
			case m.buffer <- c:
			case <-ctx.Done():
				msg.Nack()
				continue
			}
		} else {
			select {
			case m.buffer <- c:
			default:
				m.dropped.Inc()
			}
		}
		msg.Ack()
	}
}

// auditTopicKey carries a buffered message's topic; it is not sent.
const auditTopicKey = "_audit_topic"

// auditMetadata returns msg's metadata, or, for a message that has none (an
// envelope a backend added to a stream with nothing but a payload), the
// routing fields of the envelope it carries.
func auditMetadata(msg *message.Message) message.Metadata {
	if msg.Metadata.Get(schemas.MetaKind) != "" {
		return copyMetadata(msg.Metadata)
	}
	if env, err := schemas.Decode(msg.Payload); err == nil {
		if built, err := NewMessage(env); err == nil {
			return built.Metadata
		}
	}
	return copyMetadata(msg.Metadata)
}

// send drains the buffer to Kafka in batches until stop is done and the
// buffer is empty, or abort is done. A batch Kafka refuses is sent again
// after a backoff, in the same order; the producer is made (again) as long
// as Kafka cannot be reached.
func (m *AuditMirror) send(stop, abort context.Context) {
	var (
		producer sarama.SyncProducer
		admin    sarama.ClusterAdmin
		created  = map[string]bool{}
		delay    retryDelay
		batch    []*message.Message
	)
	defer func() {
		if producer != nil {
			_ = producer.Close()
			_ = admin.Close()
		}
	}()
	fail := func(what string, err error) bool {
		m.failures.Inc()
		m.log.Warn("audit mirror: "+what+"; retrying", "error", err, "buffered", len(m.buffer)+len(batch))
		if producer != nil {
			_ = producer.Close()
			_ = admin.Close()
			producer, admin = nil, nil
		}
		return delay.wait(abort)
	}
	for abort.Err() == nil {
		if len(batch) == 0 {
			select {
			case msg := <-m.buffer:
				batch = append(batch, msg)
			case <-stop.Done():
				select {
				case msg := <-m.buffer:
					batch = append(batch, msg)
				default:
					return // stopped and drained
				}
			case <-abort.Done():
				return
			}
		fill:
			for len(batch) < m.cfg.Batch {
				select {
				case msg := <-m.buffer:
					batch = append(batch, msg)
				default:
					break fill
				}
			}
		}
		if producer == nil {
			var err error
			if producer, admin, err = m.connect(); err != nil {
				if !fail("cannot reach Kafka", err) {
					return
				}
				continue
			}
		}
		records := make([]*sarama.ProducerMessage, 0, len(batch))
		var err error
		for _, msg := range batch {
			topic := msg.Metadata.Get(auditTopicKey)
			if !created[topic] {
				if err = createTopic(admin, topic, m.cfg.Kafka.Partitions); err != nil {
					break
				}
				created[topic] = true
			}
			md := copyMetadata(msg.Metadata)
			delete(md, auditTopicKey)
			c := message.NewMessage(msg.UUID, msg.Payload)
			c.Metadata = md
			var r *sarama.ProducerMessage
			if r, err = (kafkaMarshaler{}).Marshal(topic, c); err != nil {
				break
			}
			records = append(records, r)
		}
		if err == nil {
			err = producer.SendMessages(records)
		}
		if err != nil {
			if !fail(fmt.Sprintf("%d envelopes not acknowledged", len(batch)), err) {
				return
			}
			continue
		}
		delay = 0
		m.mirrored.Add(float64(len(batch)))
		batch = batch[:0]
	}
}

// connect makes the mirror's producer and admin client.
func (m *AuditMirror) connect() (sarama.SyncProducer, sarama.ClusterAdmin, error) {
	client, err := sarama.NewClient(m.cfg.Kafka.Brokers, m.cfg.Kafka.saramaConfig())
	if err != nil {
		return nil, nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		_ = admin.Close()
		return nil, nil, err
	}
	return producer, admin, nil
}

// createTopic creates topic unless it exists.
func createTopic(admin sarama.ClusterAdmin, topic string, partitions int32) error {
	err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: -1}, false)
	var topicErr *sarama.TopicError
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) &&
		!(errors.As(err, &topicErr) && errors.Is(topicErr.Err, sarama.ErrTopicAlreadyExists)) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

func copyMetadata(md message.Metadata) message.Metadata {
	c := make(message.Metadata, len(md)+1)
	for k, v := range md {
		c[k] = v
	}
	return c
}
