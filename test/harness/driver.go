package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mode is one way a client reaches the server: which Engine.IO transports it
// may use and whether it upgrades from polling to websocket.
type Mode struct {
	Name       string
	Transports []string
	Upgrade    bool
}

// Modes are the three transport modes every socket behaviour is proven in.
var Modes = []Mode{
	{Name: "websocket", Transports: []string{"websocket"}},
	{Name: "polling", Transports: []string{"polling"}},
	{Name: "upgrade", Transports: []string{"polling", "websocket"}, Upgrade: true},
}

// ConnectOptions describe one client connection.
type ConnectOptions struct {
	// Mode selects the transports; the zero Mode lets the client choose.
	Mode Mode
	// Token is sent as the handshake's auth.token when not empty.
	Token string
	// Bearer is sent as the "Authorization: Bearer …" header when not empty
	// (non-browser clients).
	Bearer string
	// Opts are merged last into the options given to io(url, opts).
	Opts map[string]any
}

// Report is one line reported by driver.js.
type Report struct {
	Type  string            `json:"type"`
	ID    int               `json:"id,omitempty"`
	Name  string            `json:"name,omitempty"`
	OK    bool              `json:"ok,omitempty"`
	Error string            `json:"error,omitempty"`
	Event string            `json:"event,omitempty"`
	Args  []json.RawMessage `json:"args,omitempty"`
	// Offset is an event's offset in the server's log, which the server
	// appends to each event when clients can recover.
	Offset      string          `json:"offset,omitempty"`
	SID         string          `json:"sid,omitempty"`
	Transport   string          `json:"transport,omitempty"`
	Recovered   bool            `json:"recovered,omitempty"`
	Message     string          `json:"message,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Description string          `json:"description,omitempty"`
	Node        string          `json:"node,omitempty"`
	Client      string          `json:"client,omitempty"`
	T           int64           `json:"t"`

	raw      string
	consumed bool
}

// Arg returns the i-th argument of an event or ack report (nil when absent).
func (r Report) Arg(i int) json.RawMessage {
	if i < len(r.Args) {
		return r.Args[i]
	}
	return nil
}

// String returns the report as driver.js wrote it (truncated).
func (r Report) String() string { return truncate(r.raw, 600) }

// Driver is one driver.js process running any number of named clients. Use a
// Driver only from the test that created it.
type Driver struct {
	t testing.TB

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *Buffer
	trace  *Buffer

	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  int
	reports []*Report
	results map[int]chan Report
	changed chan struct{}
	done    chan struct{}
	readErr error
}

// ClientDir returns test/client of the module.
func ClientDir(t testing.TB) string {
	return filepath.Join(ModuleRoot(t), "test", "client")
}

// NewDriver starts driver.js under node. Without node on PATH the test is
// skipped, or fails in CI; without test/client/node_modules it fails and says
// to run `make test` (which runs npm ci). The process ends in t.Cleanup; its
// transcript is written to the test log when the test failed.
func NewDriver(t testing.TB) *Driver {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		msg := "harness: node (Node.js 20) is not on PATH; the socket.io-client suites need it"
		if InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := ClientDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client", "package.json")); err != nil {
		t.Fatalf("harness: %s/node_modules is missing socket.io-client: run `make test` "+
			"(it runs `npm ci` in test/client), or `cd test/client && npm ci`", dir)
	}

	d := &Driver{
		t:       t,
		stderr:  &Buffer{},
		trace:   &Buffer{},
		results: make(map[int]chan Report),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	cmd := exec.Command(node, "driver.js")
	cmd.Dir = dir
	cmd.Stderr = d.stderr
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("harness: driver stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("harness: driver stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: start node driver.js: %v", err)
	}
	d.cmd, d.stdin = cmd, stdin
	go d.read(stdout)

	t.Cleanup(func() {
		_ = d.stdin.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("driver.js transcript:\n%s", d.trace.String())
			if s := d.stderr.String(); s != "" {
				t.Logf("driver.js stderr:\n%s", s)
			}
		}
	})

	ready, err := d.next(func(r *Report) bool { return r.Type == "ready" }, 10*time.Second)
	if err != nil {
		t.Fatalf("harness: driver.js did not start: %v", err)
	}
	t.Logf("driver.js ready: node %s, socket.io-client %s", ready.Node, ready.Client)
	return d
}

func (d *Driver) read(stdout io.Reader) {
	br := bufio.NewReaderSize(stdout, 1<<16)
	for {
		line, err := br.ReadString('\n')
		if line = strings.TrimSpace(line); line != "" {
			d.trace.Write([]byte(truncate(line, 2000) + "\n"))
			r := &Report{raw: line}
			if jerr := json.Unmarshal([]byte(line), r); jerr != nil {
				r = &Report{Type: "log", Message: "unparsable driver output: " + truncate(line, 200), raw: line}
			}
			d.mu.Lock()
			if r.Type == "result" {
				if ch, ok := d.results[r.ID]; ok {
					ch <- *r
					delete(d.results, r.ID)
				}
			} else {
				d.reports = append(d.reports, r)
				close(d.changed)
				d.changed = make(chan struct{})
			}
			d.mu.Unlock()
		}
		if err != nil {
			d.mu.Lock()
			d.readErr = fmt.Errorf("driver.js output ended: %v; stderr: %s", err, d.stderr.String())
			d.mu.Unlock()
			close(d.done)
			return
		}
	}
}

// next waits for the first report not yet consumed that match accepts, marks
// it consumed and returns it.
func (d *Driver) next(match func(*Report) bool, timeout time.Duration) (Report, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for _, r := range d.reports {
			if !r.consumed && match(r) {
				r.consumed = true
				d.mu.Unlock()
				return *r, nil
			}
		}
		changed := d.changed
		d.mu.Unlock()
		select {
		case <-changed:
		case <-d.done:
			// Reports may have arrived just before the end.
			d.mu.Lock()
			for _, r := range d.reports {
				if !r.consumed && match(r) {
					r.consumed = true
					d.mu.Unlock()
					return *r, nil
				}
			}
			err := d.readErr
			d.mu.Unlock()
			return Report{}, err
		case <-deadline.C:
			return Report{}, fmt.Errorf("nothing after %v", timeout)
		}
	}
}

// call sends one command and waits for its result.
func (d *Driver) call(cmd map[string]any, timeout time.Duration) (Report, error) {
	ch := make(chan Report, 1)
	d.mu.Lock()
	d.nextID++
	id := d.nextID
	d.results[id] = ch
	d.mu.Unlock()
	cmd["id"] = id
	line, err := json.Marshal(cmd)
	if err != nil {
		return Report{}, fmt.Errorf("encode command: %w", err)
	}
	d.writeMu.Lock()
	_, err = d.stdin.Write(append(line, '\n'))
	d.writeMu.Unlock()
	if err != nil {
		return Report{}, fmt.Errorf("write command to driver.js: %w", err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-d.done:
		return Report{}, d.readErr
	case <-time.After(timeout):
		return Report{}, fmt.Errorf("driver.js did not answer %s within %v", cmd["op"], timeout)
	}
}

func (d *Driver) mustCall(cmd map[string]any, timeout time.Duration) Report {
	d.t.Helper()
	r, err := d.call(cmd, timeout)
	if err != nil {
		d.t.Fatalf("harness: %s %v: %v", cmd["op"], cmd["name"], err)
	}
	if !r.OK {
		d.t.Fatalf("harness: %s %v: %s", cmd["op"], cmd["name"], r.Error)
	}
	return r
}

// Connect creates the client name connected to url (the server's base URL);
// it does not wait for the outcome (see WaitConnect, WaitConnectError). The
// client never reconnects and never shares a Manager.
func (d *Driver) Connect(name, url string, o ConnectOptions) {
	d.t.Helper()
	opts := map[string]any{"forceNew": true, "reconnection": false}
	if len(o.Mode.Transports) > 0 {
		opts["transports"] = o.Mode.Transports
		opts["upgrade"] = o.Mode.Upgrade
	}
	if o.Token != "" {
		opts["auth"] = map[string]any{"token": o.Token}
	}
	if o.Bearer != "" {
		opts["extraHeaders"] = map[string]any{"Authorization": "Bearer " + o.Bearer}
	}
	for k, v := range o.Opts {
		opts[k] = v
	}
	d.mustCall(map[string]any{"op": "connect", "name": name, "url": url, "opts": opts}, 10*time.Second)
}

// WaitConnect waits for client name to connect and returns the connect report
// (socket id in SID, transport in Transport). A connect_error fails the test.
func (d *Driver) WaitConnect(name string, timeout time.Duration) Report {
	d.t.Helper()
	r, err := d.next(func(r *Report) bool {
		return r.Name == name && (r.Type == "connect" || r.Type == "connect_error")
	}, timeout)
	if err != nil {
		d.t.Fatalf("harness: client %s did not connect: %v", name, err)
	}
	if r.Type == "connect_error" {
		d.t.Fatalf("harness: client %s was refused: connect_error %q (data %s)", name, r.Message, r.Data)
	}
	return r
}

// WaitUpgrade waits for client name's transport to upgrade and returns the report.
func (d *Driver) WaitUpgrade(name string, timeout time.Duration) Report {
	d.t.Helper()
	r, err := d.next(func(r *Report) bool { return r.Name == name && r.Type == "upgrade" }, timeout)
	if err != nil {
		d.t.Fatalf("harness: client %s did not upgrade its transport: %v", name, err)
	}
	return r
}

// WaitConnectError waits for client name to be refused and returns the
// connect_error report. A successful connect fails the test.
func (d *Driver) WaitConnectError(name string, timeout time.Duration) Report {
	d.t.Helper()
	r, err := d.next(func(r *Report) bool {
		return r.Name == name && (r.Type == "connect" || r.Type == "connect_error")
	}, timeout)
	if err != nil {
		d.t.Fatalf("harness: client %s got no connect_error: %v", name, err)
	}
	if r.Type == "connect" {
		d.t.Fatalf("harness: client %s connected (socket %s) but should have been refused", name, r.SID)
	}
	return r
}

// WaitDisconnect waits for client name to be disconnected and returns the
// report (reason in Reason).
func (d *Driver) WaitDisconnect(name string, timeout time.Duration) Report {
	d.t.Helper()
	r, err := d.next(func(r *Report) bool { return r.Name == name && r.Type == "disconnect" }, timeout)
	if err != nil {
		d.t.Fatalf("harness: client %s was not disconnected: %v", name, err)
	}
	return r
}

// WaitEvent waits for client name to receive event and returns the report
// (arguments in Args). Each received event is returned once.
func (d *Driver) WaitEvent(name, event string, timeout time.Duration) Report {
	d.t.Helper()
	r, err := d.NextEvent(name, event, timeout)
	if err != nil {
		d.t.Fatalf("harness: client %s did not receive %q: %v", name, event, err)
	}
	return r
}

// NextEvent is WaitEvent returning an error instead of failing the test.
func (d *Driver) NextEvent(name, event string, timeout time.Duration) (Report, error) {
	return d.next(func(r *Report) bool { return r.Name == name && r.Type == "event" && r.Event == event }, timeout)
}

// NextReport waits for the next report of client name of one of the types.
func (d *Driver) NextReport(name string, timeout time.Duration, types ...string) (Report, error) {
	return d.next(func(r *Report) bool {
		if r.Name != name {
			return false
		}
		for _, ty := range types {
			if r.Type == ty {
				return true
			}
		}
		return false
	}, timeout)
}

// AssertNoEvent fails the test when client name receives event within the
// given time (or has received it and it was not consumed yet). Prefer to
// await a later event first, so that within only covers reordering.
func (d *Driver) AssertNoEvent(name, event string, within time.Duration) {
	d.t.Helper()
	r, err := d.NextEvent(name, event, within)
	if err == nil {
		d.t.Errorf("client %s received %q but should not have: %s", name, event, r)
	}
}

// Emit sends event with args from client name, without an acknowledgement.
func (d *Driver) Emit(name, event string, args ...any) {
	d.t.Helper()
	d.mustCall(map[string]any{"op": "emit", "name": name, "event": event, "args": nonNil(args)}, 10*time.Second)
}

// ErrNoAck is wrapped by EmitWithAck when no acknowledgement came.
var ErrNoAck = errors.New("no acknowledgement")

// EmitWithAck sends event with args from client name, asks for an
// acknowledgement and returns its first argument. It returns an error wrapping
// ErrNoAck when none came within timeout or the client was disconnected.
func (d *Driver) EmitWithAck(name, event string, timeout time.Duration, args ...any) (json.RawMessage, error) {
	d.t.Helper()
	r, err := d.call(map[string]any{
		"op": "emit", "name": name, "event": event, "args": nonNil(args),
		"ack": true, "timeout": timeout.Milliseconds(),
	}, timeout+10*time.Second)
	if err != nil {
		d.t.Fatalf("harness: emit %s from %s: %v", event, name, err)
	}
	if !r.OK {
		return nil, fmt.Errorf("%w for %s from %s: %s", ErrNoAck, event, name, r.Error)
	}
	return r.Arg(0), nil
}

// MustAck is EmitWithAck failing the test when no acknowledgement came.
func (d *Driver) MustAck(name, event string, timeout time.Duration, args ...any) json.RawMessage {
	d.t.Helper()
	ack, err := d.EmitWithAck(name, event, timeout, args...)
	if err != nil {
		d.t.Fatalf("%v", err)
	}
	return ack
}

// Disconnect closes client name from the client side.
func (d *Driver) Disconnect(name string) {
	d.t.Helper()
	d.mustCall(map[string]any{"op": "disconnect", "name": name}, 10*time.Second)
}

func nonNil(args []any) []any {
	if args == nil {
		return []any{}
	}
	return args
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}
