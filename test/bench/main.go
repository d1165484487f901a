// Command bench is the load generator of `make bench`: it compares
// web3-socket with the official Node Socket.IO 4 server (node/server.js, the
// same surface) on three scenarios — broadcast, per-user and idle — and
// prints one report with the ratios. See README.md in this folder.
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
	idleSettle                   time.Duration

	workers, batch     int
	rate               float64
	connectConcurrency int
	timeout, stall     time.Duration

	repo, nodeDir, nodeBin, goBin, out string
	quick                              bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	servers := fs.String("servers", "web3,node", "servers to run, comma-separated: web3, node")
	scenarios := fs.String("scenarios", "broadcast,per-user,per-user-batch,idle", "scenarios to run, comma-separated: broadcast, per-user, per-user-batch, idle")
	fs.IntVar(&c.broadcastClients, "broadcast-clients", 2000, "clients connected in the broadcast scenario")
	fs.IntVar(&c.broadcasts, "broadcasts", 500, "broadcasts published in the broadcast scenario")
	fs.IntVar(&c.userClients, "user-clients", 2000, "clients (distinct users) in the per-user scenario")
	fs.IntVar(&c.userMessages, "user-messages", 20000, "messages in the per-user scenario, each to one user, round-robin")
	fs.IntVar(&c.batchMessages, "batch-messages", 200000, "messages of the per-user-batch scenario")
	fs.IntVar(&c.batchSize, "batch-size", 100, "messages per POST /api/batch in the per-user-batch scenario")
	fs.IntVar(&c.idleClients, "idle-clients", 10000, "clients connected in the idle scenario")
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
	fs.StringVar(&c.out, "out", "", "also write the report to this file")
	fs.BoolVar(&c.quick, "quick", false, "smoke-test sizes: 200 clients, 50 broadcasts, 2,000 per-user messages, 1,000 idle clients idle for 3s")
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
	c.scenarios = splitList(*scenarios)
	for i, s := range c.scenarios {
		if s == "peruser" || s == "per_user" {
			c.scenarios[i] = scenarioPerUser
		}
	}
	var errs []error
	for _, s := range c.servers {
		if s != "web3" && s != "node" {
			errs = append(errs, fmt.Errorf("-servers: %q is not a server: want web3 or node", s))
		}
	}
	for _, s := range c.scenarios {
		if s != scenarioBroadcast && s != scenarioPerUser && s != scenarioPerUserBatch && s != scenarioIdle {
			errs = append(errs, fmt.Errorf("-scenarios: %q is not a scenario: want broadcast, per-user, per-user-batch or idle", s))
		}
	}
	for name, v := range map[string]int{
		"broadcast-clients": c.broadcastClients, "broadcasts": c.broadcasts, "user-clients": c.userClients,
		"user-messages": c.userMessages, "idle-clients": c.idleClients, "workers": c.workers,
		"batch-messages":      c.batchMessages,
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
			targets = append(targets, web3Target(bin))
		case "node":
			dir, err := filepath.Abs(cfg.nodeDir)
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io")); err != nil {
				return fmt.Errorf("%s has no node_modules/socket.io: run `npm ci` there (make bench does): %w", dir, err)
			}
			targets = append(targets, nodeTarget(cfg.nodeBin, dir))
		}
	}
	describe(&env, cfg)

	b := &bench{cfg: cfg, workDir: workDir}
	results := map[string]map[string]*result{}
	for _, sc := range cfg.scenarios {
		results[sc] = map[string]*result{}
		for _, t := range targets {
			var r result
			if ctx.Err() != nil {
				r = result{scenario: sc, server: t.name, status: "interrupted"}
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
	env.nodeVersion, env.socketIO = "-", "-"
	if contains(cfg.servers, "node") {
		env.nodeVersion = output(cfg.nodeBin, "", "--version")
		var pkg struct{ Version string }
		if b, err := os.ReadFile(filepath.Join(cfg.nodeDir, "node_modules", "socket.io", "package.json")); err == nil && json.Unmarshal(b, &pkg) == nil {
			env.socketIO = pkg.Version
		}
	}
	env.web3Version = output("git", cfg.repo, "describe", "--tags", "--always", "--dirty")
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
