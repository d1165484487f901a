package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/xdg-go/scram"

	"github.com/web3-socket/web3-socket/schemas"
)

// SASL mechanisms KafkaConfig.SASLMechanism accepts.
const (
	SASLPlain       = sarama.SASLTypePlaintext
	SASLScramSHA256 = sarama.SASLTypeSCRAMSHA256
	SASLScramSHA512 = sarama.SASLTypeSCRAMSHA512
)

// KafkaConfig configures the Kafka bus (and the audit mirror's producer).
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// ClientID names this client in the brokers' logs and quotas.
	ClientID string
	// TLS connects with TLS, verifying the brokers against the system roots.
	TLS bool
	// SASLMechanism is "" (no SASL), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	// Partitions is the partition count of the topics the bus creates.
	Partitions int32
	// FetchMinBytes is how much a consumer's fetch asks the broker to wait
	// for, up to FetchMaxWait, before it answers (sarama's Consumer.Fetch.Min
	// and Consumer.MaxWaitTime; 0 keeps sarama's 1 byte and 500ms). More
	// than a message's size trades up to FetchMaxWait of delivery latency
	// for fewer fetches, which are most of a busy broker's work.
	FetchMinBytes int32
	FetchMaxWait  time.Duration

	// fromStart makes fan-out subscribers and new groups read each topic
	// from its first message (Watermill's universal test suite expects
	// old messages).
	fromStart bool
}

func (c *KafkaConfig) setDefaults() {
	if c.ClientID == "" {
		c.ClientID = "web3-socket"
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
}

// Validate reports a configuration that cannot work.
func (c KafkaConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers (KAFKA_BROKERS)")
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			return fmt.Errorf("kafka: broker %q: want host:port", b)
		}
	}
	switch c.SASLMechanism {
	case "":
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUser == "" {
			return fmt.Errorf("kafka: SASL %s needs a user name", c.SASLMechanism)
		}
	default:
		return fmt.Errorf("kafka: SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	if c.Partitions < 0 {
		return fmt.Errorf("kafka: %d partitions: want 1 or more", c.Partitions)
	}
	if c.FetchMinBytes < 0 || c.FetchMinBytes > maxFetchMinBytes {
		return fmt.Errorf("kafka: fetch minimum %d bytes: want 1 to %d", c.FetchMinBytes, maxFetchMinBytes)
	}
	if c.FetchMaxWait < 0 || c.FetchMaxWait%time.Millisecond != 0 || c.FetchMaxWait > maxFetchMaxWait {
		return fmt.Errorf("kafka: fetch wait %s: want whole milliseconds, 1ms to %s", c.FetchMaxWait, maxFetchMaxWait)
	}
	return nil
}

// A fetch asks for at most a partition's default fetch size (1 MiB), and
// waits well within the client's read timeout (10s).
const (
	maxFetchMinBytes = 1 << 20
	maxFetchMaxWait  = 5 * time.Second
)

// saramaConfig returns the client settings shared by the producer, the
// consumers and the admin client. Timeouts are short so that a REST publish
// fails within its deadline when the brokers are away, instead of waiting
// through sarama's patient defaults (30s to dial).
func (c KafkaConfig) saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	// Kafka 4 dropped the protocol versions before 2.1 (KIP-896); 3.9 is
	// spoken by every broker from 3.9 on and negotiated down per request.
	sc.Version = sarama.V3_9_0_0
	sc.ClientID = c.ClientID
	sc.Net.DialTimeout = time.Second
	sc.Net.ReadTimeout = 10 * time.Second
	sc.Net.WriteTimeout = 5 * time.Second
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 100 * time.Millisecond
	sc.Metadata.Timeout = 3 * time.Second
	sc.Metadata.AllowAutoTopicCreation = true
	if c.TLS {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.SASLMechanism != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASLMechanism)
		sc.Net.SASL.User = c.SASLUser
		sc.Net.SASL.Password = c.SASLPassword
		switch c.SASLMechanism {
		case SASLScramSHA256:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
		case SASLScramSHA512:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
		}
	}
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true // the sync producer waits for them
	sc.Producer.Timeout = 3 * time.Second
	sc.Producer.Retry.Max = 2
	sc.Producer.Retry.Backoff = 100 * time.Millisecond
	// Murmur2 of the key, as the Java client and franz-go do: a backend
	// producing with the same key lands on the same partition (kcat: -X
	// partitioner=murmur2_random).
	sc.Producer.Partitioner = sarama.NewMurmur2Partitioner
	sc.Consumer.Return.Errors = false // logged by sarama; nobody must drain them
	sc.Consumer.Retry.Backoff = 250 * time.Millisecond
	if c.FetchMinBytes > 0 {
		sc.Consumer.Fetch.Min = c.FetchMinBytes
	}
	if c.FetchMaxWait > 0 {
		sc.Consumer.MaxWaitTime = c.FetchMaxWait
	}
	return sc
}

// kafkaBus shares topics between instances over Kafka with the
// watermill-kafka adapter (sarama). Fan-out subscribers (outbound, control)
// read every partition without a consumer group, from the end of each
// partition as it is when Subscribe returns: every instance sees every
// message published after it subscribed, however many instances there are,
// and no group or offset is left on the brokers per instance. A work queue
// (inbound) is a consumer group shared by the instances.
type kafkaBus struct {
	cfg    KafkaConfig
	sc     *sarama.Config
	client sarama.Client
	admin  sarama.ClusterAdmin
	pub    *kafkaPublisher
	fanOut *kafkaFanOut
	log    *slog.Logger

	mu       sync.Mutex
	queues   map[string]*kafkaWorkQueue
	topics   sync.Map // topic name -> struct{}: known to exist
	once     sync.Once
	closeErr error
}

func newKafkaBus(cfg KafkaConfig, log *slog.Logger) (*kafkaBus, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bus %w", err)
	}
	sc := cfg.saramaConfig()
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("bus kafka: cannot reach %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("bus kafka: admin client: %w", err)
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("bus kafka: producer: %w", err)
	}
	b := &kafkaBus{cfg: cfg, sc: sc, client: client, admin: admin, log: log.With("component", "kafka"),
		queues: map[string]*kafkaWorkQueue{}}
	b.pub = &kafkaPublisher{producer: producer, ensure: b.ensureTopic}
	fanOutConfig := cfg.saramaConfig()
	fanOutConfig.Consumer.Offsets.Initial = sarama.OffsetNewest
	if cfg.fromStart {
		fanOutConfig.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           kafkaMarshaler{},
		OverwriteSaramaConfig: fanOutConfig,
		ReconnectRetrySleep:   time.Second,
	}, watermillLogger(log))
	if err != nil {
		_ = producer.Close()
		_ = client.Close()
		return nil, fmt.Errorf("bus kafka: subscriber: %w", err)
	}
	b.fanOut = &kafkaFanOut{sub: sub, ensure: b.ensureTopic}
	return b, nil
}

func (b *kafkaBus) Kind() string                 { return KindKafka }
func (b *kafkaBus) Publisher() message.Publisher { return b.pub }
func (b *kafkaBus) FanOut() message.Subscriber   { return b.fanOut }

// WorkQueue returns the subscriber of consumer group group; this instance is
// one member of it.
func (b *kafkaBus) WorkQueue(group string) message.Subscriber {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.queues[group]; ok {
		return q
	}
	q := &kafkaWorkQueue{bus: b, group: group}
	b.queues[group] = q
	return q
}

// Ping asks the brokers for the cluster metadata. sarama takes no context:
// the call runs on its own goroutine, which ends within the client's
// network timeouts when ctx ends first.
func (b *kafkaBus) Ping(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- b.client.RefreshMetadata() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka: %w", ctx.Err())
	}
}

func (b *kafkaBus) Close() error {
	b.once.Do(func() {
		errs := []error{b.fanOut.Close()}
		b.mu.Lock()
		for _, q := range b.queues {
			errs = append(errs, q.Close())
		}
		b.mu.Unlock()
		errs = append(errs, b.pub.Close())
		// The admin client, the producer and the bus share one client;
		// closing the admin closes it.
		if err := b.admin.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			errs = append(errs, err)
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// ensureTopic creates topic with the configured partitions unless it is
// known to exist. Topics a broker auto-creates get the broker's default
// partition count instead, so the bus creates its own before using them.
func (b *kafkaBus) ensureTopic(topic string) error {
	if _, ok := b.topics.Load(topic); ok {
		return nil
	}
	if err := createTopic(b.admin, topic, b.cfg.Partitions); err != nil {
		return err
	}
	if err := b.awaitLeaders(topic); err != nil {
		return err
	}
	b.topics.Store(topic, struct{}{})
	return nil
}

// awaitLeaders waits until every partition of topic has a leader that
// answers for it: a topic just created is not served at once, and a
// partition consumer started before would fail.
func (b *kafkaBus) awaitLeaders(topic string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.client.RefreshMetadata(topic)
		if err == nil {
			var partitions []int32
			if partitions, err = b.client.Partitions(topic); err == nil && len(partitions) == 0 {
				err = fmt.Errorf("topic %s has no partitions yet", topic)
			}
			for _, p := range partitions {
				if _, err = b.client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
					break
				}
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s: partitions without a leader: %w", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kafkaFanOut is the adapter's subscriber without a consumer group, after
// making sure the topic exists with the bus's partitions.
type kafkaFanOut struct {
	sub    *kafka.Subscriber
	ensure func(topic string) error
}

func (f *kafkaFanOut) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := f.ensure(topic); err != nil {
		return nil, fmt.Errorf("kafka fan-out: %w", err)
	}
	return f.sub.Subscribe(ctx, topic)
}

func (f *kafkaFanOut) Close() error { return f.sub.Close() }

// kafkaWorkQueue is the adapter's consumer-group subscriber. A group that
// has no committed offset on a partition yet starts where the partition
// ends when Subscribe is called (as a Redis group created at "$"): the
// offsets are committed for it before it joins, so that nothing published
// after Subscribe returned is skipped while the group is forming. Offsets
// are committed after each message is acknowledged (at least once).
type kafkaWorkQueue struct {
	bus   *kafkaBus
	group string

	mu   sync.Mutex
	subs []*kafka.Subscriber
}

func (q *kafkaWorkQueue) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := q.bus.ensureTopic(topic); err != nil {
		return nil, fmt.Errorf("kafka group %s: %w", q.group, err)
	}
	if q.bus.cfg.fromStart {
		// read from the oldest message
	} else if err := q.startAtEnd(topic); err != nil {
		// The group then reads from the oldest retained message: more,
		// never less.
		q.bus.log.Warn("kafka group: could not pin the start of a new group; it reads from the oldest message",
			"group", q.group, "topic", topic, "error", err)
	}
	sc := q.bus.cfg.saramaConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Interval = 500 * time.Millisecond
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               q.bus.cfg.Brokers,
		Unmarshaler:           kafkaMarshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         q.group,
		ReconnectRetrySleep:   time.Second,
	}, watermillLogger(q.bus.log))
	if err != nil {
		return nil, fmt.Errorf("kafka group %s: %w", q.group, err)
	}
	q.mu.Lock()
	q.subs = append(q.subs, sub)
	q.mu.Unlock()
	return sub.Subscribe(ctx, topic)
}

// startAtEnd commits, for a group with no member, the newest offset of
// every partition of topic on which it has no committed offset. A group with
// members is left alone: they started it, and its offsets are theirs.
func (q *kafkaWorkQueue) startAtEnd(topic string) error {
	b := q.bus
	groups, err := b.admin.DescribeConsumerGroups([]string{q.group})
	if err != nil {
		return err
	}
	if len(groups) == 1 && groups[0].State != "Empty" && groups[0].State != "Dead" && groups[0].State != "" {
		return nil
	}
	partitions, err := b.client.Partitions(topic)
	if err != nil {
		return err
	}
	committed, err := b.admin.ListConsumerGroupOffsets(q.group, map[string][]int32{topic: partitions})
	if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		return err
	}
	// Version 7 (Kafka 2.3 on): a commit with no member and generation -1
	// is a "simple" consumer's, accepted for a group without members.
	req := &sarama.OffsetCommitRequest{Version: 7, ConsumerGroup: q.group, ConsumerGroupGeneration: -1}
	pinned := 0
	for _, p := range partitions {
		if committed != nil {
			if blk := committed.GetBlock(topic, p); blk != nil && blk.Err == sarama.ErrNoError && blk.Offset >= 0 {
				continue
			}
		}
		newest, err := b.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		req.AddBlock(topic, p, newest, 0, "")
		pinned++
	}
	if pinned == 0 {
		return nil
	}
	coordinator, err := b.client.Coordinator(q.group)
	if err != nil {
		return err
	}
	resp, err := coordinator.CommitOffset(req)
	if err != nil {
		return err
	}
	for _, partitions := range resp.Errors {
		for p, kerr := range partitions {
			if kerr != sarama.ErrNoError {
				return fmt.Errorf("commit the start of partition %d: %w", p, kerr)
			}
		}
	}
	return nil
}

func (q *kafkaWorkQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	for _, s := range q.subs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// kafkaMarshaler writes the adapter's format (the message UUID and every
// metadata entry as record headers, the payload as the value) with a record
// key that keeps order where it matters: the messages of one user, one room,
// one instance's heartbeats and all broadcasts each stay on one partition.
// It reads records a backend produced with nothing but an envelope as the
// value: those get a fresh message UUID; the envelope keeps its own id.
type kafkaMarshaler struct{}

func (kafkaMarshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	pm, err := kafka.DefaultMarshaler{}.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	if key := partitionKey(msg.Metadata); key != "" {
		pm.Key = sarama.StringEncoder(key)
	}
	return pm, nil
}

func (kafkaMarshaler) Unmarshal(record *sarama.ConsumerMessage) (*message.Message, error) {
	msg, err := kafka.DefaultMarshaler{}.Unmarshal(record)
	if err != nil {
		return nil, err
	}
	if msg.UUID == "" {
		msg.UUID = watermill.NewUUID()
	}
	return msg, nil
}

// partitionKey is the record key of a message: its user ids (comma
// separated), else its rooms, else "*" for a broadcast to everyone, else its
// instance (heartbeats). A backend keeps its messages to a user in order with
// the user id as the key.
func partitionKey(md message.Metadata) string {
	switch {
	case md.Get(schemas.MetaUser) != "":
		return md.Get(schemas.MetaUser)
	case md.Get(schemas.MetaRoom) != "":
		return md.Get(schemas.MetaRoom)
	case md.Get("all") == "true":
		return "*"
	default:
		return md.Get(schemas.MetaInstance)
	}
}

// scramClient is sarama's SCRAM conversation over xdg-go/scram.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }
func (c *scramClient) Done() bool                            { return c.conv.Done() }
