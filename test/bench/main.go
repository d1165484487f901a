// Command bench is the load generator of `make bench`: it compares
// web3-socket with the official Node Socket.IO 4 server (node/server.js, the
// same surface) on broadcast, per-user and idle scenarios, one instance of
// each, and on the Redis variants (two instances of each sharing a
// redis-server; Node with @socket.io/redis-streams-adapter), runs the Kafka
// variants on two web3-socket instances sharing a Kafka broker (there is no
// Node Kafka adapter to compare with), and prints one report with the
// ratios. See README.md in this folder.
//
// Run it from the root of the module: go run ./test/bench [flags].
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	servers, scenarios []string

	broadcastClients, broadcasts int
	userClients, userMessages    int
	batchMessages, batchSize     int
	idleClients                  int
	busMessages                  int
	idleSettle                   time.Duration

	workers, batch     int
	rate               float64
	connectConcurrency int
	timeout, stall     time.Duration

	repo, nodeDir, nodeBin, goBin, out string
	// redisBin is the redis-server of the Redis variants.
	redisBin string
	// kafkaBrokers are the brokers of the Kafka variants (KAFKA_BROKERS);
	// when empty the generator starts one with .ci/kafka.sh and javaBin.
	kafkaBrokers, javaBin string
	quick                 bool
	// web3Env is extra configuration (KEY=VALUE) of every web3-socket
	// instance, after the bench's own.
	web3Env []string
}

// allScenarios is the default of -scenarios: the Redis variants run when
// redis-server is found, the Kafka variants when a broker is given or can
// be started.
var allScenarios = []string{
	scenarioBroadcast, scenarioPerUser, scenarioPerUserBatch, scenarioIdle,
	redisPrefix + scenarioBroadcast, redisPrefix + scenarioPerUser, redisPrefix + scenarioPerUserBatch,
	redisPrefix + scenarioBus,
	kafkaPrefix + scenarioBroadcast, kafkaPrefix + scenarioPerUser, kafkaPrefix + scenarioPerUserBatch,
	kafkaPrefix + scenarioBus,
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	servers := fs.String("servers", "web3,node", "servers to run, comma-separated: web3, node")
	scenarios := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated: broadcast, per-user, per-user-batch, idle, and the two-instance Redis variants redis-broadcast, redis-per-user, redis-per-user-batch, redis-bus (run by default when redis-server is found), and the two-instance Kafka variants (web3-socket only) kafka-broadcast, kafka-per-user, kafka-per-user-batch, kafka-bus (run by default when KAFKA_BROKERS is set or java can start a broker)")
	fs.IntVar(&c.broadcastClients, "broadcast-clients", 2000, "clients connected in the broadcast scenario")
	fs.IntVar(&c.broadcasts, "broadcasts", 500, "broadcasts published in the broadcast scenario")
	fs.IntVar(&c.userClients, "user-clients", 2000, "clients (distinct users) in the per-user scenario")
	fs.IntVar(&c.userMessages, "user-messages", 20000, "messages in the per-user scenario, each to one user, round-robin")
	fs.IntVar(&c.batchMessages, "batch-messages", 200000, "messages of the per-user-batch scenario")
	fs.IntVar(&c.batchSize, "batch-size", 100, "messages per POST /api/batch in the per-user-batch scenario")
	fs.IntVar(&c.idleClients, "idle-clients", 10000, "clients connected in the idle scenario")
	fs.IntVar(&c.busMessages, "bus-messages", 200000, "entries the generator adds to the outbound topic in the redis-bus and kafka-bus scenarios")
	fs.DurationVar(&c.idleSettle, "idle-settle", 30*time.Second, "how long idle clients stay connected before memory is read (30s lets one 25s ping interval pass)")
	fs.IntVar(&c.workers, "workers", 8, "concurrent HTTP publishers (keep-alive connections)")
	fs.IntVar(&c.batch, "batch", 0, "messages per POST /api/batch; 0 sends one message per /api/broadcast or /api/message call")
	fs.Float64Var(&c.rate, "rate", 0, "messages per second to publish; 0 publishes as fast as the server answers")
	fs.IntVar(&c.connectConcurrency, "connect-concurrency", 100, "clients connecting at the same time")
	fs.DurationVar(&c.timeout, "timeout", 120*time.Second, "bound of one scenario on one server, start to stop")
	fs.DurationVar(&c.stall, "stall", 15*time.Second, "end a scenario when nothing was delivered for this long after publishing finished")
	fs.StringVar(&c.repo, "repo", ".", "root of the web3-socket module (holds cmd/web3-socket)")
	fs.StringVar(&c.nodeDir, "node-dir", "test/bench/node", "folder of the Node server (server.js and node_modules)")
	fs.StringVar(&c.nodeBin, "node", "node", "the node executable")
	fs.StringVar(&c.goBin, "go", "go", "the go executable that builds web3-socket")
	fs.StringVar(&c.redisBin, "redis-server", "redis-server", "the redis-server executable of the redis-* scenarios")
	fs.StringVar(&c.kafkaBrokers, "kafka-brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers (host:port, comma-separated) of the kafka-* scenarios; empty starts a single-node broker with "+kafkaScript+" (needs java) on loopback for the run")
	fs.StringVar(&c.javaBin, "java", "java", "the java executable that runs the broker "+kafkaScript+" starts when -kafka-brokers is empty")
	fs.StringVar(&c.out, "out", "", "also write the report to this file")
	web3Env := fs.String("web3-env", "", "extra environment of every web3-socket instance, KEY=VALUE pairs, comma-separated (IDEMPOTENCY_WINDOW=0s,RECOVERY_WINDOW=0s compares settings)")
	fs.BoolVar(&c.quick, "quick", false, "smoke-test sizes: 200 clients, 50 broadcasts, 2,000 per-user messages, 20,000 per-user-batch, redis-bus and kafka-bus messages, 1,000 idle clients idle for 3s")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"broadcast-clients": func() { c.broadcastClients = 200 },
			"broadcasts":        func() { c.broadcasts = 50 },
			"user-clients":      func() { c.userClients = 200 },
			"user-messages":     func() { c.userMessages = 2000 },
			"batch-messages":    func() { c.batchMessages = 20000 },
			"idle-clients":      func() { c.idleClients = 1000 },
			"bus-messages":      func() { c.busMessages = 20000 },
			"idle-settle":       func() { c.idleSettle = 3 * time.Second },
			"timeout":           func() { c.timeout = 60 * time.Second },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	c.servers = splitList(*servers)
	c.web3Env = splitList(*web3Env)
	c.scenarios = splitList(*scenarios)
	for i, s := range c.scenarios {
		for _, p := range []string{"", redisPrefix, kafkaPrefix} {
			if s == p+"peruser" || s == p+"per_user" {
				c.scenarios[i] = p + scenarioPerUser
			}
		}
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "scenarios" })
	if !explicit && !redisAvailable(c.redisBin) {
		log.Printf("warning: %s is not on PATH (Debian: apt-get install redis-server): the redis-* scenarios are left out", c.redisBin)
		c.scenarios = slices.DeleteFunc(c.scenarios, func(s string) bool { return strings.HasPrefix(s, redisPrefix) })
	}
	kafkaOK, kafkaWhy := kafkaAvailable(c)
	if !explicit && !kafkaOK && usesKafka(c.scenarios) {
		log.Printf("warning: %s: the kafka-* scenarios are left out", kafkaWhy)
	}
	if !explicit && (!kafkaOK || !contains(splitList(*servers), "web3")) {
		c.scenarios = slices.DeleteFunc(c.scenarios, func(s string) bool { return strings.HasPrefix(s, kafkaPrefix) })
	}
	var errs []error
	for _, kv := range c.web3Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("-web3-env: %q: want KEY=VALUE", kv))
		}
	}
	for _, s := range c.servers {
		if s != "web3" && s != "node" {
			errs = append(errs, fmt.Errorf("-servers: %q is not a server: want web3 or node", s))
		}
	}
	for _, s := range c.scenarios {
		base, bus, n := split(s)
		switch {
		case base != scenarioBroadcast && base != scenarioPerUser && base != scenarioPerUserBatch && base != scenarioIdle && base != scenarioBus,
			n > 1 && base == scenarioIdle, n == 1 && base == scenarioBus:
			errs = append(errs, fmt.Errorf("-scenarios: %q is not a scenario: want broadcast, per-user, per-user-batch, idle, redis-broadcast, redis-per-user, redis-per-user-batch, redis-bus, kafka-broadcast, kafka-per-user, kafka-per-user-batch or kafka-bus", s))
		case bus == busRedis && !redisAvailable(c.redisBin):
			errs = append(errs, fmt.Errorf("-scenarios: %s needs redis-server: %q is not found (Debian: apt-get install redis-server; or give -redis-server)", s, c.redisBin))
		case bus == busKafka && !kafkaOK:
			errs = append(errs, fmt.Errorf("-scenarios: %s needs a Kafka broker: %s (or give -kafka-brokers)", s, kafkaWhy))
		case bus == busKafka && !contains(splitList(*servers), "web3"):
			errs = append(errs, fmt.Errorf("-scenarios: %s runs web3-socket only (there is no Node Kafka adapter): add web3 to -servers", s))
		}
	}
	for name, v := range map[string]int{
		"broadcast-clients": c.broadcastClients, "broadcasts": c.broadcasts, "user-clients": c.userClients,
		"user-messages": c.userMessages, "idle-clients": c.idleClients, "workers": c.workers,
		"batch-messages":      c.batchMessages,
		"bus-messages":        c.busMessages,
		"connect-concurrency": c.connectConcurrency,
	} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("-%s: %d: want at least 1", name, v))
		}
	}
	if c.batchSize < 1 || c.batchSize > 1000 {
		errs = append(errs, fmt.Errorf("-batch-size: %d: want 1 to 1000", c.batchSize))
	}
	if c.batch < 0 || c.batch > 1000 {
		errs = append(errs, fmt.Errorf("-batch: %d: want 0 to 1000 (the servers accept at most 1,000 per call)", c.batch))
	}
	if len(c.servers) == 0 || len(c.scenarios) == 0 {
		errs = append(errs, errors.New("-servers and -scenarios must name at least one each"))
	}
	return c, errors.Join(errs...)
}

// redisAvailable reports whether bin names an executable redis-server.
func redisAvailable(bin string) bool {
	_, err := exec.LookPath(bin)
	return err == nil
}

// usesRedis reports whether any of the scenarios is a Redis variant.
func usesRedis(scenarios []string) bool {
	return slices.ContainsFunc(scenarios, func(s string) bool { return strings.HasPrefix(s, redisPrefix) })
}

// usesKafka reports whether any of the scenarios is a Kafka variant.
func usesKafka(scenarios []string) bool {
	return slices.ContainsFunc(scenarios, func(s string) bool { return strings.HasPrefix(s, kafkaPrefix) })
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench ")
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	env := environment{started: time.Now(), command: "go run ./test/bench " + strings.Join(os.Args[1:], " ")}
	nofile, err := raiseFileLimit()
	if err != nil {
		return err
	}
	env.nofile = nofile
	if need := uint64(max(cfg.idleClients, cfg.broadcastClients, cfg.userClients) + 256); nofile < need {
		log.Printf("warning: RLIMIT_NOFILE is %d, under the %d descriptors the largest scenario needs", nofile, need)
	}

	workDir, err := os.MkdirTemp("", "web3-socket-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)

	var targets []target
	for _, s := range cfg.servers {
		switch s {
		case "web3":
			log.Printf("building ./cmd/web3-socket")
			bin, err := buildWeb3(ctx, cfg.goBin, cfg.repo, workDir)
			if err != nil {
				return err
			}
			targets = append(targets, web3Target(bin, cfg.web3Env))
		case "node":
			dir, err := filepath.Abs(cfg.nodeDir)
			if err != nil {
				return err
			}
			need := []string{"socket.io"}
			if usesRedis(cfg.scenarios) {
				need = append(need, "@socket.io/redis-streams-adapter", "redis")
			}
			for _, pkg := range need {
				if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
					return fmt.Errorf("%s has no node_modules/%s: run `npm ci` there (make bench does): %w", dir, pkg, err)
				}
			}
			targets = append(targets, nodeTarget(cfg.nodeBin, dir))
		}
	}
	describe(&env, cfg)

	b := &bench{cfg: cfg, workDir: workDir}
	if usesKafka(cfg.scenarios) {
		k, err := setupKafka(ctx, cfg, workDir)
		if err != nil {
			return fmt.Errorf("kafka variant: %w", err)
		}
		defer k.stop()
		b.kafka = k
		env.kafka = k.describe()
	}
	results := map[string]map[string]*result{}
	for _, sc := range cfg.scenarios {
		results[sc] = map[string]*result{}
		for _, t := range targets {
			if busOf(sc) == busKafka && !t.kafka {
				continue // no Kafka adapter: no column
			}
			var r result
			if ctx.Err() != nil {
				r = result{scenario: sc, server: t.name, status: "interrupted", redisReads: -1}
			} else {
				r = b.run(ctx, t, sc)
			}
			results[sc][t.key] = &r
		}
	}

	var report bytes.Buffer
	printReport(&report, env, cfg, targets, cfg.scenarios, results)
	var w io.Writer = os.Stdout
	fmt.Fprint(w, "\n"+report.String())
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, report.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return nil
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit, for this
// process and the servers it starts (they inherit it), and returns it.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// describe fills in the machine and the software versions.
func describe(env *environment, cfg config) {
	env.cpus = runtime.NumCPU()
	env.cpuModel = "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				env.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	env.memory = "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			env.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env.kernel = strings.TrimSpace(string(b))
	}
	env.goVersion = output(cfg.goBin, "", "version")
	env.nodeVersion, env.socketIO, env.redisAdapter, env.redisClient = "-", "-", "-", "-"
	if contains(cfg.servers, "node") {
		env.nodeVersion = output(cfg.nodeBin, "", "--version")
		env.socketIO = npmVersion(cfg.nodeDir, "socket.io")
		env.redisAdapter = npmVersion(cfg.nodeDir, "@socket.io/redis-streams-adapter")
		env.redisClient = npmVersion(cfg.nodeDir, "redis")
	}
	env.redis = "-"
	if usesRedis(cfg.scenarios) {
		// "Redis server v=7.0.15 sha=… malloc=… bits=64 build=…"
		env.redis = strings.TrimPrefix(strings.Fields(output(cfg.redisBin, "", "--version") + " ? ? ?")[2], "v=")
	}
	env.web3Version = output("git", cfg.repo, "describe", "--tags", "--always", "--dirty")
}

// npmVersion returns the version of the npm package installed in
// dir/node_modules, or "-".
func npmVersion(dir, name string) string {
	var pkg struct{ Version string }
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil || pkg.Version == "" {
		return "-"
	}
	return pkg.Version
}

// output runs a short command and returns its first line, or "unknown".
func output(name, dir string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
