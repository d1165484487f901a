package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the harness. They bound waits; they are never assertions.
const (
	// StartTimeout bounds the wait for GET /health to answer 200.
	StartTimeout = 30 * time.Second
	// StopTimeout bounds the wait for the process to exit after SIGTERM in cleanup.
	StopTimeout = 15 * time.Second
)

// Server is one running web3-socket process.
type Server struct {
	t testing.TB

	// URL is the base URL of the server, e.g. http://127.0.0.1:40123.
	URL string
	// Port is the TCP port the server listens on.
	Port int
	// Env is the environment the process was started with (without PATH and HOME).
	Env map[string]string

	cmd    *exec.Cmd
	logs   *Buffer
	exited chan struct{}
	state  *os.ProcessState
	client *http.Client
}

// RandomSecret returns n random bytes, hex encoded: a strong JWT secret or API key.
func RandomSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// DefaultEnv returns the environment most tests start the server with: a
// strong JWT_SECRET and API_KEY and short timings. Tests change it freely.
func DefaultEnv() map[string]string {
	return map[string]string{
		"JWT_SECRET":       RandomSecret(32),
		"API_KEY":          RandomSecret(24),
		"SHUTDOWN_TIMEOUT": "5s",
		"LOG_LEVEL":        "debug",
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartServer builds the binary (once per run) and starts it with env plus
// PATH, HOME, PORT (a free port unless env sets it) and NODE_ENV=development
// (unless env sets it), in a fresh working directory so that no stray .env
// file is read. It returns once GET /health answers 200. The process is
// stopped in t.Cleanup; its output is written to the test log when the test
// failed, and a data race reported by it fails the test.
func StartServer(t testing.TB, env map[string]string) *Server {
	t.Helper()
	bin := Binary(t)

	full := make(map[string]string, len(env)+2)
	for k, v := range env {
		full[k] = v
	}
	if _, ok := full["NODE_ENV"]; !ok {
		full["NODE_ENV"] = "development"
	}
	if _, ok := full["PORT"]; !ok {
		full["PORT"] = strconv.Itoa(FreePort(t))
	}
	port, err := strconv.Atoi(full["PORT"])
	if err != nil {
		t.Fatalf("harness: PORT %q: %v", full["PORT"], err)
	}

	s := &Server{
		t:      t,
		URL:    fmt.Sprintf("http://127.0.0.1:%d", port),
		Port:   port,
		Env:    full,
		logs:   &Buffer{},
		exited: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second},
	}

	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range full {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: start %s: %v", bin, err)
	}
	s.cmd = cmd
	go func() {
		_ = cmd.Wait()
		s.state = cmd.ProcessState
		close(s.exited)
	}()

	t.Cleanup(func() {
		if s.Running() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(StopTimeout):
				t.Errorf("harness: web3-socket did not exit %v after SIGTERM; killing it", StopTimeout)
				_ = cmd.Process.Kill()
				<-s.exited
			}
		}
		logs := s.Logs()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("harness: the race detector reported a data race in web3-socket")
		}
		if t.Failed() {
			t.Logf("web3-socket output (%s):\n%s", s.URL, logs)
		}
	})

	s.waitHealthy()
	return s
}

// Attach returns a Server for a web3-socket already listening at baseURL and
// not started by the harness (an instance run in-process by the test). env
// holds the settings the test gave it (API_KEY, JWT_SECRET) so that Do,
// APIKey and JWTSecret work; Signal, Wait and Stop do not apply. It returns
// once GET /health answers 200.
func Attach(t testing.TB, baseURL string, env map[string]string) *Server {
	t.Helper()
	s := &Server{
		t:      t,
		URL:    strings.TrimRight(baseURL, "/"),
		Env:    env,
		logs:   &Buffer{},
		exited: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second},
	}
	s.waitHealthy()
	return s
}

func (s *Server) waitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(StartTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.t.Fatalf("harness: web3-socket exited during start-up (%v):\n%s", s.state, s.Logs())
		default:
		}
		resp, err := s.client.Get(s.URL + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("harness: GET /health did not answer 200 within %v (last: %s):\n%s", StartTimeout, last, s.Logs())
}

// APIKey returns the first key of API_KEY.
func (s *Server) APIKey() string {
	return strings.TrimSpace(strings.Split(s.Env["API_KEY"], ",")[0])
}

// JWTSecret returns JWT_SECRET.
func (s *Server) JWTSecret() []byte { return []byte(s.Env["JWT_SECRET"]) }

// Logs returns everything the process wrote to stdout and stderr so far.
func (s *Server) Logs() string { return s.logs.String() }

// Running reports whether the process has not exited yet.
func (s *Server) Running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the process has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Signal sends sig to the process.
func (s *Server) Signal(sig os.Signal) error {
	if s.cmd == nil {
		return errors.New("harness: this server was not started by the harness")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to web3-socket: %w", sig, err)
	}
	return nil
}

// ErrStillRunning is returned by Wait when the process outlived the timeout.
var ErrStillRunning = errors.New("web3-socket still running")

// Wait waits up to timeout for the process to exit and returns its exit code
// (-1 when it was killed by a signal).
func (s *Server) Wait(timeout time.Duration) (int, error) {
	if s.cmd == nil {
		return 0, errors.New("harness: this server was not started by the harness")
	}
	select {
	case <-s.exited:
		return s.state.ExitCode(), nil
	case <-time.After(timeout):
		return 0, ErrStillRunning
	}
}

// Stop sends SIGTERM and waits up to timeout for the exit. It returns the exit
// code and how long the exit took.
func (s *Server) Stop(timeout time.Duration) (code int, took time.Duration, err error) {
	start := time.Now()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		return 0, 0, err
	}
	code, err = s.Wait(timeout)
	return code, time.Since(start), err
}

// Do sends a request to the server and returns the status and body. body is
// sent as is when it is a []byte or string, JSON-encoded otherwise, and not at
// all when nil. The request carries X-API-Key (the first key of API_KEY) and,
// with a body, Content-Type: application/json; headers override them, and a
// header given with an empty value is removed. When the request fails before
// an answer, the status is 0 and the body says why, so that Do is safe to
// call from subtests and goroutines.
func (s *Server) Do(method, path string, body any, headers map[string]string) (int, []byte) {
	var rd io.Reader
	if body != nil {
		var b []byte
		switch v := body.(type) {
		case []byte:
			b = v
		case string:
			b = []byte(v)
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				return 0, []byte("harness: encode request body: " + err.Error())
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return 0, []byte("harness: " + err.Error())
	}
	req.Header.Set("X-API-Key", s.APIKey())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, []byte("harness: " + err.Error())
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, append(out, []byte("\nharness: read body: "+err.Error())...)
	}
	return resp.StatusCode, out
}

// Buffer collects output; it is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
