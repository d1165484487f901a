package router

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// kafkaTestBus returns a Kafka bus on k, closed with the test.
func kafkaTestBus(t testing.TB, k *harness.Kafka, partitions int32, fromStart bool) *kafkaBus {
	t.Helper()
	bus, err := newKafkaBus(KafkaConfig{Brokers: strings.Split(k.Brokers, ","), Partitions: partitions, fromStart: fromStart},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

// TestKafkaFanOutPassesTheUniversalPubSubSuite runs Watermill's shared
// Pub/Sub tests on the Kafka publisher and fan-out subscriber (one partition
// per topic, so that order is guaranteed).
func TestKafkaFanOutPassesTheUniversalPubSubSuite(t *testing.T) {
	k := harness.StartKafka(t)
	fanOutSuite(t, func(t *testing.T) (message.Publisher, message.Subscriber) {
		bus := kafkaTestBus(t, k, 1, true)
		return bus.Publisher(), bus.FanOut()
	})
}

// TestKafkaWorkQueuePassesTheUniversalPubSubSuite does the same for the
// consumer-group work queue.
func TestKafkaWorkQueuePassesTheUniversalPubSubSuite(t *testing.T) {
	k := harness.StartKafka(t)
	workQueueSuite(t, func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		bus := kafkaTestBus(t, k, 1, true)
		return bus.Publisher(), bus.WorkQueue(group)
	})
}

// TestKafkaFanOutReachesEveryInstanceInOrderPerUser: two buses (two
// instances) subscribe to a 4-partition topic; a batch published in one call
// reaches both, complete, with each user's messages in publish order, and
// the records carry the routing headers and the user as key.
func TestKafkaFanOutReachesEveryInstanceInOrderPerUser(t *testing.T) {
	k := harness.StartKafka(t)
	topic := "fanout-" + watermill.NewShortUUID()
	a, b := kafkaTestBus(t, k, 4, false), kafkaTestBus(t, k, 4, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var subs []<-chan *message.Message
	for _, bus := range []*kafkaBus{a, b} {
		ch, err := bus.FanOut().Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, ch)
	}
	const n = 400
	users := []string{"u1", "u2", "u3", "u4", "u5"}
	msgs := make([]*message.Message, n)
	for i := range msgs {
		env := schemas.NewDeliver(schemas.Target{Users: []string{users[i%len(users)]}}, "e", []byte(fmt.Sprint(i)))
		msg, err := NewMessage(env)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = msg
	}
	if err := a.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
	for s, ch := range subs {
		last := map[string]int{}
		for i := range n {
			select {
			case m := <-ch:
				env, err := schemas.Decode(m.Payload)
				if err != nil {
					t.Fatal(err)
				}
				var seq int
				fmt.Sscan(string(env.Data), &seq)
				user := m.Metadata.Get(schemas.MetaUser)
				if prev, ok := last[user]; ok && seq < prev {
					t.Fatalf("subscriber %d: %s got message %d after %d", s, user, seq, prev)
				}
				last[user] = seq
				if m.UUID != env.ID || m.Metadata.Get(schemas.MetaKind) != "deliver" || m.Metadata.Get(schemas.MetaTS) == "" {
					t.Fatalf("subscriber %d: message %s has metadata %v", s, m.UUID, m.Metadata)
				}
				m.Ack()
			case <-ctx.Done():
				t.Fatalf("subscriber %d: %d of %d messages", s, i, n)
			}
		}
	}

	// The records themselves: key = user, headers = routing fields.
	client, err := k.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	seen := 0
	partitionOf := map[string]int32{}
	for seen < n && ctx.Err() == nil {
		fetches := client.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			seen++
			headers := map[string]string{}
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
			if string(r.Key) != headers["user"] || headers["event"] != "e" || headers["_watermill_message_uuid"] == "" {
				t.Errorf("record key %q headers %v", r.Key, headers)
			}
			if p, ok := partitionOf[string(r.Key)]; ok && p != r.Partition {
				t.Errorf("user %s on partitions %d and %d", r.Key, p, r.Partition)
			}
			partitionOf[string(r.Key)] = r.Partition
		})
	}
	if seen != n {
		t.Fatalf("read %d of %d records back", seen, n)
	}
}

// TestKafkaFanOutSeesWhatIsPublishedRightAfterSubscribe: a fan-out
// subscriber starts at the end of the topic as it is when Subscribe returns:
// older messages are not replayed, the first one published after is seen.
func TestKafkaFanOutSeesWhatIsPublishedRightAfterSubscribe(t *testing.T) {
	k := harness.StartKafka(t)
	topic := "late-" + watermill.NewShortUUID()
	bus := kafkaTestBus(t, k, 3, false)
	if err := bus.Publisher().Publish(topic, message.NewMessage("old", []byte("old"))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := bus.FanOut().Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publisher().Publish(topic, message.NewMessage("new", []byte("new"))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if m.UUID != "new" {
			t.Fatalf("first message after subscribing is %q, want the one published after", m.UUID)
		}
		m.Ack()
	case <-ctx.Done():
		t.Fatal("the message published right after Subscribe never arrived")
	}
}

// With fetches that ask for more than there is, a message still arrives once
// the broker has waited the fetch's longest wait; sarama gets both settings,
// and keeps its own without them.
func TestKafkaFetchSettingsReachSaramaAndStillDeliverLoneMessages(t *testing.T) {
	if sc := (KafkaConfig{}).saramaConfig(); sc.Consumer.Fetch.Min != 1 || sc.Consumer.MaxWaitTime != 500*time.Millisecond {
		t.Fatalf("default fetch: %d bytes, %s; want sarama's 1 byte and 500ms", sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime)
	}
	k := harness.StartKafka(t)
	const wait = 300 * time.Millisecond
	cfg := KafkaConfig{Brokers: strings.Split(k.Brokers, ","), Partitions: 1, FetchMinBytes: 1 << 20, FetchMaxWait: wait}
	if sc := cfg.saramaConfig(); sc.Consumer.Fetch.Min != 1<<20 || sc.Consumer.MaxWaitTime != wait || sc.Validate() != nil {
		t.Fatalf("fetch: %d bytes, %s (%v); want 1 MiB and %s", sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime, sc.Validate(), wait)
	}
	bus, err := newKafkaBus(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	topic := "fetch-" + watermill.NewShortUUID()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := bus.FanOut().Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // far less than 1 MiB each time
		if err := bus.Publisher().Publish(topic, message.NewMessage(fmt.Sprint("m", i), []byte("{}"))); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-ch:
			if m.UUID != fmt.Sprint("m", i) {
				t.Fatalf("got %s, want m%d", m.UUID, i)
			}
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("m%d never arrived: the fetch waits for its minimum past its longest wait", i)
		}
	}
}

// TestKafkaWorkQueueSharesMessagesAndANewGroupStartsAtSubscribe: a brand new
// group skips what was published before it subscribed but gets everything
// published right after (even before it has finished joining), and two
// members of the group share the messages: each handled once.
func TestKafkaWorkQueueSharesMessagesAndANewGroupStartsAtSubscribe(t *testing.T) {
	k := harness.StartKafka(t)
	topic := "queue-" + watermill.NewShortUUID()
	group := "g-" + watermill.NewShortUUID()
	a, b := kafkaTestBus(t, k, 4, false), kafkaTestBus(t, k, 4, false)
	publish := func(from, to int) {
		msgs := make([]*message.Message, 0, to-from)
		for i := from; i < to; i++ {
			m := message.NewMessage(fmt.Sprint(i), []byte(fmt.Sprint(i)))
			m.Metadata.Set(schemas.MetaUser, fmt.Sprint("u", i%7))
			msgs = append(msgs, m)
		}
		if err := a.Publisher().Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	publish(0, 10) // before the group exists: skipped
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := make(chan string, 1000)
	for _, bus := range []*kafkaBus{a, b} {
		ch, err := bus.WorkQueue(group).Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range ch {
				got <- m.UUID
				m.Ack()
			}
		}()
	}
	publish(10, 210)
	seen := map[string]int{}
	for len(seen) < 200 {
		select {
		case id := <-got:
			seen[id]++
		case <-ctx.Done():
			t.Fatalf("the group handled %d of 200 messages", len(seen))
		}
	}
	// Redelivery (at least once) is allowed during a rebalance; loss is not.
	for i := range 10 {
		if seen[fmt.Sprint(i)] > 0 {
			t.Errorf("message %d, published before the group existed, was delivered", i)
		}
	}
	for i := 10; i < 210; i++ {
		if seen[fmt.Sprint(i)] == 0 {
			t.Errorf("message %d lost", i)
		}
	}
}

// TestKafkaMarshalerKeysAndBackendRecords: the record key follows the
// routing fields; a record a backend produced with only an envelope as value
// gets a message UUID.
func TestKafkaMarshalerKeysAndBackendRecords(t *testing.T) {
	cases := []struct {
		name string
		md   map[string]string
		key  string
	}{
		{"user", map[string]string{"user": "u1", "room": "r"}, "u1"},
		{"users", map[string]string{"user": "u1,u2"}, "u1,u2"},
		{"room", map[string]string{"room": "lobby"}, "lobby"},
		{"broadcast", map[string]string{"all": "true"}, "*"},
		{"heartbeat", map[string]string{"instance": "i-1"}, "i-1"},
		{"nothing", map[string]string{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := message.NewMessage("id", []byte("{}"))
			for k, v := range c.md {
				msg.Metadata.Set(k, v)
			}
			pm, err := kafkaMarshaler{}.Marshal("t", msg)
			if err != nil {
				t.Fatal(err)
			}
			var key string
			if pm.Key != nil {
				b, _ := pm.Key.Encode()
				key = string(b)
			}
			if key != c.key {
				t.Errorf("key %q, want %q", key, c.key)
			}
		})
	}
	msg, err := kafkaMarshaler{}.Unmarshal(&sarama.ConsumerMessage{Value: []byte(`{"v":1}`),
		Headers: []*sarama.RecordHeader{{Key: []byte("event"), Value: []byte("e")}}})
	if err != nil || msg.UUID == "" || msg.Metadata.Get("event") != "e" || string(msg.Payload) != `{"v":1}` {
		t.Fatalf("backend record: %v %+v", err, msg)
	}
}

// TestKafkaConfigValidate lists the settings that cannot work.
func TestKafkaConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  KafkaConfig
		want string
	}{
		{"ok", KafkaConfig{Brokers: []string{"k:9092"}}, ""},
		{"no brokers", KafkaConfig{}, "no brokers"},
		{"no port", KafkaConfig{Brokers: []string{"k"}}, `broker "k"`},
		{"sasl without user", KafkaConfig{Brokers: []string{"k:9092"}, SASLMechanism: SASLPlain}, "needs a user"},
		{"unknown sasl", KafkaConfig{Brokers: []string{"k:9092"}, SASLMechanism: "GSSAPI"}, `"GSSAPI"`},
		{"scram", KafkaConfig{Brokers: []string{"k:9092"}, SASLMechanism: SASLScramSHA512, SASLUser: "u"}, ""},
		{"negative partitions", KafkaConfig{Brokers: []string{"k:9092"}, Partitions: -1}, "-1 partitions"},
		{"fetch settings", KafkaConfig{Brokers: []string{"k:9092"}, FetchMinBytes: 1 << 20, FetchMaxWait: 5 * time.Second}, ""},
		{"fetch minimum over 1 MiB", KafkaConfig{Brokers: []string{"k:9092"}, FetchMinBytes: 1<<20 + 1}, "fetch minimum 1048577 bytes"},
		{"fetch wait in microseconds", KafkaConfig{Brokers: []string{"k:9092"}, FetchMaxWait: 1500 * time.Microsecond}, "fetch wait 1.5ms"},
		{"fetch wait over 5s", KafkaConfig{Brokers: []string{"k:9092"}, FetchMaxWait: 6 * time.Second}, "fetch wait 6s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("Validate() = %v, want %q", err, c.want)
			}
		})
	}
}

// TestKafkaBusUnreachableFailsFast: a bus on a port nobody listens on fails
// to start within a few seconds, saying where it looked.
func TestKafkaBusUnreachableFailsFast(t *testing.T) {
	start := time.Now()
	_, err := newKafkaBus(KafkaConfig{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))}}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "cannot reach 127.0.0.1:") {
		t.Fatalf("err = %v, want cannot reach", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("failing took %v", took)
	}
}
