package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// deployment is what one scenario runs against: one instance of a server
// with its embedded bus, several instances sharing a fresh redis-server, or
// several sharing the run's Kafka broker with topics of their own. Every
// instance has the same JWT secret and API key.
type deployment struct {
	instances []*process
	// redis is the redis-server the deployment started, nil without one.
	redis *process
	// kafka is the Kafka broker of a kafka-* deployment (shared by the run,
	// not stopped with the deployment), nil otherwise.
	kafka *kafkaBroker
	// topicPrefix is the instances' TOPIC_PREFIX.
	topicPrefix string
}

// deploy starts n instances of t on bus. With busRedis it first starts a
// fresh redis-server (redisBin) that they share, so no run inherits the
// streams of another; with busKafka they share kafka with a fresh
// TOPIC_PREFIX, for the same reason.
func (t target) deploy(ctx context.Context, workDir string, n int, bus, redisBin string, kafka *kafkaBroker) (*deployment, error) {
	d := &deployment{topicPrefix: defaultTopicPrefix}
	secret, apiKey := randomHex(32), randomHex(24)
	var redisURL, kafkaBrokers string
	switch bus {
	case busRedis:
		r, err := startRedis(ctx, redisBin, workDir)
		if err != nil {
			return nil, err
		}
		d.redis, redisURL = r, r.url
	case busKafka:
		if kafka == nil {
			return nil, errors.New("no Kafka broker")
		}
		d.kafka, kafkaBrokers = kafka, strings.Join(kafka.brokers, ",")
		d.topicPrefix = "bench-" + randomHex(4) + "."
	}
	for i := range n {
		p, err := t.startInstance(ctx, workDir, instance{
			secret: secret, apiKey: apiKey, redisURL: redisURL,
			kafkaBrokers: kafkaBrokers, topicPrefix: d.topicPrefix, id: string(rune('a' + i)),
		})
		if err != nil {
			d.stop()
			return nil, err
		}
		d.instances = append(d.instances, p)
	}
	return d, nil
}

// urls returns the base URL of every instance.
func (d *deployment) urls() []string {
	out := make([]string, len(d.instances))
	for i, p := range d.instances {
		out[i] = p.url
	}
	return out
}

func (d *deployment) secret() []byte { return d.instances[0].secret }
func (d *deployment) apiKey() string { return d.instances[0].apiKey }

// outbound is the instances' outbound topic.
func (d *deployment) outbound() string { return d.topicPrefix + "outbound" }

// describe names the instances by pid and URL, for the log.
func (d *deployment) describe() string {
	var parts []string
	for _, p := range d.instances {
		parts = append(parts, fmt.Sprintf("pid %d at %s", p.pid, p.url))
	}
	if d.redis != nil {
		parts = append(parts, fmt.Sprintf("redis-server pid %d at %s", d.redis.pid, d.redis.url))
	}
	if d.kafka != nil {
		parts = append(parts, fmt.Sprintf("Kafka %s, topics %s*", strings.Join(d.kafka.brokers, ","), d.topicPrefix))
	}
	return strings.Join(parts, ", ")
}

// stop stops the instances, then Redis.
func (d *deployment) stop() {
	for _, p := range d.instances {
		p.stop()
	}
	if d.redis != nil {
		d.redis.stop()
	}
}

// exited returns the output of the first process that has exited, and
// whether one has.
func (d *deployment) exited() (string, bool) {
	for _, p := range d.instances {
		if !p.running() {
			return p.out.String(), true
		}
	}
	if d.redis != nil && !d.redis.running() {
		return "redis-server: " + d.redis.out.String(), true
	}
	if d.kafka != nil && d.kafka.proc != nil && !d.kafka.proc.running() {
		return "Kafka broker: " + d.kafka.proc.out.String(), true
	}
	return "", false
}

// cpu returns the CPU time used so far by the instances together.
// signal sends sig to every instance (SIGSTOP pauses them, SIGCONT resumes
// them).
func (d *deployment) signal(sig os.Signal) error {
	for _, p := range d.instances {
		if err := p.cmd.Process.Signal(sig); err != nil {
			return err
		}
	}
	return nil
}

func (d *deployment) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, p := range d.instances {
		c, err := p.cpu()
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// brokerCPU returns the CPU time used so far by the redis-server or the
// Kafka broker the generator started, or 0.
func (d *deployment) brokerCPU() time.Duration {
	p := d.redis
	if d.kafka != nil {
		p = d.kafka.proc
	}
	if p == nil {
		return 0
	}
	c, _ := p.cpu()
	return c
}

// peakRSS returns the sum of the instances' peak RSS.
func (d *deployment) peakRSS() int64 {
	var sum int64
	for _, p := range d.instances {
		if _, peak, err := p.memory(); err == nil {
			sum += peak
		}
	}
	return sum
}

// consumed returns, per instance, the messages it has consumed from topic
// so far, read from its GET /metrics (bus_messages_consumed_total).
func (d *deployment) consumed(ctx context.Context, topic string) ([]int64, error) {
	out := make([]int64, len(d.instances))
	for i, p := range d.instances {
		n, err := scrapeCounter(ctx, p.url+"/metrics", `bus_messages_consumed_total{topic="`+topic+`"}`)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// scrapeClient reads the instances' metrics over kept-alive connections.
var scrapeClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}}

// scrapeCounter reads one sample of the Prometheus text format at url: the
// line that starts with series (metric name and labels as exposed). A
// series not exposed yet counts 0. The answer is asked for uncompressed:
// sampled ten times a second, compressing it would be a load of its own on
// the server measured.
func scrapeCounter(ctx context.Context, url, series string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end, so the connection is kept
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("GET %s: %s: %w", url, series, err)
		}
		return int64(f), nil
	}
	return 0, sc.Err()
}

// startRedis starts redis-server on a free loopback port, without
// persistence (as test/harness does), and returns once it answers PING.
func startRedis(ctx context.Context, bin, workDir string) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", workDir, "--protected-mode", "no")
	cmd.Dir = workDir
	return startProcess(ctx, "redis-server", cmd, fmt.Sprintf("redis://127.0.0.1:%d/0", port), func(p *process, ctx context.Context) error {
		return waitPing(ctx, p, fmt.Sprintf("127.0.0.1:%d", port))
	})
}

// waitPing waits until the Redis at addr answers PING.
func waitPing(ctx context.Context, p *process, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if c, err := (&net.Dialer{Timeout: 200 * time.Millisecond}).DialContext(ctx, "tcp", addr); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return nil
			}
		}
		select {
		case <-p.exited:
			return errors.New("the process exited")
		case <-ctx.Done():
			return fmt.Errorf("PING %s: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// busMeter follows how many messages each instance of a deployment has
// consumed from a topic, sampled from /metrics, and when each count last
// moved.
type busMeter struct {
	d     *deployment
	topic string
	// base is each instance's count when the meter started.
	base, last []int64
	moved      []time.Time
	err        error
}

// newBusMeter reads the instances' counts now.
func newBusMeter(ctx context.Context, d *deployment, topic string) *busMeter {
	m := &busMeter{d: d, topic: topic}
	m.base, m.err = d.consumed(ctx, topic)
	if m.err == nil {
		m.last = slices.Clone(m.base)
		m.moved = make([]time.Time, len(m.base))
	}
	return m
}

// sample reads the counts again.
func (m *busMeter) sample(ctx context.Context) {
	if m.err != nil {
		return
	}
	now, err := m.d.consumed(ctx, m.topic)
	if err != nil {
		m.err = err
		return
	}
	at := time.Now()
	for i, n := range now {
		if n != m.last[i] {
			m.last[i], m.moved[i] = n, at
		}
	}
}

// consumed returns the messages instance i consumed since the meter started.
func (m *busMeter) consumed(i int) int64 { return m.last[i] - m.base[i] }

// record stores the counts and spans in r: from start to the sample where
// each instance's count last moved.
func (m *busMeter) record(r *result, start time.Time) {
	if m.err != nil {
		r.busErr = m.err.Error()
		return
	}
	r.busConsumed, r.busSpan = nil, nil
	for i := range m.last {
		r.busConsumed = append(r.busConsumed, m.consumed(i))
		span := time.Duration(0)
		if !m.moved[i].IsZero() {
			span = m.moved[i].Sub(start)
		}
		r.busSpan = append(r.busSpan, span)
	}
}
