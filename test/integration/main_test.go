// Package integration proves the acceptance list of issue 2 against the real
// web3-socket binary, driven by the official socket.io-client over
// websocket-only, polling-only and polling→websocket upgrade.
package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// wait bounds every awaited event; quiet is how long an absence is watched
// for after a later event has already been awaited.
const (
	wait  = 10 * time.Second
	quiet = 300 * time.Millisecond
)

// ack is the acknowledgement of the built-in client events.
type ack struct {
	OK    bool   `json:"ok"`
	ID    string `json:"id"`
	Error string `json:"error"`
}

// chatMessage is the payload of the "message" event send_message delivers.
type chatMessage struct {
	ID      string          `json:"id"`
	From    string          `json:"from"`
	Content string          `json:"content"`
	TS      json.RawMessage `json:"ts"`
}

// connect connects client name as the holder of token in mode and waits until
// it is connected (and, in the upgrade mode, upgraded to websocket). It
// returns the connect report.
func connect(t *testing.T, d *harness.Driver, s *harness.Server, mode harness.Mode, name, token string) harness.Report {
	t.Helper()
	d.Connect(name, s.URL, harness.ConnectOptions{Mode: mode, Token: token})
	return awaitConnected(t, d, mode, name)
}

func awaitConnected(t *testing.T, d *harness.Driver, mode harness.Mode, name string) harness.Report {
	t.Helper()
	r := d.WaitConnect(name, wait)
	if r.SID == "" {
		t.Fatalf("client %s connected without a socket id: %s", name, r)
	}
	switch {
	case mode.Upgrade:
		if up := d.WaitUpgrade(name, wait); up.Transport != "websocket" {
			t.Fatalf("client %s upgraded to %q, want websocket", name, up.Transport)
		}
	case len(mode.Transports) == 1 && r.Transport != mode.Transports[0]:
		t.Fatalf("client %s connected over %q, want %q", name, r.Transport, mode.Transports[0])
	}
	return r
}

// forEachMode runs f as a parallel subtest for every transport mode.
func forEachMode(t *testing.T, f func(t *testing.T, mode harness.Mode)) {
	t.Helper()
	for _, mode := range harness.Modes {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			f(t, mode)
		})
	}
}

// decode unmarshals raw into v or fails the test.
func decode(t *testing.T, what string, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, truncate(raw))
	}
}

// sameJSON reports whether got and want encode the same JSON value.
func sameJSON(t *testing.T, got json.RawMessage, want any) bool {
	t.Helper()
	wb, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("encode %v: %v", want, err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	_ = json.Unmarshal(wb, &w)
	return reflect.DeepEqual(g, w)
}

// expectData fails the test unless the event report carries want as its
// single argument.
func expectData(t *testing.T, r harness.Report, want any) {
	t.Helper()
	if len(r.Args) != 1 || !sameJSON(t, r.Arg(0), want) {
		t.Errorf("client %s got %q with args %s, want the single argument %s", r.Name, r.Event, argsOf(r), mustJSON(want))
	}
}

// expectAck decodes an acknowledgement and checks its ok flag.
func expectAck(t *testing.T, what string, raw json.RawMessage, ok bool) ack {
	t.Helper()
	var a ack
	decode(t, what+" ack", raw, &a)
	if a.OK != ok {
		t.Errorf("%s: ack %s, want ok:%v", what, raw, ok)
	}
	if !ok && a.Error == "" {
		t.Errorf("%s: refusal ack %s has no error message", what, raw)
	}
	return a
}

func argsOf(r harness.Report) string {
	b, _ := json.Marshal(r.Args)
	return truncate(b)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return truncate(b)
}

func truncate(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(bytes.TrimSpace(b))
}
