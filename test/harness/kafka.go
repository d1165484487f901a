package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka is a Kafka cluster a test talks to.
type Kafka struct {
	// Brokers is the bootstrap list, host:port[,host:port].
	Brokers string
	// What says which cluster this is, for test logs.
	What string

	t testing.TB
	// A dedicated cluster (StartKafkaBroker) can be stopped and started.
	port, ctrlPort int
	dir            string
	real           bool
	fake           *kfake.Cluster
	cmd            *exec.Cmd
	done           chan struct{}
	logs           *Buffer
	started        int // "started" lines seen in logs so far
}

var kafkaAnnounce sync.Once

// StartKafka returns the cluster the Kafka suites share: the broker named by
// KAFKA_BROKERS when it is set (the Apache Kafka broker .ci/run starts), else
// an in-process kfake cluster for this test, closed in t.Cleanup. In CI,
// KAFKA_BROKERS is required: the suites must run against a real broker.
// Tests sharing a broker keep apart with their own topic names (TopicPrefix).
func StartKafka(t testing.TB) *Kafka {
	t.Helper()
	if brokers := os.Getenv("KAFKA_BROKERS"); brokers != "" {
		kafkaAnnounce.Do(func() {
			fmt.Fprintf(os.Stderr, "harness: Kafka suites use the broker at %s (KAFKA_BROKERS)\n", brokers)
		})
		k := &Kafka{Brokers: brokers, What: "broker " + brokers + " (KAFKA_BROKERS)", t: t, real: true}
		k.waitReady(30 * time.Second)
		return k
	}
	if InCI() {
		t.Fatal("harness: KAFKA_BROKERS is not set: in CI the Kafka suites run against the broker .ci/run starts")
	}
	kafkaAnnounce.Do(func() {
		fmt.Fprintln(os.Stderr, "harness: Kafka suites use an in-process kfake cluster (set KAFKA_BROKERS for a real broker)")
	})
	k := &Kafka{What: "in-process kfake", t: t}
	k.startFake()
	t.Cleanup(k.Stop)
	return k
}

// StartKafkaBroker starts a Kafka cluster of the test's own, on free loopback
// ports, that the test may stop and start again (its data survives): an
// Apache Kafka broker process run by .ci/kafka.sh from the jars it caches
// (Java 17+ and, for the first fetch, mvn), else — outside CI, without
// Java — a kfake cluster persisting to disk with every write synced.
func StartKafkaBroker(t testing.TB) *Kafka {
	t.Helper()
	k := &Kafka{t: t, dir: t.TempDir(), logs: &Buffer{}}
	k.port, k.ctrlPort = FreePort(t), FreePort(t)
	k.Brokers = fmt.Sprintf("127.0.0.1:%d", k.port)
	if _, err := exec.LookPath("java"); err == nil || InCI() {
		k.real = true
		k.What = "Apache Kafka broker process at " + k.Brokers
	} else {
		k.What = "persistent kfake at " + k.Brokers + " (java is not installed)"
	}
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() && k.real {
			t.Logf("kafka broker output:\n%s", k.logs.String())
		}
	})
	k.Start()
	return k
}

// Start starts the dedicated cluster (again, after Stop) on the same ports
// and data, and returns once it answers.
func (k *Kafka) Start() {
	k.t.Helper()
	if !k.real {
		k.startFake()
		return
	}
	script := filepath.Join(ModuleRoot(k.t), ".ci", "kafka.sh")
	k.cmd = exec.Command("bash", script, "run", k.dir, strconv.Itoa(k.port), strconv.Itoa(k.ctrlPort))
	k.cmd.Stdout, k.cmd.Stderr = k.logs, k.logs
	k.cmd.WaitDelay = 2 * time.Second
	if err := k.cmd.Start(); err != nil {
		k.t.Fatalf("harness: start %s: %v", script, err)
	}
	done := make(chan struct{})
	k.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(k.cmd)
	k.started++
	// The first start may fetch the jars (mvn) and format the storage.
	deadline := time.Now().Add(3 * time.Minute)
	for strings.Count(k.logs.String(), "Kafka Server started") < k.started {
		select {
		case <-done:
			k.t.Fatalf("harness: the Kafka broker exited during start-up:\n%s", k.logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("harness: the Kafka broker did not start within 3 minutes:\n%s", k.logs.String())
		}
	}
	k.waitReady(30 * time.Second)
}

func (k *Kafka) startFake() {
	k.t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1)}
	if k.port != 0 {
		opts = append(opts, kfake.Ports(k.port), kfake.DataDir(k.dir), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		k.t.Fatalf("harness: start kfake: %v", err)
	}
	k.fake = c
	k.Brokers = strings.Join(c.ListenAddrs(), ",")
	k.waitReady(10 * time.Second)
}

// Kill stops the broker process with SIGKILL: no controlled shutdown, the
// next start recovers its log. A kfake cluster is closed as by Stop.
func (k *Kafka) Kill() {
	if k.fake == nil && k.cmd != nil && k.cmd.Process != nil {
		select {
		case <-k.done:
		default:
			_ = k.cmd.Process.Kill()
			<-k.done
		}
	}
	k.Stop()
}

// Stop stops the cluster: the broker process with SIGTERM (a controlled
// shutdown), or the kfake cluster.
func (k *Kafka) Stop() {
	if k.fake != nil {
		k.fake.Close()
		k.fake = nil
		return
	}
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	select {
	case <-k.done:
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(30 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
}

// waitReady waits until the cluster answers a metadata request.
func (k *Kafka) waitReady(within time.Duration) {
	k.t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if last = k.ping(); last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	k.t.Fatalf("harness: Kafka at %s does not answer: %v", k.Brokers, last)
}

func (k *Kafka) ping() error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx)
}

// Client returns a franz-go client of the cluster (a backend's client); the
// caller closes it.
func (k *Kafka) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(k.Brokers, ",")...),
		kgo.DialTimeout(time.Second), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
}

// TopicPrefix returns a TOPIC_PREFIX no other test uses, so that tests can
// share a broker.
func TopicPrefix() string { return "it-" + RandomSecret(4) + "." }
