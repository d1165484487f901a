package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Scenario names, as given to -scenarios.
const (
	scenarioBroadcast = "broadcast"
	scenarioPerUser   = "per-user"
	// scenarioPerUserBatch is per-user through POST /api/batch: the ratio of
	// its rate to per-user's is what batching buys.
	scenarioPerUserBatch = "per-user-batch"
	scenarioIdle         = "idle"

	// redisPrefix names the two-instance Redis variant of a delivery
	// scenario (redis-broadcast, redis-per-user, redis-per-user-batch) and
	// the bus consumption scenario, redis-bus.
	redisPrefix = "redis-"
	// redisInstances is the number of instances of each server in that
	// variant.
	redisInstances = 2
	// kafkaPrefix names the two-instance Kafka variant (kafka-broadcast,
	// kafka-per-user, kafka-per-user-batch, kafka-bus): web3-socket only,
	// as there is no Node Socket.IO Kafka adapter to compare with.
	kafkaPrefix = "kafka-"
	// kafkaInstances is the number of web3-socket instances in that variant.
	kafkaInstances = 2
	// defaultTopicPrefix is web3-socket's TOPIC_PREFIX default, which the
	// Redis variant keeps; the Kafka variant gives every scenario a fresh
	// one, so that no run reads the topics of another.
	defaultTopicPrefix = "socket."
	// outboundTopic is web3-socket's outbound stream with the default
	// TOPIC_PREFIX: every instance consumes every entry of it.
	outboundTopic = defaultTopicPrefix + "outbound"
)

// Buses a scenario runs on: the embedded one of a single instance, or the
// Redis or Kafka its instances share.
const (
	busMemory = "memory"
	busRedis  = "redis"
	busKafka  = "kafka"
)

// variant splits a scenario name into the scenario it runs and the number
// of instances it runs it on.
func variant(name string) (base string, instances int) {
	base, _, instances = split(name)
	return base, instances
}

// split splits a scenario name into the scenario it runs, the bus its
// instances share and their number.
func split(name string) (base, bus string, instances int) {
	if base, ok := strings.CutPrefix(name, redisPrefix); ok {
		return base, busRedis, redisInstances
	}
	if base, ok := strings.CutPrefix(name, kafkaPrefix); ok {
		return base, busKafka, kafkaInstances
	}
	return name, busMemory, 1
}

// busOf returns the bus the instances of scenario name share.
func busOf(name string) string {
	_, bus, _ := split(name)
	return bus
}

var (
	errScenarioTimeout = errors.New("scenario timeout")
	// joinSettle is the pause between the last connect and the first message,
	// so that a server that joins rooms after answering CONNECT has done so.
	joinSettle = time.Second
	// dupGrace is how long clients keep reading after the last expected
	// delivery, to see duplicates that come late.
	dupGrace = 500 * time.Millisecond
	// busSampleEvery is how often the instances' bus counters are read
	// during a Redis or Kafka scenario: the precision of the bus consumption spans.
	busSampleEvery = 100 * time.Millisecond
)

// result is what one scenario measured on one server.
type result struct {
	scenario, server string
	// status is "ok", or why the scenario ended early: "timed out",
	// "stalled", "interrupted", "failed: …". Counts are then partial.
	status string

	// instances is the number of server processes; brokerCPU is the CPU
	// time of the redis-server or the Kafka broker they shared, when they
	// did and the generator started it.
	instances int
	brokerCPU time.Duration
	// redisReads is how many XREADs and XREADGROUPs the redis-server
	// answered during the measured phase, -1 when unknown (no Redis).
	redisReads int64
	// busConsumed is, per instance, the messages it consumed from the
	// outbound topic during the measured phase (web3-socket's /metrics),
	// and busSpan the time from the first request to the last sample in
	// which its count moved; nil when the server does not count them.
	// busErr says why they are missing when they should be there.
	busConsumed []int64
	busSpan     []time.Duration
	busErr      string
	// backlogConsumed and backlogSpan are the same for the bus scenario's
	// backlog phase (entries added while the instances were paused), from
	// their resumption; backlogCPU is the instances' CPU time in it, and
	// backlogErr says what went wrong in it.
	backlogConsumed []int64
	backlogSpan     []time.Duration
	backlogCPU      time.Duration
	backlogErr      string

	clients, connected int
	connectErrs        map[string]int
	connectTime        time.Duration

	messages int
	send     sendResult

	expected, delivered, lost, dups, strays, unconfirmed int64
	dropped                                              int64
	dropReasons                                          map[string]int
	// elapsed runs from the first request to the last expected delivery.
	elapsed       time.Duration
	p50, p99, max time.Duration

	// serverCPU and genCPU cover the measured phase: publishing and
	// delivering, or for idle connecting and settling.
	serverCPU, genCPU time.Duration
	// machineBusy is the share of all the machine's CPU time that was busy
	// in the measured phase, whatever used it: near 1, the scenario
	// measured what the machine could do, not what the server could.
	machineBusy float64
	// rssBefore and rssAfter frame the idle connections; peakRSS is VmHWM
	// at the end of the scenario.
	rssBefore, rssAfter, peakRSS int64
	settle                       time.Duration
	// authCheck says whether the server refused a token signed with another
	// secret, as both must.
	authCheck string
}

func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.delivered) / r.elapsed.Seconds()
}

// busRate returns the messages per second instance i consumed from the
// outbound topic, from the first request to its last consumption.
func (r *result) busRate(i int) float64 {
	if i >= len(r.busConsumed) || r.busSpan[i] <= 0 {
		return 0
	}
	return float64(r.busConsumed[i]) / r.busSpan[i].Seconds()
}

// backlogRate is instance i's consumption rate in the backlog phase.
func (r *result) backlogRate(i int) float64 {
	if i >= len(r.backlogConsumed) || r.backlogSpan[i] <= 0 {
		return 0
	}
	return float64(r.backlogConsumed[i]) / r.backlogSpan[i].Seconds()
}

func (r *result) cpuPerThousand() time.Duration {
	if r.delivered == 0 {
		return 0
	}
	return time.Duration(float64(r.serverCPU) * 1000 / float64(r.delivered))
}

func (r *result) readsPerThousand() float64 {
	if r.redisReads < 0 || r.send.nAccepted == 0 {
		return 0
	}
	return float64(r.redisReads) * 1000 / float64(r.send.nAccepted)
}

func (r *result) kibPerConn() float64 {
	if r.connected == 0 {
		return 0
	}
	return float64(r.rssAfter-r.rssBefore) / 1024 / float64(r.connected)
}

// bench holds what every scenario run needs.
type bench struct {
	cfg     config
	workDir string
	// kafka is the broker of the Kafka variant, nil when none runs.
	kafka *kafkaBroker
}

// run runs scenario name against a fresh deployment of t (one instance; for
// the Redis variant two sharing a fresh redis-server; for the Kafka variant
// two sharing the run's Kafka broker with topics of their own), bounded by
// cfg.timeout.
func (b *bench) run(ctx context.Context, t target, name string) result {
	base, bus, n := split(name)
	r := result{scenario: name, server: t.name, status: "ok", instances: n, redisReads: -1, connectErrs: map[string]int{}, dropReasons: map[string]int{}}
	if base == scenarioBus && !t.busMetrics {
		r.status = "not measured: the server counts no bus consumption"
		return r
	}
	ctx, cancel := context.WithTimeoutCause(ctx, b.cfg.timeout, errScenarioTimeout)
	defer cancel()

	if bus == busKafka && !t.kafka {
		r.status = "not measured: the server has no Kafka adapter"
		return r
	}
	d, err := t.deploy(ctx, b.workDir, n, bus, b.cfg.redisBin, b.kafka)
	if err != nil {
		r.status = "failed: " + err.Error()
		return r
	}
	defer d.stop()
	logf := func(format string, args ...any) {
		log.Printf("[%s %s] "+format, append([]any{t.name, name}, args...)...)
	}
	logf("%s", d.describe())
	if base != scenarioBus {
		r.authCheck = checkAuth(ctx, d)
	}
	busTopic := ""
	if n > 1 && t.busMetrics {
		busTopic = d.outbound()
	}

	switch base {
	case scenarioBroadcast:
		b.delivery(ctx, d, &r, logf, busTopic, b.cfg.broadcastClients, b.cfg.broadcasts, 0, "/api/broadcast", b.cfg.batch, broadcastItem)
	case scenarioPerUser:
		c := b.cfg.userClients
		b.delivery(ctx, d, &r, logf, busTopic, c, b.cfg.userMessages, c, "/api/message", b.cfg.batch, userItem(c))
	case scenarioPerUserBatch:
		c := b.cfg.userClients
		b.delivery(ctx, d, &r, logf, busTopic, c, b.cfg.batchMessages, c, "/api/message", b.cfg.batchSize, userItem(c))
	case scenarioIdle:
		b.idle(ctx, d.instances[0], &r, logf)
	case scenarioBus:
		b.busLoad(ctx, d, &r, logf, b.cfg.busMessages)
	}
	if r.status == "ok" && ctx.Err() != nil {
		r.status = statusOf(ctx)
	}
	if out, exited := d.exited(); exited {
		r.status = "failed: a server process exited\n" + out
	} else {
		r.peakRSS = d.peakRSS()
	}
	logf("%s", r.status)
	return r
}

func statusOf(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), errScenarioTimeout) {
		return "timed out"
	}
	return "interrupted"
}

// checkAuth connects once to every instance with a token signed with a
// wrong secret and says whether each refused it with connect_error.
func checkAuth(ctx context.Context, d *deployment) string {
	claims := jwt.MapClaims{"sub": "intruder", "exp": time.Now().Add(time.Hour).Unix()}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(randomHex(32)))
	if err != nil {
		panic(err)
	}
	for i, p := range d.instances {
		c, err := connect(ctx, socketURL(p.url), token, 0, &tally{})
		where := ""
		if len(d.instances) > 1 {
			where = fmt.Sprintf(" (instance %d)", i+1)
		}
		switch {
		case err == nil:
			c.close()
			return "ACCEPTED" + where
		case strings.HasPrefix(err.Error(), "connect_error:"):
		default:
			return "error" + where + ": " + err.Error()
		}
	}
	return "refused"
}

// connectClients connects n clients as users u0..u<n-1>, client i to
// instance i mod the number of instances.
func (b *bench) connectClients(ctx context.Context, d *deployment, r *result, logf func(string, ...any), n int, t *tally) []*client {
	tokens := make([]string, n)
	exp := time.Now().Add(2 * time.Hour).Unix()
	for i := range tokens {
		claims := jwt.MapClaims{"sub": "u" + strconv.Itoa(i), "iat": time.Now().Unix(), "exp": exp}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(d.secret())
		if err != nil {
			panic(err) // HS256 with a byte key does not fail
		}
		tokens[i] = s
	}
	r.clients = n
	start := time.Now()
	step := max(n/5, 1)
	clients, errs := connectAll(ctx, d.urls(), tokens, b.cfg.connectConcurrency, t, func(done int) {
		if done%step == 0 {
			logf("connecting: %d/%d", done, n)
		}
	})
	r.connectTime = time.Since(start)
	r.connectErrs = errs
	for _, c := range clients {
		if c != nil {
			r.connected++
		}
	}
	logf("connected %d/%d in %.1fs", r.connected, n, r.connectTime.Seconds())
	for _, line := range topErrors(errs, 5) {
		logf("connect error: %s", line)
	}
	return clients
}

// delivery runs broadcast (stride 0: every client gets every message) or
// per-user (stride n: message seq goes to user seq mod n) with n clients and
// total messages. With several instances the publisher's workers are spread
// over their REST APIs; when busTopic is set, the messages each instance
// consumed from it are counted.
func (b *bench) delivery(ctx context.Context, d *deployment, r *result, logf func(string, ...any), busTopic string, n, total, stride int, path string, batch int, item func([]byte, int64, int64) []byte) {
	slots := total
	if stride > 0 {
		slots = (total + stride - 1) / stride
	}
	t := &tally{slots: slots, stride: stride}
	clients := b.connectClients(ctx, d, r, logf, n, t)
	defer closeAll(clients)
	if ctx.Err() != nil || !sleepCtx(ctx, joinSettle) {
		return
	}

	pub := &publisher{
		bases: d.urls(), apiKey: d.apiKey(), workers: b.cfg.workers, batch: batch,
		path: path, rate: b.cfg.rate, item: item,
	}
	r.messages = total
	var bus *busMeter
	if busTopic != "" {
		bus = newBusMeter(ctx, d, busTopic)
	}
	cpu0, _ := d.cpu()
	broker0, reads0 := d.brokerCPU(), d.redisReads(ctx)
	gen0 := selfCPU()
	machine0, _ := readCPUTimes()
	sent := make(chan sendResult, 1)
	go func() { sent <- pub.run(ctx, total) }()

	var (
		sendDone     bool
		lastProgress = time.Now()
		lastUnique   int64
		lastLog      = time.Now()
		lastSample   time.Time
		tick         = time.NewTicker(20 * time.Millisecond)
	)
	defer tick.Stop()
wait:
	for {
		select {
		case r.send = <-sent:
			sendDone = true
			sent = nil
			r.expected = expected(r.send.accepted, clients, stride)
			logf("published %d/%d messages in %.1fs (%d requests, %d failed)", r.send.nAccepted, total,
				r.send.end.Sub(r.send.start).Seconds(), r.send.requests, sumCounts(r.send.errs))
		case <-tick.C:
		}
		if bus != nil && time.Since(lastSample) >= busSampleEvery {
			lastSample = time.Now()
			bus.sample(ctx)
		}
		u := t.unique.Load()
		if u != lastUnique {
			lastUnique, lastProgress = u, time.Now()
		}
		switch {
		case sendDone && u >= r.expected:
			break wait
		case ctx.Err() != nil:
			r.status = statusOf(ctx)
			break wait
		case sendDone && time.Since(lastProgress) > b.cfg.stall:
			r.status = fmt.Sprintf("stalled (no delivery for %s)", b.cfg.stall)
			break wait
		}
		if time.Since(lastLog) >= 2*time.Second {
			lastLog = time.Now()
			logf("delivered %d so far", u)
		}
	}
	cpu1, _ := d.cpu()
	r.serverCPU, r.genCPU, r.brokerCPU = cpu1-cpu0, selfCPU()-gen0, d.brokerCPU()-broker0
	r.redisReads = readsSince(reads0, d.redisReads(ctx))
	if machine1, ok := readCPUTimes(); ok {
		r.machineBusy = busyShare(machine0, machine1)
	}
	if !sendDone {
		r.send = <-sent // the publisher stops with ctx
		r.expected = expected(r.send.accepted, clients, stride)
	}
	if bus != nil {
		bus.sample(ctx)
		bus.record(r, r.send.start)
	}
	if last := t.lastNS.Load(); last > 0 {
		r.elapsed = time.Unix(0, last).Sub(r.send.start)
	}
	if r.status == "ok" {
		time.Sleep(dupGrace)
	}
	closeAll(clients)

	// Every accepted message is checked at every client that should have
	// got it; a client that never connected expects nothing.
	for seq, ok := range r.send.accepted {
		if !ok {
			continue
		}
		if stride > 0 {
			if c := clients[seq%stride]; c != nil && !c.has(seq/stride) {
				r.lost++
			}
			continue
		}
		for _, c := range clients {
			if c != nil && !c.has(seq) {
				r.lost++
			}
		}
	}
	r.delivered = r.expected - r.lost
	r.unconfirmed = t.unique.Load() - r.delivered
	r.dups, r.strays, r.dropped = t.dups.Load(), t.strays.Load(), t.dropped.Load()
	r.p50, r.p99 = t.lat.quantile(0.50), t.lat.quantile(0.99)
	r.max = time.Duration(t.lat.max.Load()) * time.Microsecond
	for _, c := range clients {
		if c != nil && c.dropReason != "" {
			r.dropReasons[c.dropReason]++
		}
	}
	logf("delivered %d/%d, lost %d, duplicated %d, %.0f/s, p50 %s, p99 %s, server CPU %.2fs",
		r.delivered, r.expected, r.lost, r.dups, r.rate(), r.p50, r.p99, r.serverCPU.Seconds())
	for i := range r.busConsumed {
		logf("instance %d consumed %d messages from %s: %.0f/s", i+1, r.busConsumed[i], busTopic, r.busRate(i))
	}
	if r.busErr != "" {
		logf("bus consumption not measured: %s", r.busErr)
	}
}

// expected counts the deliveries the accepted messages call for.
func expected(accepted []bool, clients []*client, stride int) int64 {
	connected := 0
	for _, c := range clients {
		if c != nil {
			connected++
		}
	}
	var n int64
	for seq, ok := range accepted {
		switch {
		case !ok:
		case stride == 0:
			n += int64(connected)
		case clients[seq%stride] != nil:
			n++
		}
	}
	return n
}

// idle connects cfg.idleClients clients and measures the server's memory
// growth once they have been idle for cfg.idleSettle.
func (b *bench) idle(ctx context.Context, p *process, r *result, logf func(string, ...any)) {
	if !sleepCtx(ctx, 2*time.Second) { // let the fresh server finish starting
		return
	}
	var err error
	if r.rssBefore, _, err = p.memory(); err != nil {
		r.status = "failed: " + err.Error()
		return
	}
	cpu0, _ := p.cpu()
	gen0 := selfCPU()
	t := &tally{}
	clients := b.connectClients(ctx, &deployment{instances: []*process{p}}, r, logf, b.cfg.idleClients, t)
	defer closeAll(clients)
	logf("idle for %s", b.cfg.idleSettle)
	start := time.Now()
	if !sleepCtx(ctx, b.cfg.idleSettle) {
		r.status = statusOf(ctx)
	}
	r.settle = time.Since(start)
	r.rssAfter, _, _ = p.memory()
	cpu1, _ := p.cpu()
	r.serverCPU, r.genCPU = cpu1-cpu0, selfCPU()-gen0
	r.dropped = t.dropped.Load()
	closeAll(clients)
	for _, c := range clients {
		if c != nil && c.dropReason != "" {
			r.dropReasons[c.dropReason]++
		}
	}
	logf("RSS %.1f → %.1f MiB: %.1f KiB per connection; %d dropped", mib(r.rssBefore), mib(r.rssAfter), r.kibPerConn(), r.dropped)
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// selfCPU is the user plus system CPU time of the generator so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
