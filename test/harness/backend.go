package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BackendMode is how the test backend (test/backend) answers; the zero mode
// accepts everything.
type BackendMode struct {
	// Status, when set, answers every event with it.
	Status int `json:"status,omitempty"`
	// Delay waits before answering.
	Delay time.Duration `json:"delay,omitempty"`
	// Reject answers events of this name 422; Fail answers them 500.
	Reject string `json:"reject,omitempty"`
	Fail   string `json:"fail,omitempty"`
}

// BackendRecord is an event the test backend accepted.
type BackendRecord struct {
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	UserID string          `json:"userId"`
	Data   json.RawMessage `json:"data"`
	// Reply is true for a request/reply request.
	Reply bool `json:"reply"`
}

// Backend is the test backend process (test/backend), the HTTP server a
// web3-socket's BACKEND_URL points at in the suites.
type Backend struct {
	// URL is what BACKEND_URL is set to: http://127.0.0.1:port/events.
	URL    string
	Port   int
	Secret string
	t      testing.TB
	record string
	cmd    *exec.Cmd
	done   chan struct{}
	logs   *Buffer
	client *http.Client
}

var tools struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// Tool builds the main package at pkg (relative to the module root, e.g.
// ./test/backend) once per test run and returns the executable's path.
func Tool(t testing.TB, pkg string) string {
	t.Helper()
	tools.mu.Lock()
	defer tools.mu.Unlock()
	if bin, ok := tools.bins[pkg]; ok {
		return bin
	}
	if tools.dir == "" {
		dir, err := os.MkdirTemp("", "web3-socket-tools-")
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		tools.dir, tools.bins = dir, map[string]string{}
	}
	bin := filepath.Join(tools.dir, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "-"))
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, pkg)
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: go build %s: %v\n%s", pkg, err, out)
	}
	tools.bins[pkg] = bin
	return bin
}

// StartBackend starts the test backend on a free loopback port with a fresh
// secret; it is stopped in t.Cleanup.
func StartBackend(t testing.TB) *Backend {
	t.Helper()
	b := &Backend{Port: FreePort(t), Secret: RandomSecret(32), t: t, logs: &Buffer{},
		record: filepath.Join(t.TempDir(), "events.jsonl"), client: &http.Client{Timeout: 5 * time.Second}}
	b.URL = fmt.Sprintf("http://127.0.0.1:%d/events", b.Port)
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("test backend output:\n%s", b.logs.String())
		}
	})
	b.Start()
	return b
}

// Start starts the backend (again, after Stop) on the same port; what it
// accepted before is kept. It returns once the backend listens.
func (b *Backend) Start() {
	b.t.Helper()
	b.cmd = exec.Command(Tool(b.t, "./test/backend"))
	b.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ADDR=127.0.0.1:" + strconv.Itoa(b.Port),
		"SECRET=" + b.Secret, "RECORD=" + b.record}
	b.cmd.Stdout, b.cmd.Stderr = b.logs, b.logs
	b.cmd.WaitDelay = 2 * time.Second
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("harness: start test backend: %v", err)
	}
	done := make(chan struct{})
	b.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(b.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port), 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b.t.Fatalf("harness: test backend exited:\n%s", b.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	b.t.Fatalf("harness: test backend did not listen on %d:\n%s", b.Port, b.logs.String())
}

// Stop kills the backend: requests in flight fail, new ones are refused.
func (b *Backend) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Kill()
	<-b.done
}

// SetMode changes how the backend answers.
func (b *Backend) SetMode(m BackendMode) {
	b.t.Helper()
	body, _ := json.Marshal(m)
	resp, err := b.client.Post(fmt.Sprintf("http://127.0.0.1:%d/mode", b.Port), "application/json", bytes.NewReader(body))
	if err != nil {
		b.t.Fatalf("harness: set backend mode: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b.t.Fatalf("harness: set backend mode: %s", resp.Status)
	}
}

// Attempts returns how many requests the running backend process received.
func (b *Backend) Attempts() int {
	b.t.Helper()
	resp, err := b.client.Get(fmt.Sprintf("http://127.0.0.1:%d/attempts", b.Port))
	if err != nil {
		b.t.Fatalf("harness: backend attempts: %v", err)
	}
	defer resp.Body.Close()
	var n int
	if _, err := fmt.Fscan(resp.Body, &n); err != nil {
		b.t.Fatalf("harness: backend attempts: %v", err)
	}
	return n
}

// Received returns the events the backend accepted, in the order it did,
// across its restarts.
func (b *Backend) Received() []BackendRecord {
	b.t.Helper()
	f, err := os.Open(b.record)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		b.t.Fatalf("harness: %v", err)
	}
	defer f.Close()
	var out []BackendRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r BackendRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line being written
		}
		out = append(out, r)
	}
	return out
}
