// Package harness starts the real web3-socket binary and drives it with the
// official socket.io-client (through test/client/driver.js) for the suites in
// test/. Every process it starts is stopped in t.Cleanup and every wait it
// offers is bounded.
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Main runs the tests of a package that uses the harness and removes the
// binary built for the run afterwards. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	if tools.dir != "" {
		_ = os.RemoveAll(tools.dir)
	}
	return code
}

// InCI reports whether the suite runs in continuous integration (CI=true),
// where a missing tool fails the suite instead of skipping it.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

var root struct {
	once sync.Once
	dir  string
	err  error
}

// ModuleRoot returns the directory holding go.mod, found with `go env GOMOD`.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			root.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			root.err = fmt.Errorf("go env GOMOD: not inside a module")
			return
		}
		root.dir = filepath.Dir(gomod)
	})
	if root.err != nil {
		t.Fatalf("harness: %v", root.err)
	}
	return root.dir
}

var build struct {
	once sync.Once
	dir  string
	bin  string
	out  []byte
	err  error
}

// Binary builds ./cmd/web3-socket with -race once per test run and returns the
// path of the executable.
func Binary(t testing.TB) string {
	t.Helper()
	dir := ModuleRoot(t)
	build.once.Do(func() {
		tmp, err := os.MkdirTemp("", "web3-socket-it-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = tmp
		build.bin = filepath.Join(tmp, "web3-socket")
		// -buildvcs=false: VCS stamping is of no use here and fails on
		// checkouts git refuses to read (CI containers running as another user).
		cmd := exec.Command("go", "build", "-race", "-buildvcs=false", "-o", build.bin, "./cmd/web3-socket")
		cmd.Dir = dir
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("harness: go build -race ./cmd/web3-socket: %v\n%s", build.err, build.out)
	}
	return build.bin
}
