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
	t    testing.TB
	bin  string
	dir  string
	// persist keeps the data across restarts (AOF, fsync on every write).
	persist bool
	cmd     *exec.Cmd
	done    chan struct{}
	logs    *Buffer
}

// StartRedis starts redis-server on a free loopback port, without
// persistence, and stops it in t.Cleanup. Without redis-server on PATH the
// test is skipped, or fails in CI (where .ci/run installs it).
func StartRedis(t testing.TB) *Redis { return startRedis(t, false) }

// StartPersistentRedis is StartRedis with an append-only file fsynced on
// every write, so that a restart keeps every entry Redis acknowledged.
func StartPersistentRedis(t testing.TB) *Redis { return startRedis(t, true) }

func startRedis(t testing.TB, persist bool) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "harness: redis-server is not on PATH (Debian: apt-get install redis-server); the Redis suites need it"
		if InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r := &Redis{Port: FreePort(t), t: t, bin: bin, dir: t.TempDir(), persist: persist, logs: &Buffer{}}
	r.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port)
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("redis-server output:\n%s", r.logs.String())
		}
	})
	r.Start()
	return r
}

// Start starts redis-server (again, after Stop) on the same port, and waits
// until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--dir", r.dir, "--protected-mode", "no"}
	if r.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	r.cmd = exec.Command(r.bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	r.cmd.WaitDelay = 2 * time.Second
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("harness: start redis-server: %v", err)
	}
	done := make(chan struct{})
	r.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(r.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port), 200*time.Millisecond); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("harness: redis-server on port %d did not answer PING:\n%s", r.Port, r.logs.String())
}

// Stop stops redis-server (without persistence, its data is gone).
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}
