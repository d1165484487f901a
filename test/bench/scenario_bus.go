package main

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// scenarioBus is the bus consumption scenario; it runs only as redis-bus
// and kafka-bus.
const scenarioBus = "bus"

// busPipeline is the number of XADDs the generator sends per round trip
// (Redis), or of records it hands the producer at once (Kafka).
const busPipeline = 500

// busLoad is the redis-bus and kafka-bus scenario: no clients connect; the
// generator adds total deliver envelopes to the outbound topic itself, as a
// backend may, to users nobody is connected as, and measures how fast each
// instance consumes them: its bus reader and outbound handler run for every
// entry, with nothing to write to a socket. On Redis it XADDs entries with
// just a payload field, pipelined; on Kafka it produces records whose value
// is the envelope, keyed by its user, with franz-go (batched).
func (b *bench) busLoad(ctx context.Context, d *deployment, r *result, logf func(string, ...any), total int) {
	var add func(ctx context.Context, first int) sendResult
	if d.kafka != nil {
		cl, err := newKafkaProducer(d.kafka.brokers, d.outbound())
		if err != nil {
			r.status = "failed: " + err.Error()
			return
		}
		defer cl.Close()
		add = func(ctx context.Context, first int) sendResult { return produceRecords(ctx, cl, first, total) }
	} else {
		opts, err := redis.ParseURL(d.redis.url)
		if err != nil {
			r.status = "failed: " + err.Error()
			return
		}
		rc := redis.NewClient(opts)
		defer rc.Close()
		add = func(ctx context.Context, first int) sendResult { return addEntries(ctx, rc, first, total) }
	}

	r.messages = total
	bus := newBusMeter(ctx, d, d.outbound())
	cpu0, _ := d.cpu()
	broker0, reads0 := d.brokerCPU(), d.redisReads(ctx)
	gen0 := selfCPU()
	machine0, _ := readCPUTimes()
	added := make(chan sendResult, 1)
	go func() { added <- add(ctx, 0) }()

	addDone := false
	want := func() (int64, bool) {
		if !addDone {
			select {
			case r.send = <-added:
				addDone = true
				logf("added %d/%d entries in %.1fs (%d batches of up to %d, %d failed)", r.send.nAccepted, total,
					r.send.end.Sub(r.send.start).Seconds(), r.send.requests, busPipeline, sumCounts(r.send.errs))
			default:
			}
		}
		return int64(r.send.nAccepted), addDone
	}
	if status := bus.waitConsumed(ctx, b.cfg.stall, want, logf); status != "" {
		r.status = status
	}
	cpu1, _ := d.cpu()
	r.serverCPU, r.genCPU, r.brokerCPU = cpu1-cpu0, selfCPU()-gen0, d.brokerCPU()-broker0
	r.redisReads = readsSince(reads0, d.redisReads(ctx))
	if machine1, ok := readCPUTimes(); ok {
		r.machineBusy = busyShare(machine0, machine1)
	}
	if !addDone {
		r.send = <-added // the writer stops with ctx
	}
	bus.record(r, r.send.start)
	for i, n := range r.busConsumed {
		want := int64(r.send.nAccepted)
		r.expected += want
		r.delivered += min(n, want)
		r.lost += max(want-n, 0)
		r.strays += max(n-want, 0)
		logf("instance %d consumed %d/%d entries in %.2fs: %.0f/s", i+1, n, want, r.busSpan[i].Seconds(), r.busRate(i))
	}
	r.elapsed = 0
	for _, s := range r.busSpan {
		r.elapsed = max(r.elapsed, s)
	}
	if r.status == "" || r.status == "ok" {
		b.busBacklog(ctx, d, r, logf, total, add)
	}
}

// busBacklog is the second phase of the bus scenario: the instances are
// paused (SIGSTOP) while the generator adds total more entries, then resumed
// (SIGCONT): how fast each drains that backlog is what it can consume, with
// neither the generator's adding nor its speed in the figure (the live phase
// can never read faster than entries are added).
func (b *bench) busBacklog(ctx context.Context, d *deployment, r *result, logf func(string, ...any), total int, add func(context.Context, int) sendResult) {
	bus := newBusMeter(ctx, d, d.outbound())
	if bus.err != nil {
		r.backlogErr = bus.err.Error()
		return
	}
	if err := d.signal(syscall.SIGSTOP); err != nil {
		r.backlogErr = "pause: " + err.Error()
		return
	}
	sent := add(ctx, total) // ids after the live phase's: none is a duplicate
	cpu0, _ := d.cpu()
	start := time.Now()
	if err := d.signal(syscall.SIGCONT); err != nil {
		r.backlogErr = "resume: " + err.Error()
		return
	}
	if sent.nAccepted < total {
		r.backlogErr = fmt.Sprintf("only %d/%d entries added", sent.nAccepted, total)
	}
	logf("backlog: %d entries added in %.1fs with the instances paused; resumed", sent.nAccepted, sent.end.Sub(sent.start).Seconds())
	want := func() (int64, bool) { return int64(sent.nAccepted), true }
	if status := bus.waitConsumed(ctx, b.cfg.stall, want, logf); status != "" && r.backlogErr == "" {
		r.backlogErr = status
	}
	cpu1, _ := d.cpu()
	var backlog result
	bus.record(&backlog, start)
	r.backlogConsumed, r.backlogSpan, r.backlogCPU = backlog.busConsumed, backlog.busSpan, cpu1-cpu0
	for i, n := range backlog.busConsumed {
		if n != int64(sent.nAccepted) && r.backlogErr == "" {
			r.backlogErr = fmt.Sprintf("instance %d consumed %d of the %d entries of the backlog", i+1, n, sent.nAccepted)
		}
		logf("backlog: instance %d consumed %d/%d entries in %.2fs after resuming: %.0f/s", i+1, n, sent.nAccepted,
			backlog.busSpan[i].Seconds(), backlog.busRate(i))
	}
}

// addEntries XADDs total deliver envelopes (sequence numbers from first on)
// to the outbound stream, busPipeline per round trip, and says which were
// accepted.
func addEntries(ctx context.Context, rc *redis.Client, first, total int) sendResult {
	res := sendResult{accepted: make([]bool, total), errs: map[string]int{}, start: time.Now()}
	var body []byte
	for lo := 0; lo < total && ctx.Err() == nil; lo += busPipeline {
		hi := min(lo+busPipeline, total)
		pipe := rc.Pipeline()
		now := time.Now()
		ts := now.UTC().Format(time.RFC3339Nano)
		for seq := lo; seq < hi; seq++ {
			body = busEnvelope(body[:0], int64(first+seq), now.UnixNano(), ts)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: outboundTopic, Values: []string{"payload", string(body)}})
		}
		res.requests++
		cmds, err := pipe.Exec(ctx)
		for i, c := range cmds {
			if c.Err() == nil {
				res.accepted[lo+i] = true
				res.nAccepted++
			}
		}
		if err != nil {
			res.errs["XADD: "+errorClass(err)]++
		}
	}
	res.end = time.Now()
	return res
}

// busEnvelope appends the deliver envelope of entry seq: to a user nobody
// is connected as, so the instance consumes it and finds no socket.
func busEnvelope(b []byte, seq, t int64, ts string) []byte {
	b = append(b, `{"v":1,"id":"bus-`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","kind":"deliver","to":{"users":["absent-`...)
	b = strconv.AppendInt(b, seq%1000, 10)
	b = append(b, `"]},"event":"`+benchEvent+`","data":{"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `},"ts":"`+ts+`"}`...)
	return b
}

// waitConsumed samples the instances' counters every busSampleEvery until
// each has consumed the entries want reports, ctx ends, the counters cannot
// be read, or, once want's count is final, nothing moved for stall. want is
// asked before each sample: while entries are still being added its count
// is not final. It returns "" when every instance got there, and otherwise
// why it stopped.
func (m *busMeter) waitConsumed(ctx context.Context, stall time.Duration, want func() (int64, bool), logf func(string, ...any)) string {
	tick := time.NewTicker(busSampleEvery)
	defer tick.Stop()
	lastProgress, lastLog, lastTotal := time.Now(), time.Now(), int64(-1)
	for {
		select {
		case <-ctx.Done():
			return statusOf(ctx)
		case <-tick.C:
		}
		n, final := want()
		m.sample(ctx)
		if m.err != nil {
			return "failed: " + m.err.Error()
		}
		var sum int64
		done := final
		for i := range m.last {
			sum += m.consumed(i)
			done = done && m.consumed(i) >= n
		}
		if sum != lastTotal {
			lastTotal, lastProgress = sum, time.Now()
		}
		switch {
		case done:
			return ""
		case final && time.Since(lastProgress) > stall:
			return fmt.Sprintf("stalled (nothing consumed for %s)", stall)
		}
		if time.Since(lastLog) >= 2*time.Second {
			lastLog = time.Now()
			logf("consumed %d so far (all instances)", sum)
		}
	}
}
