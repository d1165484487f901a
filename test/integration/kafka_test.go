package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// kafkaEnv is the environment of an instance on the Kafka bus at brokers,
// with topics under prefix (tests sharing a broker keep apart by prefix).
func kafkaEnv(brokers, prefix, instance string) map[string]string {
	env := harness.DefaultEnv()
	env["BUS"] = "kafka"
	env["KAFKA_BROKERS"] = brokers
	env["KAFKA_PARTITIONS"] = "3"
	env["TOPIC_PREFIX"] = prefix
	env["CLUSTER_HEARTBEAT"] = "300ms"
	env["INSTANCE_ID"] = instance
	return env
}

// startKafkaPair starts two instances on the Kafka bus at k, sharing
// secrets, and returns them with their topic prefix.
func startKafkaPair(t *testing.T, k *harness.Kafka) (string, *harness.Server, *harness.Server) {
	t.Helper()
	t.Logf("Kafka: %s", k.What)
	prefix := harness.TopicPrefix()
	envA, envB := kafkaEnv(k.Brokers, prefix, "it-a"), kafkaEnv(k.Brokers, prefix, "it-b")
	for _, key := range []string{"JWT_SECRET", "API_KEY"} {
		envB[key] = envA[key]
	}
	return prefix, harness.StartServer(t, envA), harness.StartServer(t, envB)
}

// TestKafkaBusDeliversAcrossInstances runs two instances as separate
// processes over one Kafka cluster, with the official client on each: a
// message, a broadcast, a room joined through the other instance's REST
// API, a send_message between users on different instances, an envelope a
// backend produced with a plain Kafka client, and the README's kcat example
// all reach their recipients on whichever instance holds them.
func TestKafkaBusDeliversAcrossInstances(t *testing.T) {
	k := harness.StartKafka(t)
	prefix, a, b := startKafkaPair(t, k)
	ws := harness.Modes[0]
	d := harness.NewDriver(t)
	connect(t, d, a, ws, "alice", harness.UserToken(t, a.JWTSecret(), "alice", nil))
	connect(t, d, b, ws, "bob", harness.UserToken(t, b.JWTSecret(), "bob", nil))

	deliversAcrossInstances(t, d, a, b)

	t.Run("cluster statistics see both instances", func(t *testing.T) {
		for _, s := range []*harness.Server{a, b} {
			eventually(t, wait, func() (bool, string) {
				st := statsOf(t, s)
				return st.Cluster.Instances == 2 && st.Cluster.Connections == 2,
					fmt.Sprintf("stats on %s: %+v", s.Env["INSTANCE_ID"], st)
			})
		}
	})

	t.Run("envelope produced by a backend with a Kafka client is delivered", func(t *testing.T) {
		client, err := k.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		env := schemas.NewDeliver(schemas.Target{Users: []string{"bob"}}, "from-backend", json.RawMessage(`{"n":42}`))
		payload, err := schemas.Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A bare record: no Watermill headers, the user id as key.
		if err := client.ProduceSync(ctx, &kgo.Record{Topic: prefix + "outbound", Key: []byte("bob"), Value: payload}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		expectData(t, d.WaitEvent("bob", "from-backend", wait), map[string]any{"n": 42})
	})

	t.Run("an invalid envelope from a backend goes to the poison topic and delivery goes on", func(t *testing.T) {
		client, err := k.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.ProduceSync(ctx, &kgo.Record{Topic: prefix + "outbound", Key: []byte("bob"), Value: []byte(`{"v":1,"kind":"deliver"}`)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		postMessage(t, a, "bob", "after-poison", 1)
		expectData(t, d.WaitEvent("bob", "after-poison", wait), 1)
		records := awaitRecords(t, k.Brokers, prefix+"poison", func(rs []kcatRecord) bool { return len(rs) >= 2 })
		if !strings.Contains(records[0].Payload, `"kind":"deliver"`) {
			t.Errorf("poison record %+v", records[0])
		}
	})

	t.Run("the README's kcat -P example is delivered", func(t *testing.T) {
		requireKcat(t)
		line := readmeLine(t, "| kcat -P ")
		connect(t, d, a, ws, "dev", harness.UserToken(t, a.JWTSecret(), "dev-user", nil))
		cmd := strings.ReplaceAll(strings.ReplaceAll(line, "127.0.0.1:9092", k.Brokers), "socket.outbound", prefix+"outbound")
		if out, err := exec.Command("bash", "-c", cmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		expectData(t, d.WaitEvent("dev", "notification", wait), map[string]any{"message": "Hello"})
	})
}

// TestKafkaAuditTrailHoldsEveryEnvelopeWithItsHeaders sends a REST message,
// a room broadcast, a broadcast to everyone, a send_message and a client
// event, then reads the outbound and inbound topics with `kcat -C -J`, as an
// auditor would, and finds each of them with its routing headers: on the
// Kafka bus itself, and through the audit mirror of a memory and a Redis bus.
func TestKafkaAuditTrailHoldsEveryEnvelopeWithItsHeaders(t *testing.T) {
	requireKcat(t)
	modes := []struct {
		name string
		env  func(t *testing.T, k *harness.Kafka, prefix string) map[string]string
	}{
		{"kafka bus", func(t *testing.T, k *harness.Kafka, prefix string) map[string]string {
			return kafkaEnv(k.Brokers, prefix, "audit-1")
		}},
		{"memory bus with the audit mirror", func(t *testing.T, k *harness.Kafka, prefix string) map[string]string {
			env := harness.DefaultEnv()
			env["AUDIT_KAFKA_BROKERS"], env["TOPIC_PREFIX"], env["INSTANCE_ID"] = k.Brokers, prefix, "audit-1"
			return env
		}},
		{"redis bus with the audit mirror", func(t *testing.T, k *harness.Kafka, prefix string) map[string]string {
			env := harness.DefaultEnv()
			env["BUS"], env["REDIS_URL"] = "redis", harness.StartRedis(t).URL
			env["AUDIT_KAFKA_BROKERS"], env["TOPIC_PREFIX"], env["INSTANCE_ID"] = k.Brokers, prefix, "audit-1"
			return env
		}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			k := harness.StartKafka(t)
			prefix := harness.TopicPrefix()
			s := harness.StartServer(t, mode.env(t, k, prefix))
			d := harness.NewDriver(t)
			ws := harness.Modes[0]
			connect(t, d, s, ws, "carol", harness.UserToken(t, s.JWTSecret(), "carol", []string{"audit-*"}))
			connect(t, d, s, ws, "dave", harness.UserToken(t, s.JWTSecret(), "dave", nil))
			expectAck(t, "join", d.MustAck("carol", "join", wait, map[string]any{"room": "audit-room"}), true)

			want := map[string]map[string]string{} // envelope id -> headers it must carry
			status, body := s.Do("POST", "/api/message", map[string]any{"userId": "dave", "event": "audited", "data": 1}, nil)
			want[idOf(t, status, body)] = map[string]string{"kind": "deliver", "user": "dave", "event": "audited", "instance": "audit-1"}
			status, body = s.Do("POST", "/api/broadcast", map[string]any{"room": "audit-room", "event": "room-news", "data": 2}, nil)
			want[idOf(t, status, body)] = map[string]string{"kind": "deliver", "room": "audit-room", "event": "room-news", "instance": "audit-1"}
			status, body = s.Do("POST", "/api/broadcast", map[string]any{"event": "all-news", "data": 3}, nil)
			want[idOf(t, status, body)] = map[string]string{"kind": "deliver", "all": "true", "event": "all-news", "instance": "audit-1"}
			sent := expectAck(t, "send_message", d.MustAck("dave", "send_message", wait, map[string]any{"recipient": "carol", "content": "psst"}), true)
			want[sent.ID] = map[string]string{"kind": "deliver", "user": "dave,carol", "event": "message", "instance": "audit-1", "socket": "*"}
			event := expectAck(t, "client event", d.MustAck("carol", "checkout", wait, map[string]any{"cart": 7}), true)
			inbound := map[string]map[string]string{event.ID: {"kind": "client_event", "user": "carol", "event": "checkout", "instance": "audit-1", "socket": "*"}}
			expectData(t, d.WaitEvent("dave", "audited", wait), 1)

			for topic, want := range map[string]map[string]map[string]string{prefix + "outbound": want, prefix + "inbound": inbound} {
				records := awaitRecords(t, k.Brokers, topic, func(rs []kcatRecord) bool {
					for id := range want {
						if findRecord(rs, id) == nil {
							return false
						}
					}
					return true
				})
				for id, headers := range want {
					r := findRecord(records, id)
					if r.Headers["ts"] == "" {
						t.Errorf("%s: record %s has no ts header: %v", topic, id, r.Headers)
					}
					for key, value := range headers {
						if got := r.Headers[key]; value == "*" && got == "" || value != "*" && got != value {
							t.Errorf("%s: record %s header %s = %q, want %q (headers %v)", topic, id, key, got, value, r.Headers)
						}
					}
					var env struct{ ID string }
					if err := json.Unmarshal([]byte(r.Payload), &env); err != nil || env.ID != id {
						t.Errorf("%s: record %s payload %s", topic, id, r.Payload)
					}
				}
			}
		})
	}
}

// TestKafkaBrokerRestartUnderTrafficLosesNothingAccepted stops and restarts
// the Kafka broker while one instance answers a steady stream of REST
// publishes to a user on the other: every message answered 202 reaches the
// user, once; those answered 503 while the broker was away were never
// accepted. The broker stops with a controlled shutdown (SIGTERM), then, in
// a second run, is killed (SIGKILL) and recovers its log on start.
func TestKafkaBrokerRestartUnderTrafficLosesNothingAccepted(t *testing.T) {
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "SIGTERM", true: "SIGKILL"}[kill]
		t.Run(name, func(t *testing.T) { testKafkaRestart(t, kill) })
	}
}

func testKafkaRestart(t *testing.T, kill bool) {
	k := harness.StartKafkaBroker(t)
	_, a, b := startKafkaPair(t, k)
	d := harness.NewDriver(t)
	connect(t, d, a, harness.Modes[0], "sink", harness.UserToken(t, a.JWTSecret(), "sink", nil))
	postMessage(t, b, "sink", "seq", -1) // the path works before the load starts
	expectData(t, d.WaitEvent("sink", "seq", wait), -1)

	var (
		mu       sync.Mutex
		accepted = map[int]bool{}
		refused  = map[int]bool{}
		phase    = 0 // 0 before the stop, 1 broker away, 2 after the restart
		after    = 0 // accepted after the restart
		// slowest503 is the longest a refusal took; unexpected is an
		// answer neither 202 nor 503.
		slowest503 time.Duration
		unexpected string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(3 * time.Minute)
		for seq := 0; seq < 5000 && time.Now().Before(deadline); seq++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			status, body := b.Do("POST", "/api/message", map[string]any{"userId": "sink", "event": "seq", "data": seq}, nil)
			took := time.Since(start)
			mu.Lock()
			switch status {
			case 202:
				accepted[seq] = true
				if phase == 2 {
					after++
				}
			case 503:
				refused[seq] = true
				slowest503 = max(slowest503, took)
			default:
				unexpected = fmt.Sprintf("message %d: %d %s", seq, status, body)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	count := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted), len(refused), after
	}
	eventually(t, time.Minute, func() (bool, string) {
		n, _, _ := count()
		return n >= 100, fmt.Sprintf("%d accepted before the stop", n)
	})
	if kill {
		k.Kill()
	} else {
		k.Stop()
	}
	mu.Lock()
	phase = 1
	mu.Unlock()
	eventually(t, time.Minute, func() (bool, string) {
		_, r, _ := count()
		return r >= 3, fmt.Sprintf("%d refused while the broker is away", r)
	})
	eventually(t, wait, func() (bool, string) {
		status, body := b.Do("GET", "/ready", nil, nil)
		return status == 503, fmt.Sprintf("/ready while the broker is away: %d %s", status, body)
	})
	k.Start()
	mu.Lock()
	phase = 2
	mu.Unlock()
	eventually(t, 2*time.Minute, func() (bool, string) {
		_, _, n := count()
		return n >= 100, fmt.Sprintf("%d accepted after the restart", n)
	})
	close(stop)
	<-done
	if status, body := b.Do("GET", "/ready", nil, nil); status != 200 {
		t.Errorf("/ready after the restart: %d %s", status, body)
	}

	// Read until every accepted message has arrived. A refused message may
	// arrive too (its publish can land after the deadline that refused it),
	// so the count of distinct arrivals is not the stop condition.
	got := map[int]int{}
	mu.Lock()
	pending := len(accepted)
	mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for pending > 0 && time.Now().Before(deadline) {
		ev, err := d.NextEvent("sink", "seq", time.Until(deadline))
		if err != nil {
			break
		}
		var seq int
		decode(t, "seq", ev.Arg(0), &seq)
		if got[seq]++; got[seq] == 1 && accepted[seq] {
			pending--
		}
	}
	lost, duplicated, refusedDelivered := 0, 0, 0
	for seq := range accepted {
		if got[seq] == 0 {
			lost++
		}
	}
	for seq, n := range got {
		if refused[seq] {
			refusedDelivered++
		}
		if n > 1 {
			duplicated++
		}
	}
	t.Logf("%d accepted, %d refused while the broker was away (the slowest 503 in %v), %d lost, %d delivered twice, %d refused yet delivered",
		len(accepted), len(refused), slowest503, lost, duplicated, refusedDelivered)
	if unexpected != "" {
		t.Error(unexpected)
	}
	if slowest503 > 10*time.Second {
		t.Errorf("a refusal took %v; want 503 within the publish deadline", slowest503)
	}
	if lost != 0 {
		t.Errorf("%d of %d accepted messages lost across the broker restart", lost, len(accepted))
	}
	if duplicated != 0 {
		t.Errorf("%d messages delivered more than once", duplicated)
	}
}

// TestAuditMirrorCatchesUpAfterAKafkaOutage: with a memory bus and the audit
// mirror, the mirror's broker stops; messages published meanwhile reach
// their recipient at once, and once the broker is back every one of them is
// on the audit topic.
func TestAuditMirrorCatchesUpAfterAKafkaOutage(t *testing.T) {
	requireKcat(t)
	k := harness.StartKafkaBroker(t)
	prefix := harness.TopicPrefix()
	env := harness.DefaultEnv()
	env["AUDIT_KAFKA_BROKERS"], env["TOPIC_PREFIX"] = k.Brokers, prefix
	s := harness.StartServer(t, env)
	d := harness.NewDriver(t)
	connect(t, d, s, harness.Modes[0], "erin", harness.UserToken(t, s.JWTSecret(), "erin", nil))
	ids := map[string]bool{}
	send := func(seq int) {
		status, body := s.Do("POST", "/api/message", map[string]any{"userId": "erin", "event": "seq", "data": seq}, nil)
		ids[idOf(t, status, body)] = true
		expectData(t, d.WaitEvent("erin", "seq", wait), seq)
	}
	send(0)
	awaitRecords(t, k.Brokers, prefix+"outbound", func(rs []kcatRecord) bool { return len(rs) == 1 })
	k.Stop()
	start := time.Now()
	for seq := 1; seq <= 30; seq++ {
		send(seq)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("30 deliveries took %v while the audit broker was away", took)
	}
	k.Start()
	records := awaitRecords(t, k.Brokers, prefix+"outbound", func(rs []kcatRecord) bool { return len(rs) >= len(ids) })
	for id := range ids {
		if findRecord(records, id) == nil {
			t.Errorf("envelope %s is not on the audit topic", id)
		}
	}
	if len(records) != len(ids) {
		t.Errorf("%d records on the audit topic for %d envelopes", len(records), len(ids))
	}
}

// kcatRecord is one line of `kcat -C -J`, headers as a map.
type kcatRecord struct {
	Partition int
	Offset    int64
	Key       string
	Payload   string
	Headers   map[string]string
}

// readTopic reads every record of topic with `kcat -C -J -e`.
func readTopic(t *testing.T, brokers, topic string) ([]kcatRecord, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", "-C", "-b", brokers, "-t", topic, "-J", "-e", "-q", "-o", "beginning")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kcat -C %s: %v: %s", topic, err, stderr.String())
	}
	var records []kcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var raw struct {
			Partition int
			Offset    int64
			Key       *string
			Payload   *string
			Headers   []string
		}
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			return nil, fmt.Errorf("kcat line %q: %v", sc.Text(), err)
		}
		r := kcatRecord{Partition: raw.Partition, Offset: raw.Offset, Headers: map[string]string{}}
		if raw.Key != nil {
			r.Key = *raw.Key
		}
		if raw.Payload != nil {
			r.Payload = *raw.Payload
		}
		for i := 0; i+1 < len(raw.Headers); i += 2 {
			r.Headers[raw.Headers[i]] = raw.Headers[i+1]
		}
		records = append(records, r)
	}
	return records, nil
}

// awaitRecords reads topic until done says the records are all there.
func awaitRecords(t *testing.T, brokers, topic string, done func([]kcatRecord) bool) []kcatRecord {
	t.Helper()
	requireKcat(t)
	var records []kcatRecord
	var err error
	eventually(t, 60*time.Second, func() (bool, string) {
		records, err = readTopic(t, brokers, topic)
		if err != nil {
			return false, err.Error()
		}
		return done(records), fmt.Sprintf("%d records on %s: %+v", len(records), topic, records)
	})
	return records
}

// findRecord returns the record carrying envelope id, or nil.
func findRecord(records []kcatRecord, id string) *kcatRecord {
	for i := range records {
		if records[i].Headers["_watermill_message_uuid"] == id {
			return &records[i]
		}
	}
	return nil
}

// idOf returns the id of a 202 answer.
func idOf(t *testing.T, status int, body []byte) string {
	t.Helper()
	var a struct{ ID string }
	decode(t, "answer", body, &a)
	if status != 202 || a.ID == "" {
		t.Fatalf("%d %s, want 202 with an id", status, body)
	}
	return a.ID
}

func requireKcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		if harness.InCI() {
			t.Fatal("kcat is not installed (Debian: kcat)")
		}
		t.Skip("kcat is not installed (Debian: kcat)")
	}
}

// readmeLine returns the README's last line containing s.
func readmeLine(t *testing.T, s string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.Contains(l, s) {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("the README has no line with %q", s)
	}
	return line
}
