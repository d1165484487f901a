package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts of a server process under test.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It
// is 100 on every Linux architecture Go supports (sysconf would need cgo).
const clockTicks = 100

// target is one server implementation under test.
type target struct {
	// key is the name used by -servers; name is the one in the report.
	key, name string
	// command returns the process of one instance.
	command func(inst instance) *exec.Cmd
	// busMetrics says whether GET /metrics counts the messages the instance
	// consumed from its bus (bus_messages_consumed_total).
	busMetrics bool
	// kafka says whether the server can share a Kafka bus (the kafka-*
	// scenarios run only for such a server).
	kafka bool
}

// instance is what one server process under test is started with.
type instance struct {
	// port is its free port on 127.0.0.1.
	port int
	// secret and apiKey are shared by every instance of a deployment.
	secret, apiKey string
	// redisURL is empty for a single instance with its embedded bus (or no
	// bus, for Node); otherwise the Redis every instance of the deployment
	// shares.
	redisURL string
	// kafkaBrokers, when set, are the Kafka brokers every instance of the
	// deployment shares, with the topics of topicPrefix.
	kafkaBrokers, topicPrefix string
	// id names the instance within its deployment: "a", "b", …
	id string
}

func web3Target(bin string, extraEnv []string) target {
	return target{
		key:        "web3",
		name:       "web3-socket",
		busMetrics: true,
		kafka:      true,
		command: func(inst instance) *exec.Cmd {
			cmd := exec.Command(bin)
			cmd.Env = baseEnv(
				"NODE_ENV=production",
				"JWT_SECRET="+inst.secret,
				"API_KEY="+inst.apiKey,
				"PORT="+strconv.Itoa(inst.port),
				"LOG_LEVEL=warn",
				"INSTANCE_ID=bench-"+inst.id,
			)
			switch {
			case inst.redisURL != "":
				cmd.Env = append(cmd.Env, "BUS=redis", "REDIS_URL="+inst.redisURL)
			case inst.kafkaBrokers != "":
				cmd.Env = append(cmd.Env, "BUS=kafka", "KAFKA_BROKERS="+inst.kafkaBrokers, "TOPIC_PREFIX="+inst.topicPrefix)
			}
			cmd.Env = append(cmd.Env, extraEnv...)
			return cmd
		},
	}
}

func nodeTarget(nodeBin, dir string) target {
	return target{
		key:  "node",
		name: "node socket.io 4",
		command: func(inst instance) *exec.Cmd {
			cmd := exec.Command(nodeBin, "server.js")
			cmd.Dir = dir
			cmd.Env = baseEnv(
				"NODE_ENV=production",
				"JWT_SECRET="+inst.secret,
				"API_KEY="+inst.apiKey,
				"PORT="+strconv.Itoa(inst.port),
				"HOST=127.0.0.1",
			)
			if inst.redisURL != "" {
				// The same retention as web3-socket's REDIS_STREAM_MAXLEN
				// default, so that neither loses entries to trimming
				// before the other would.
				cmd.Env = append(cmd.Env, "REDIS_URL="+inst.redisURL, "REDIS_STREAM_MAXLEN="+strconv.Itoa(streamMaxLen))
			}
			return cmd
		},
	}
}

// streamMaxLen is the approximate MAXLEN of the streams in the Redis
// scenarios: web3-socket's REDIS_STREAM_MAXLEN default, given to the Node
// adapter too (its own default is 10,000).
const streamMaxLen = 1_000_000

// baseEnv is PATH and HOME plus vars: nothing else of the caller's
// environment (such as a .env-style JWT_SECRET) leaks into a server.
func baseEnv(vars ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, vars...)
}

// process is one running server under test, a redis-server or a Kafka
// broker.
type process struct {
	url    string
	secret []byte
	apiKey string
	pid    int

	cmd    *exec.Cmd
	out    *tailBuffer
	exited chan struct{}
}

// startInstance runs one instance of t on a free loopback port and returns
// once GET /health answers 200.
func (t target) startInstance(ctx context.Context, workDir string, inst instance) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	inst.port = port
	cmd := t.command(inst)
	if cmd.Dir == "" {
		cmd.Dir = workDir // no stray .env file is read
	}
	p, err := startProcess(ctx, t.name, cmd, fmt.Sprintf("http://127.0.0.1:%d", port), (*process).waitHealthy)
	if err != nil {
		return nil, err
	}
	p.secret, p.apiKey = []byte(inst.secret), inst.apiKey
	return p, nil
}

// startProcess starts cmd, which will serve at url, and returns once ready
// says it is ready; the process is stopped when it is not.
func startProcess(ctx context.Context, name string, cmd *exec.Cmd, url string, ready func(*process, context.Context) error) (*process, error) {
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	// The server dies with the generator, even when the generator is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{
		url:    url,
		pid:    cmd.Process.Pid,
		cmd:    cmd,
		out:    out,
		exited: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := ready(p, ctx); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s did not become ready: %w\n%s", name, err, p.out.String())
	}
	return p, nil
}

// waitHealthy waits until GET /health answers 200.
func (p *process) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/health", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return errors.New("the process exited")
		case <-ctx.Done():
			return fmt.Errorf("GET /health: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and kills the process if it has not exited in time.
func (p *process) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// cpu returns the user plus system CPU time the process has used.
func (p *process) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces: fields are counted
	// after its closing parenthesis, where field 3 (state) starts.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", p.pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", p.pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", p.pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// memory returns VmRSS and VmHWM (peak RSS) in bytes.
func (p *process) memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", p.pid, name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS", p.pid)
	}
	return rss, peak, nil
}

// buildWeb3 builds ./cmd/web3-socket of the module at repo into dir, without
// the race detector, and returns the binary.
func buildWeb3(ctx context.Context, goBin, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "web3-socket")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", bin, "./cmd/web3-socket")
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/web3-socket: %w\n%s", err, out)
	}
	return bin, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
