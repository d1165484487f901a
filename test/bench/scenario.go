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
)

var (
	errScenarioTimeout = errors.New("scenario timeout")
	// joinSettle is the pause between the last connect and the first message,
	// so that a server that joins rooms after answering CONNECT has done so.
	joinSettle = time.Second
	// dupGrace is how long clients keep reading after the last expected
	// delivery, to see duplicates that come late.
	dupGrace = 500 * time.Millisecond
)

// result is what one scenario measured on one server.
type result struct {
	scenario, server string
	// status is "ok", or why the scenario ended early: "timed out",
	// "stalled", "interrupted", "failed: …". Counts are then partial.
	status string

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

func (r *result) cpuPerThousand() time.Duration {
	if r.delivered == 0 {
		return 0
	}
	return time.Duration(float64(r.serverCPU) * 1000 / float64(r.delivered))
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
}

// run runs scenario name against a fresh server of t, bounded by cfg.timeout.
func (b *bench) run(ctx context.Context, t target, name string) result {
	r := result{scenario: name, server: t.name, status: "ok", connectErrs: map[string]int{}, dropReasons: map[string]int{}}
	ctx, cancel := context.WithTimeoutCause(ctx, b.cfg.timeout, errScenarioTimeout)
	defer cancel()

	p, err := t.start(ctx, b.workDir)
	if err != nil {
		r.status = "failed: " + err.Error()
		return r
	}
	defer p.stop()
	logf := func(format string, args ...any) {
		log.Printf("[%s %s] "+format, append([]any{t.name, name}, args...)...)
	}
	logf("server pid %d at %s", p.pid, p.url)
	r.authCheck = checkAuth(ctx, p)

	switch name {
	case scenarioBroadcast:
		b.delivery(ctx, p, &r, logf, b.cfg.broadcastClients, b.cfg.broadcasts, 0, "/api/broadcast", b.cfg.batch, broadcastItem)
	case scenarioPerUser:
		n := b.cfg.userClients
		b.delivery(ctx, p, &r, logf, n, b.cfg.userMessages, n, "/api/message", b.cfg.batch, userItem(n))
	case scenarioPerUserBatch:
		n := b.cfg.userClients
		b.delivery(ctx, p, &r, logf, n, b.cfg.batchMessages, n, "/api/message", b.cfg.batchSize, userItem(n))
	case scenarioIdle:
		b.idle(ctx, p, &r, logf)
	}
	if r.status == "ok" && ctx.Err() != nil {
		r.status = statusOf(ctx)
	}
	if !p.running() {
		r.status = "failed: the server exited\n" + p.out.String()
	} else if _, peak, err := p.memory(); err == nil {
		r.peakRSS = peak
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

// checkAuth connects once with a token signed with a wrong secret and says
// whether the server refused it with connect_error.
func checkAuth(ctx context.Context, p *process) string {
	claims := jwt.MapClaims{"sub": "intruder", "exp": time.Now().Add(time.Hour).Unix()}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(randomHex(32)))
	if err != nil {
		panic(err)
	}
	c, err := connect(ctx, socketURL(p.url), token, 0, &tally{})
	switch {
	case err == nil:
		c.close()
		return "ACCEPTED"
	case strings.HasPrefix(err.Error(), "connect_error:"):
		return "refused"
	default:
		return "error: " + err.Error()
	}
}

// connectClients connects n clients as users u0..u<n-1>.
func (b *bench) connectClients(ctx context.Context, p *process, r *result, logf func(string, ...any), n int, t *tally) []*client {
	tokens := make([]string, n)
	exp := time.Now().Add(2 * time.Hour).Unix()
	for i := range tokens {
		claims := jwt.MapClaims{"sub": "u" + strconv.Itoa(i), "iat": time.Now().Unix(), "exp": exp}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(p.secret)
		if err != nil {
			panic(err) // HS256 with a byte key does not fail
		}
		tokens[i] = s
	}
	r.clients = n
	start := time.Now()
	step := max(n/5, 1)
	clients, errs := connectAll(ctx, p.url, tokens, b.cfg.connectConcurrency, t, func(done int) {
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
// total messages.
func (b *bench) delivery(ctx context.Context, p *process, r *result, logf func(string, ...any), n, total, stride int, path string, batch int, item func([]byte, int64, int64) []byte) {
	slots := total
	if stride > 0 {
		slots = (total + stride - 1) / stride
	}
	t := &tally{slots: slots, stride: stride}
	clients := b.connectClients(ctx, p, r, logf, n, t)
	defer closeAll(clients)
	if ctx.Err() != nil || !sleepCtx(ctx, joinSettle) {
		return
	}

	pub := &publisher{
		base: p.url, apiKey: p.apiKey, workers: b.cfg.workers, batch: batch,
		path: path, rate: b.cfg.rate, item: item,
	}
	r.messages = total
	cpu0, _ := p.cpu()
	gen0 := selfCPU()
	sent := make(chan sendResult, 1)
	go func() { sent <- pub.run(ctx, total) }()

	var (
		sendDone     bool
		lastProgress = time.Now()
		lastUnique   int64
		lastLog      = time.Now()
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
	cpu1, _ := p.cpu()
	r.serverCPU, r.genCPU = cpu1-cpu0, selfCPU()-gen0
	if !sendDone {
		r.send = <-sent // the publisher stops with ctx
		r.expected = expected(r.send.accepted, clients, stride)
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
	clients := b.connectClients(ctx, p, r, logf, b.cfg.idleClients, t)
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
