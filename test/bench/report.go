package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// environment describes the machine and the software of a run.
type environment struct {
	started     time.Time
	command     string
	cpus        int
	cpuModel    string
	memory      string
	kernel      string
	nofile      uint64
	goVersion   string
	nodeVersion string
	socketIO    string
	web3Version string
	// redis is the redis-server version; redisAdapter and redisClient the
	// npm packages of the Node side of the Redis variants.
	redis, redisAdapter, redisClient string
	// kafka describes the broker of the Kafka variants.
	kafka string
}

// row is one line of a scenario table: a label and how to show one result.
// ratio, when set, gives the number whose web3-socket / Node ratio is shown.
type row struct {
	label string
	value func(r *result) string
	ratio func(r *result) float64
}

func printReport(w io.Writer, env environment, cfg config, targets []target, scenarios []string, results map[string]map[string]*result) {
	fmt.Fprintf(w, "web3-socket vs Node Socket.IO 4 — make bench, %s\n", env.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "command:  %s\n", env.command)
	fmt.Fprintf(w, "machine:  %d CPUs (%s), %s RAM, Linux %s, RLIMIT_NOFILE %d\n", env.cpus, env.cpuModel, env.memory, env.kernel, env.nofile)
	fmt.Fprintf(w, "software: %s; node %s with socket.io %s; web3-socket %s\n",
		env.goVersion, env.nodeVersion, env.socketIO, env.web3Version)
	fmt.Fprintf(w, "setup:    every scenario starts a fresh server on 127.0.0.1; clients and server share the machine;\n")
	fmt.Fprintf(w, "          one instance (web3-socket with BUS=memory), except the redis-* and kafka-* scenarios\n")
	fmt.Fprintf(w, "          client: Go, gorilla/websocket, Engine.IO v4 over WebSocket only; servers with their default heartbeat\n")
	fmt.Fprintf(w, "          per-scenario timeout %s, stall limit %s\n", cfg.timeout, cfg.stall)
	if usesRedis(scenarios) {
		fmt.Fprintf(w, "redis-*:  %d instances of each server sharing a fresh redis-server %s (no persistence) on 127.0.0.1:\n", redisInstances, env.redis)
		fmt.Fprintf(w, "          web3-socket BUS=redis (default settings, REDIS_STREAM_MAXLEN %s); node: @socket.io/redis-streams-adapter %s\n", count(streamMaxLen), env.redisAdapter)
		fmt.Fprintf(w, "          with redis (node-redis) %s, maxLen %s, other options default; client i connects to instance i mod %d,\n", env.redisClient, count(streamMaxLen), redisInstances)
		fmt.Fprintf(w, "          publisher worker w posts to instance w mod %d; server CPU and peak RSS are summed over the instances\n", redisInstances)
	}
	if usesKafka(scenarios) {
		fmt.Fprintf(w, "kafka-*:  web3-socket only (there is no Node Socket.IO Kafka adapter to compare with): %d instances with BUS=kafka\n", kafkaInstances)
		fmt.Fprintf(w, "          (default settings: KAFKA_PARTITIONS 6, acks=all) and a fresh TOPIC_PREFIX per scenario, sharing\n")
		fmt.Fprintf(w, "          %s;\n", env.kafka)
		fmt.Fprintf(w, "          clients and publishes spread over the instances as in redis-*; server CPU and peak RSS summed\n")
	}

	for _, sc := range scenarios {
		fmt.Fprintln(w)
		targets := targets
		if base, _ := variant(sc); base == scenarioBus {
			// Only a server that counts its bus consumption has a column.
			targets = slices.DeleteFunc(slices.Clone(targets), func(t target) bool { return !t.busMetrics })
		}
		if busOf(sc) == busKafka {
			// Only a server with a Kafka adapter has a column.
			targets = slices.DeleteFunc(slices.Clone(targets), func(t target) bool { return !t.kafka })
		}
		both := len(targets) == 2
		var rs []*result
		for _, t := range targets {
			rs = append(rs, results[sc][t.key])
		}
		fmt.Fprintln(w, scenarioTitle(sc, cfg))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		header := "\t"
		for _, t := range targets {
			header += t.name + "\t"
		}
		if both {
			header += "web3/node\t"
		}
		fmt.Fprintln(tw, header)
		rows := rowsOf(sc)
		width := 0
		for _, rw := range rows {
			width = max(width, len([]rune(rw.label)))
		}
		for _, rw := range rows {
			// Labels are padded here so that they read left-aligned while
			// the numbers are right-aligned.
			line := fmt.Sprintf("%-*s\t", width, rw.label)
			for _, r := range rs {
				line += rw.value(r) + "\t"
			}
			if both {
				line += ratio(rw, rs[0], rs[1]) + "\t"
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
		for _, r := range rs {
			notes := notesOf(r)
			for _, n := range notes {
				fmt.Fprintf(w, "  %s: %s\n", r.server, n)
			}
		}
	}
	for _, prefix := range []string{"", redisPrefix, kafkaPrefix} {
		for _, t := range targets {
			single, batched := results[prefix+scenarioPerUser][t.key], results[prefix+scenarioPerUserBatch][t.key]
			if single != nil && batched != nil && single.rate() > 0 {
				where := ""
				switch prefix {
				case redisPrefix:
					where = fmt.Sprintf(" (%d instances, Redis)", redisInstances)
				case kafkaPrefix:
					where = fmt.Sprintf(" (%d instances, Kafka)", kafkaInstances)
				}
				fmt.Fprintf(w, "\n%s%s: POST /api/batch delivers %.1f× the messages/s of one message per call (%.0f vs %.0f)",
					t.name, where, batched.rate()/single.rate(), batched.rate(), single.rate())
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios are web3-socket / Node: above 1 is better for deliveries/s, below 1 is better for latency, CPU and memory.")
	fmt.Fprintln(w, "Machine CPU busy is the busy share of all CPUs' time in the measured phase (/proc/stat), by every process: near")
	fmt.Fprintln(w, "100% the scenario measured what the machine could do, shared by generator, servers and broker, not what a server could.")
	printRedisSummary(w, results)
	printKafkaSummary(w, results)
}

// printKafkaSummary sets the Kafka variant of web3-socket against the same
// scenario on one instance with the memory bus and on two instances with
// Redis, when those ran in the same command.
func printKafkaSummary(w io.Writer, results map[string]map[string]*result) {
	var lines []string
	for _, sc := range []string{scenarioBroadcast, scenarioPerUser, scenarioPerUserBatch, scenarioBus} {
		kafka := results[kafkaPrefix+sc]["web3"]
		if kafka == nil {
			continue
		}
		memory, redis := results[sc]["web3"], results[redisPrefix+sc]["web3"]
		if sc == scenarioBus {
			line := fmt.Sprintf("  %-22s bus consumed per instance (msg/s), draining a backlog: %s; live: %s; not consumed %s",
				kafkaPrefix+sc+":", backlogRates(kafka, ", "), busRates(kafka, ", "), count(kafka.lost))
			if redis != nil && meanBusRate(redis) > 0 {
				line += fmt.Sprintf("\n  %-22s redis-bus: %s, live %s; kafka/redis %.2f× draining, %.2f× live (mean of the instances)", "",
					backlogRates(redis, ", "), busRates(redis, ", "), meanBacklogRate(kafka)/meanBacklogRate(redis), meanBusRate(kafka)/meanBusRate(redis))
			}
			lines = append(lines, line)
			continue
		}
		what := "deliveries/s"
		if sc != scenarioBroadcast {
			what = "messages/s"
		}
		line := fmt.Sprintf("  %-22s %s %s; lost %s, duplicated %s", kafkaPrefix+sc+":", what, count(int64(kafka.rate())), count(kafka.lost), count(kafka.dups))
		var vs []string
		for _, o := range []struct {
			bus, where string
			r          *result
		}{{busMemory, "1 instance", memory}, {busRedis, fmt.Sprintf("%d instances", redisInstances), redis}} {
			if o.r != nil && o.r.rate() > 0 {
				vs = append(vs, fmt.Sprintf("%s (%s) %s: kafka/%s %.2f×", o.bus, o.where, count(int64(o.r.rate())), o.bus, kafka.rate()/o.r.rate()))
			}
		}
		if kafka.p99 > 0 && redis != nil && redis.p99 > 0 {
			vs = append(vs, fmt.Sprintf("p99 %s vs redis %s ms", millis(kafka.p99), millis(redis.p99)))
		}
		if len(vs) > 0 {
			line += "\n  " + strings.Repeat(" ", 22) + " " + strings.Join(vs, "; ")
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Kafka variant (%d web3-socket instances, BUS=kafka), against web3-socket in the same run:\n", kafkaInstances)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, "  above 1 is better for rates; bus consumed as in the Redis variant, from bus_messages_consumed_total of the")
	fmt.Fprintln(w, "  scenario's outbound topic")
}

// meanBusRate is the mean of the instances' bus consumption rates, and
// meanBacklogRate that of their backlog drain rates.
func meanBusRate(r *result) float64     { return mean(len(r.busConsumed), r.busRate) }
func meanBacklogRate(r *result) float64 { return mean(len(r.backlogConsumed), r.backlogRate) }

// mean is the mean of rate(i) over n instances, 0 for none.
func mean(n int, rate func(i int) float64) float64 {
	if n == 0 {
		return 0
	}
	var sum float64
	for i := range n {
		sum += rate(i)
	}
	return sum / float64(n)
}

// printRedisSummary sets the Redis variant against the targets of issue
// #4: broadcast deliveries/s and per-user messages/s each at least 2× the
// Node setup, and bus consumption of at least 100k messages/s per instance.
func printRedisSummary(w io.Writer, results map[string]map[string]*result) {
	var lines []string
	for _, sc := range []string{scenarioBroadcast, scenarioPerUser, scenarioPerUserBatch, scenarioBus} {
		web3, node := results[redisPrefix+sc]["web3"], results[redisPrefix+sc]["node"]
		if web3 == nil {
			continue
		}
		if sc == scenarioBus {
			lines = append(lines, fmt.Sprintf("  %-22s bus consumed per web3-socket instance (msg/s), draining a backlog: %s (target ≥ 100,000);\n"+
				"  %-22s live, while the generator adds: %s; not consumed %s",
				redisPrefix+sc+":", backlogRates(web3, ", "), "", busRates(web3, ", "), count(web3.lost)))
			continue
		}
		what := "deliveries/s"
		if sc != scenarioBroadcast {
			what = "messages/s"
		}
		line := fmt.Sprintf("  %-22s %s web3-socket %s", redisPrefix+sc+":", what, count(int64(web3.rate())))
		if node != nil && node.rate() > 0 {
			line += fmt.Sprintf(", node %s: %.2f× (target ≥ 2×)", count(int64(node.rate())), web3.rate()/node.rate())
		}
		line += fmt.Sprintf("; lost %s, duplicated %s", count(web3.lost), count(web3.dups))
		if node != nil {
			line += fmt.Sprintf(" (node: %s, %s)", count(node.lost), count(node.dups))
		}
		if len(web3.busConsumed) > 0 {
			line += "\n  " + strings.Repeat(" ", 22) + " bus consumed per web3-socket instance (msg/s): " + busRates(web3, ", ")
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Redis variant (%d instances each), issue #4 targets:\n", redisInstances)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, "  bus consumed = bus_messages_consumed_total{topic=\""+outboundTopic+"\"} delta of each instance (GET /metrics, sampled every")
	fmt.Fprintf(w, "  %s) / (first request → the sample where its count last moved); in the delivery scenarios it is bounded by the\n", busSampleEvery)
	fmt.Fprintln(w, "  publishing rate, in redis-bus by what the instance can consume; \"draining a backlog\" counts from resuming the")
	fmt.Fprintln(w, "  instances, paused (SIGSTOP) while the generator added the entries, to the sample where the count last moved")
}

// busRates formats the bus consumption rate of each instance, and
// backlogRates the rate at which each drained the bus scenario's backlog.
func busRates(r *result, sep string) string {
	return rates(len(r.busConsumed), r.busRate, sep)
}
func backlogRates(r *result, sep string) string {
	return rates(len(r.backlogConsumed), r.backlogRate, sep)
}

func rates(n int, rate func(i int) float64, sep string) string {
	if n == 0 {
		return "–"
	}
	per := make([]string, n)
	for i := range n {
		per[i] = count(int64(rate(i)))
	}
	return strings.Join(per, sep)
}

// joinEach formats each instance's value, joined with " · ".
func joinEach[T any](values []T, format func(T) string) string {
	per := make([]string, len(values))
	for i, v := range values {
		per[i] = format(v)
	}
	return strings.Join(per, " · ")
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func scenarioTitle(sc string, cfg config) string {
	sc, bus, n := split(sc)
	title := scenarioTitleOf(sc, bus, cfg)
	switch bus {
	case busRedis:
		title = redisPrefix + strings.TrimPrefix(title, "== ")
		title = "== " + title + fmt.Sprintf("\n   %d instances of each server sharing one redis-server; clients and publishes spread over the instances", n)
	case busKafka:
		title = kafkaPrefix + strings.TrimPrefix(title, "== ")
		title = "== " + title + fmt.Sprintf("\n   %d web3-socket instances sharing one Kafka (fresh topics); clients and publishes spread over the instances", n)
	}
	return title
}

func scenarioTitleOf(sc, bus string, cfg config) string {
	path, batch := "/api/broadcast", cfg.batch
	switch sc {
	case scenarioPerUser:
		path = "/api/message"
	case scenarioPerUserBatch:
		path, batch = "/api/message", cfg.batchSize
	}
	method := (&publisher{workers: cfg.workers, batch: batch, rate: cfg.rate, path: path}).method()
	if cfg.rate == 0 && sc != scenarioIdle {
		method += "\n   unpaced: latency includes time spent queued in the server; a server that delays its REST answer" +
			"\n   until it has written to the sockets slows the publisher down instead (compare latency at a fixed -rate)"
	}
	switch sc {
	case scenarioBus:
		if bus == busKafka {
			return fmt.Sprintf("== bus: no clients; the generator produces %s deliver envelopes to <prefix>outbound with franz-go (the\n"+
				"   envelope as the record value, keyed by its user, asynchronous and batched by the client, acks=all), as a backend\n"+
				"   may, to users nobody is connected as: each instance's consumer and outbound handler run for every record,\n"+
				"   with nothing to write",
				count(int64(cfg.busMessages)))
		}
		return fmt.Sprintf("== bus: no clients; the generator XADDs %s deliver envelopes to %s (a payload field, as a backend may),\n"+
			"   %d per pipelined round trip, to users nobody is connected as: each instance's reader and outbound handler run\n"+
			"   for every entry, with nothing to write; web3-socket only (Node's adapter counts nothing)",
			count(int64(cfg.busMessages)), outboundTopic, busPipeline)
	case scenarioBroadcast:
		return fmt.Sprintf("== broadcast: %s clients × %s broadcasts to everyone = %s deliveries\n   via %s",
			count(int64(cfg.broadcastClients)), count(int64(cfg.broadcasts)), count(int64(cfg.broadcastClients)*int64(cfg.broadcasts)), method)
	case scenarioPerUser:
		return fmt.Sprintf("== per-user: %s clients (users u0…u%d); %s messages, each to one user, round-robin\n   via %s",
			count(int64(cfg.userClients)), cfg.userClients-1, count(int64(cfg.userMessages)), method)
	case scenarioPerUserBatch:
		return fmt.Sprintf("== per-user-batch: as per-user, %s messages, in batches\n   via %s",
			count(int64(cfg.batchMessages)), method)
	default:
		return fmt.Sprintf("== idle: %s clients connected (%d at a time), then idle for %s\n   KiB per connection = (VmRSS after idling − VmRSS before connecting) / connected clients",
			count(int64(cfg.idleClients)), cfg.connectConcurrency, cfg.idleSettle)
	}
}

func rowsOf(sc string) []row {
	sc, bus, n := split(sc)
	// The broker's CPU row, and what the generator adds in the bus scenario.
	brokerCPU, added, addTime, first := "redis-server CPU (s)", "entries added (XADD)", "XADD time (s)", "first XADD → last consumed (s)"
	if bus == busKafka {
		brokerCPU, added, addTime, first = "Kafka broker CPU (s)", "records produced (acked)", "produce time (s)", "first produce → last consumed (s)"
	}
	// Reads per 1,000 messages published (or entries added).
	redisReads := row{"Redis reads (XREAD) per 1,000 messages", func(r *result) string {
		if r.redisReads < 0 || r.send.nAccepted == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f", r.readsPerThousand())
	}, func(r *result) float64 { return r.readsPerThousand() }}
	brokerCPUValue := func(r *result) string {
		if bus == busKafka && r.brokerCPU == 0 {
			return "–" // a broker the generator did not start
		}
		return seconds(r.brokerCPU)
	}
	connected := row{"clients connected", func(r *result) string {
		return fmt.Sprintf("%d/%d", r.connected, r.clients)
	}, nil}
	connectTime := row{"connect time (s)", func(r *result) string { return seconds(r.connectTime) }, nil}
	auth := row{"token with wrong secret", func(r *result) string { return r.authCheck }, nil}
	status := row{"status", func(r *result) string {
		s, _, _ := strings.Cut(r.status, "\n")
		return abbreviate([]byte(s))
	}, nil}
	serverCPU := row{"server CPU (s)", func(r *result) string { return seconds(r.serverCPU) },
		func(r *result) float64 { return r.serverCPU.Seconds() }}
	genCPU := row{"generator CPU (s)", func(r *result) string { return seconds(r.genCPU) }, nil}
	machine := row{"machine CPU busy, all processes", func(r *result) string { return busyPercent(r.machineBusy) }, nil}
	dropped := row{"connections dropped by server", func(r *result) string { return count(r.dropped) }, nil}
	peak := row{"server peak RSS (MiB)", func(r *result) string { return fmt.Sprintf("%.1f", mib(r.peakRSS)) },
		func(r *result) float64 { return mib(r.peakRSS) }}

	if sc == scenarioBus {
		rows := []row{
			{added, func(r *result) string { return fmt.Sprintf("%d/%d", r.send.nAccepted, r.messages) }, nil},
			{addTime, func(r *result) string { return seconds(r.send.end.Sub(r.send.start)) }, nil},
			{"consumed per instance", func(r *result) string { return joinEach(r.busConsumed, count) }, nil},
			{"not consumed", func(r *result) string { return count(r.lost) }, nil},
			{"consumed more than added", func(r *result) string { return count(r.strays) }, nil},
			{first, func(r *result) string { return joinEach(r.busSpan, seconds) }, nil},
			{"bus consumed per instance (msg/s)", func(r *result) string { return busRates(r, " · ") }, nil},
			serverCPU,
			{"server CPU per 1,000 consumed (ms)", func(r *result) string { return millis(r.cpuPerThousand()) }, nil},
			{brokerCPU, brokerCPUValue, nil},
			redisReads, // dropped below for Kafka
			genCPU, machine,
			{"backlog: consumed per instance", func(r *result) string { return orDash(joinEach(r.backlogConsumed, count)) }, nil},
			{"backlog: resumed → last consumed (s)", func(r *result) string { return orDash(joinEach(r.backlogSpan, seconds)) }, nil},
			{"backlog: drained per instance (msg/s)", func(r *result) string { return backlogRates(r, " · ") }, nil},
			{"backlog: server CPU per 1,000 (ms)", func(r *result) string {
				var n int64
				for _, c := range r.backlogConsumed {
					n += c
				}
				if n == 0 {
					return "–"
				}
				return millis(time.Duration(float64(r.backlogCPU) / float64(n) * 1000))
			}, nil},
			{"backlog: status", func(r *result) string { return orDash(abbreviate([]byte(r.backlogErr))) }, nil},
			peak, status,
		}
		if bus != busRedis {
			rows = slices.DeleteFunc(rows, func(r row) bool { return r.label == redisReads.label })
		}
		return rows
	}
	if sc == scenarioIdle {
		return []row{
			auth, connected, connectTime,
			{"RSS before (MiB)", func(r *result) string { return fmt.Sprintf("%.1f", mib(r.rssBefore)) }, nil},
			{"RSS after (MiB)", func(r *result) string { return fmt.Sprintf("%.1f", mib(r.rssAfter)) }, nil},
			{"KiB per connection", func(r *result) string { return fmt.Sprintf("%.1f", r.kibPerConn()) },
				func(r *result) float64 { return r.kibPerConn() }},
			dropped,
			{"server CPU, connect + idle (s)", serverCPU.value, serverCPU.ratio},
			genCPU, peak, status,
		}
	}
	rows := []row{
		auth, connected, connectTime,
		{"messages accepted (2xx)", func(r *result) string {
			return fmt.Sprintf("%d/%d", r.send.nAccepted, r.messages)
		}, nil},
		{"publish time (s)", func(r *result) string { return seconds(r.send.end.Sub(r.send.start)) }, nil},
		{"deliveries expected", func(r *result) string { return count(r.expected) }, nil},
		{"delivered", func(r *result) string { return count(r.delivered) }, nil},
		{"lost", func(r *result) string { return count(r.lost) }, nil},
		{"duplicated", func(r *result) string { return count(r.dups) }, nil},
		{"unexpected (stray or unconfirmed)", func(r *result) string { return count(r.strays + r.unconfirmed) }, nil},
		dropped,
		{"deliveries/s", func(r *result) string { return count(int64(r.rate())) },
			func(r *result) float64 { return r.rate() }},
		{"latency p50 (ms)", func(r *result) string { return millis(r.p50) },
			func(r *result) float64 { return r.p50.Seconds() }},
		{"latency p99 (ms)", func(r *result) string { return millis(r.p99) },
			func(r *result) float64 { return r.p99.Seconds() }},
		{"latency max (ms)", func(r *result) string { return millis(r.max) }, nil},
		{"first send → last delivery (s)", func(r *result) string { return seconds(r.elapsed) }, nil},
		serverCPU,
		{"server CPU per 1,000 deliveries (ms)", func(r *result) string { return millis(r.cpuPerThousand()) },
			func(r *result) float64 { return r.cpuPerThousand().Seconds() }},
		genCPU, machine, peak, status,
	}
	if n > 1 {
		extra := []row{
			{brokerCPU, brokerCPUValue, func(r *result) float64 { return r.brokerCPU.Seconds() }},
			{"bus consumed per instance (msg/s)", func(r *result) string { return busRates(r, " · ") }, nil},
		}
		if bus == busRedis {
			extra = append(extra, redisReads)
		}
		at := len(rows) - 4 // before generator CPU, machine, peak RSS and status
		rows = append(rows[:at], append(extra, rows[at:]...)...)
	}
	return rows
}

func ratio(rw row, web3, node *result) string {
	if rw.ratio == nil || web3 == nil || node == nil {
		return ""
	}
	a, b := rw.ratio(web3), rw.ratio(node)
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func notesOf(r *result) []string {
	var notes []string
	if _, detail, ok := strings.Cut(r.status, "\n"); ok {
		notes = append(notes, "status detail: "+abbreviate([]byte(strings.TrimSpace(detail))))
	}
	for _, e := range topErrors(r.connectErrs, 5) {
		notes = append(notes, "connect error: "+e)
	}
	for _, e := range topErrors(r.send.errs, 5) {
		notes = append(notes, "publish error: "+e)
	}
	for _, e := range topErrors(r.dropReasons, 5) {
		notes = append(notes, "dropped: "+e)
	}
	if r.status != "ok" && r.scenario != scenarioIdle && r.clients > 0 {
		notes = append(notes, "counts are partial: a message still in flight when the scenario ended counts as lost")
	}
	if r.unconfirmed != 0 {
		notes = append(notes, fmt.Sprintf("%d deliveries of messages whose request failed", r.unconfirmed))
	}
	return notes
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// busyPercent formats a busy share of the machine's CPU time, "–" when it
// was not measured.
func busyPercent(share float64) string {
	if share <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", share*100)
}

func millis(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// count formats n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
