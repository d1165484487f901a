package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaStartTimeout bounds the start of the broker the generator runs: a
// JVM on a shared 2-core machine formats its storage and starts in 10–30 s.
const kafkaStartTimeout = 120 * time.Second

// kafkaScript is the repository's single-node broker script, relative to
// the root of the module.
const kafkaScript = ".ci/kafka.sh"

// kafkaBroker is the Kafka the kafka-* scenarios share: the brokers of
// KAFKA_BROKERS (-kafka-brokers), or a single KRaft node the generator
// starts on loopback with .ci/kafka.sh and stops at the end of the run.
type kafkaBroker struct {
	brokers []string
	// proc is the broker the generator started; nil for KAFKA_BROKERS.
	proc *process
	// version is the broker's Kafka version, as franz-go guesses it from
	// the API versions the broker supports.
	version string
}

// kafkaAvailable reports whether the Kafka variant can run: brokers are
// given, or java is on PATH and the repository has .ci/kafka.sh.
func kafkaAvailable(c config) (bool, string) {
	if c.kafkaBrokers != "" {
		return true, ""
	}
	if _, err := exec.LookPath(c.javaBin); err != nil {
		return false, fmt.Sprintf("KAFKA_BROKERS is not set and %s is not on PATH to start a broker with %s (Debian: apt-get install default-jre-headless)", c.javaBin, kafkaScript)
	}
	if _, err := os.Stat(filepath.Join(c.repo, kafkaScript)); err != nil {
		return false, fmt.Sprintf("KAFKA_BROKERS is not set and %s is missing: %v", kafkaScript, err)
	}
	return true, ""
}

// setupKafka returns the brokers of -kafka-brokers once they answer, or
// starts a single-node broker with .ci/kafka.sh on free loopback ports (its
// data in workDir). The caller stops it.
func setupKafka(ctx context.Context, c config, workDir string) (*kafkaBroker, error) {
	if c.kafkaBrokers != "" {
		k := &kafkaBroker{brokers: splitList(c.kafkaBrokers)}
		log.Printf("Kafka: the brokers of KAFKA_BROKERS, %s", strings.Join(k.brokers, ","))
		if err := k.waitReady(ctx, nil, 15*time.Second); err != nil {
			return nil, fmt.Errorf("KAFKA_BROKERS=%s: %w", c.kafkaBrokers, err)
		}
		return k, nil
	}
	script, err := filepath.Abs(filepath.Join(c.repo, kafkaScript))
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "KAFKA_JAVA="+c.javaBin)
	// The jars come from Maven Central into ~/.cache/web3-socket on first
	// use; that happens before the start-up clock runs, as in `kafka.sh
	// start`.
	fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	fetch := exec.CommandContext(fetchCtx, script, "fetch")
	fetch.Env, fetch.Stderr = env, os.Stderr
	libs, err := fetch.Output()
	if err != nil {
		return nil, fmt.Errorf("%s fetch: %w", kafkaScript, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ctrl, err := freePort()
	if err != nil {
		return nil, err
	}
	if ctrl == port {
		return nil, errors.New("no two free ports for the Kafka broker")
	}
	dir := filepath.Join(workDir, "kafka")
	log.Printf("Kafka: starting a single-node broker (%s run %s %d %d; jars in %s)", kafkaScript, dir, port, ctrl, strings.TrimSpace(string(libs)))
	// `kafka.sh run` formats the storage and execs the JVM in the
	// foreground: the broker is this child process, stopped with SIGTERM
	// (and killed with the generator, through Pdeathsig).
	cmd := exec.Command(script, "run", dir, strconv.Itoa(port), strconv.Itoa(ctrl))
	cmd.Env, cmd.Dir = env, workDir
	k := &kafkaBroker{brokers: []string{fmt.Sprintf("127.0.0.1:%d", port)}}
	start := time.Now()
	p, err := startProcess(ctx, "Kafka broker", cmd, k.brokers[0], func(p *process, ctx context.Context) error {
		return k.waitReady(ctx, p, kafkaStartTimeout)
	})
	if err != nil {
		return nil, err
	}
	k.proc = p
	log.Printf("Kafka: broker pid %d at %s ready in %.1fs", p.pid, k.brokers[0], time.Since(start).Seconds())
	return k, nil
}

// waitReady waits until the brokers list at least one broker in their
// metadata (p, when set, is the broker process, which must not exit), and
// reads their version.
func (k *kafkaBroker) waitReady(ctx context.Context, p *process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.brokers...), kgo.DialTimeout(time.Second), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var exited <-chan struct{}
	if p != nil {
		exited = p.exited
	}
	last := errors.New("no answer yet")
	for {
		callCtx, cancelCall := context.WithTimeout(ctx, 3*time.Second)
		bs, err := adm.ListBrokers(callCtx)
		if err == nil && len(bs) > 0 {
			k.version = "?"
			if vs, err := adm.ApiVersions(callCtx); err == nil {
				for _, v := range vs.Sorted() {
					if v.Err == nil {
						k.version = strings.TrimPrefix(v.VersionGuess(), "v")
						break
					}
				}
			}
			cancelCall()
			return nil
		}
		cancelCall()
		if err != nil {
			last = err
		}
		select {
		case <-exited:
			return errors.New("the process exited")
		case <-ctx.Done():
			return fmt.Errorf("metadata: %w (last: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stop stops the broker the generator started.
func (k *kafkaBroker) stop() {
	if k != nil && k.proc != nil {
		k.proc.stop()
	}
}

// describe says which broker it is, for the report.
func (k *kafkaBroker) describe() string {
	if k.proc != nil {
		return fmt.Sprintf("a single-node KRaft broker, Apache Kafka %s, started by %s on %s", k.version, kafkaScript, k.brokers[0])
	}
	return fmt.Sprintf("the brokers of KAFKA_BROKERS (%s, Kafka %s)", strings.Join(k.brokers, ","), k.version)
}

// newKafkaProducer returns a franz-go client that produces to topic, with
// its defaults otherwise: acks from all in-sync replicas, idempotent,
// records batched per partition, the key hashed with murmur2 as the Java
// client and web3-socket do.
func newKafkaProducer(brokers []string, topic string) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.DialTimeout(time.Second),
		kgo.RecordDeliveryTimeout(requestTimeout),
	)
}

// produceRecords produces total deliver envelopes to the client's topic,
// as a backend may: the envelope as the record value, keyed by its user.
// Records are produced asynchronously (the client batches them and bounds
// what it buffers) and are accepted when the broker has acknowledged them.
// It returns once every record's promise has run: kgo calls each one,
// within the record delivery timeout at the latest.
func produceRecords(ctx context.Context, cl *kgo.Client, first, total int) sendResult {
	res := sendResult{accepted: make([]bool, total), errs: map[string]int{}, start: time.Now()}
	var (
		mu      sync.Mutex
		pending sync.WaitGroup
	)
	for lo := 0; lo < total && ctx.Err() == nil; lo += busPipeline {
		hi := min(lo+busPipeline, total)
		now := time.Now()
		ts := now.UTC().Format(time.RFC3339Nano)
		for seq := lo; seq < hi; seq++ {
			rec := &kgo.Record{
				Key:   strconv.AppendInt([]byte("absent-"), int64((first+seq)%1000), 10),
				Value: busEnvelope(nil, int64(first+seq), now.UnixNano(), ts),
			}
			pending.Add(1)
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				defer pending.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.errs["produce: "+errorClass(err)]++
					return
				}
				res.accepted[seq] = true
				res.nAccepted++
			})
		}
		res.requests++
	}
	if err := cl.Flush(ctx); err != nil {
		mu.Lock()
		res.errs["flush: "+errorClass(err)]++
		mu.Unlock()
	}
	pending.Wait()
	res.end = time.Now()
	return res
}
