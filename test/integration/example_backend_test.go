package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

// readmeBackendPort is where the README's example backend listens.
const readmeBackendPort = "127.0.0.1:3000"

// assignments returns the VAR=value words a shell line starts with.
func assignments(line string) map[string]string {
	env := map[string]string{}
	for _, word := range strings.Fields(line) {
		k, v, ok := strings.Cut(word, "=")
		if !ok || k == "" || strings.ToUpper(k) != k {
			break
		}
		env[k] = v
	}
	return env
}

// startExampleBackend runs examples/backend (built as `go run` would) with
// env and waits until it listens or consumes.
func startExampleBackend(t *testing.T, env map[string]string, ready string) *harness.Buffer {
	t.Helper()
	cmd := exec.Command(harness.Tool(t, "./examples/backend"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &harness.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("example backend output:\n%s", out.String())
		}
	})
	eventually(t, wait, func() (bool, string) { return strings.Contains(out.String(), ready), out.String() })
	return out
}

// echoData is the data of the example backend's echo event.
type echoData struct {
	ID    string          `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func expectEcho(t *testing.T, r harness.Report, event string, data any) {
	t.Helper()
	var e echoData
	decode(t, "echo", r.Arg(0), &e)
	if e.Event != event || !sameJSON(t, e.Data, data) || e.ID == "" {
		t.Errorf("echo %s, want event %q with data %v and its id", r.Arg(0), event, data)
	}
}

// TestExampleBackendWorksAsTheReadmeSays runs the README's two lines (the
// server with BACKEND_URL, then the example backend), on free ports: the
// README's ping answers through request/reply, and any other event comes
// back as an echo pushed through the REST API.
func TestExampleBackendWorksAsTheReadmeSays(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := firstBlock(t, codeBlocks(string(readme))["sh"], "./examples/backend")
	var serverLine, backendLine string
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasSuffix(line, "make run"):
			serverLine = line
		case strings.HasSuffix(line, "go run ./examples/backend"):
			backendLine = line
		}
	}
	if serverLine == "" || backendLine == "" {
		t.Fatalf("the README's example backend block lacks the server or the backend line:\n%s", block)
	}
	d := harness.NewDriver(t)
	addr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))

	serverEnv := assignments(serverLine)
	if !strings.Contains(serverEnv["BACKEND_URL"], readmeBackendPort) {
		t.Fatalf("the README's BACKEND_URL %q is not the example backend's default %s", serverEnv["BACKEND_URL"], readmeBackendPort)
	}
	serverEnv["BACKEND_URL"] = strings.Replace(serverEnv["BACKEND_URL"], readmeBackendPort, addr, 1)
	s := harness.StartServer(t, serverEnv) // what `make run` runs, on a free port
	exports := waitExports(t, s)

	backendEnv := assignments(backendLine)
	backendEnv["API_KEY"], backendEnv["ADDR"], backendEnv["WEB3_SOCKET_URL"] = exports["API_KEY"], addr, s.URL
	startExampleBackend(t, backendEnv, "listening")

	d.Connect("dev", s.URL, harness.ConnectOptions{Mode: harness.Modes[0], Token: exports["TOKEN"]})
	awaitConnected(t, d, harness.Modes[0], "dev")
	if got := d.MustAck("dev", "ping", wait, 1); !sameJSON(t, got, map[string]any{"ok": true, "pong": 1}) {
		t.Errorf("ping ack %s, want {ok: true, pong: 1}", got)
	}
	d.Emit("dev", "hello", "world")
	expectEcho(t, d.WaitEvent("dev", "echo", wait), "hello", "world")
}

// TestExampleBackendConsumesTheRedisBus runs the example backend with
// REDIS_URL: it reads socket.inbound with its own consumer group and
// publishes its echo as a deliver envelope with Watermill and the schemas
// package; the server has no BACKEND_URL.
func TestExampleBackendConsumesTheRedisBus(t *testing.T) {
	r := harness.StartRedis(t)
	env := harness.DefaultEnv()
	env["BUS"], env["REDIS_URL"] = "redis", r.URL
	s := harness.StartServer(t, env)
	d := harness.NewDriver(t)
	startExampleBackend(t, map[string]string{"REDIS_URL": r.URL, "BACKEND_SECRET": harness.RandomSecret(32),
		"ADDR": "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))}, "consuming the bus")
	connect(t, d, s, harness.Modes[0], "alice", harness.UserToken(t, s.JWTSecret(), "alice", nil))
	// The backend's group is created at the stream's end when it starts:
	// send until one event comes back.
	var got harness.Report
	eventually(t, wait, func() (bool, string) {
		d.Emit("alice", "hello", "bus")
		r, err := d.NextEvent("alice", "echo", 500*time.Millisecond)
		got = r
		return err == nil, "no echo from the bus"
	})
	expectEcho(t, got, "hello", "bus")
}
