package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Redis is a redis-server started for one test.
type Redis struct {
	Port int
	URL  string
	cmd  *exec.Cmd
	logs *Buffer
}

// StartRedis starts redis-server on a free loopback port, without
// persistence, and stops it in t.Cleanup. Without redis-server on PATH the
// test is skipped, or fails in CI (where .ci/run installs it).
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "harness: redis-server is not on PATH (Debian: apt-get install redis-server); the Redis suites need it"
		if InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	port := FreePort(t)
	r := &Redis{Port: port, URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), logs: &Buffer{}}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir(), "--protected-mode", "no")
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	r.cmd.WaitDelay = 2 * time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("harness: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("redis-server output:\n%s", r.logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("harness: redis-server on port %d did not answer PING:\n%s", port, r.logs.String())
	return nil
}
