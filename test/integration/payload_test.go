package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

// TestMaxPayloadBytesRefusesOversizedSocketPacket proves MAX_PAYLOAD_BYTES on
// the socket side: a packet under the limit is delivered, a packet over it
// either closes that client or is refused by its ack, is never delivered, and
// leaves other clients and the server working.
func TestMaxPayloadBytesRefusesOversizedSocketPacket(t *testing.T) {
	t.Parallel()
	const limit = 16 << 10
	env := harness.DefaultEnv()
	env["MAX_PAYLOAD_BYTES"] = fmt.Sprint(limit)
	s := harness.StartServer(t, env)
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		sender, receiver := "big-sender-"+mode.Name, "big-receiver-"+mode.Name
		connect(t, d, s, mode, "sender", harness.UserToken(t, s.JWTSecret(), sender, nil))
		connect(t, d, s, mode, "receiver", harness.UserToken(t, s.JWTSecret(), receiver, nil))

		small := strings.Repeat("s", limit/2)
		a := expectAck(t, "send_message under the limit", d.MustAck("sender", "send_message", wait,
			map[string]any{"recipient": receiver, "content": small}), true)
		expectChat(t, d.WaitEvent("receiver", "message", wait), a.ID, sender, small)

		large := strings.Repeat("L", 2*limit)
		raw, err := d.EmitWithAck("sender", "send_message", 5*time.Second, map[string]any{"recipient": receiver, "content": large})
		switch {
		case err == nil:
			expectAck(t, "send_message over the limit", raw, false)
		case errors.Is(err, harness.ErrNoAck):
			r := d.WaitDisconnect("sender", wait)
			t.Logf("the oversized packet closed the sender: %s (%s)", r.Reason, r.Description)
		}

		settle(t, d, s, "receiver", receiver)
		d.AssertNoEvent("receiver", "message", quiet)
		if status, body := s.Do("GET", "/health", nil, nil); status != 200 {
			t.Errorf("GET /health after the oversized packet: %d %s", status, body)
		}
	})
}

// TestSIGTERMDisconnectsEveryClientAndExitsZero proves graceful shutdown:
// on SIGTERM every connected client, over every transport, is disconnected
// and the process exits 0 within SHUTDOWN_TIMEOUT.
func TestSIGTERMDisconnectsEveryClientAndExitsZero(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = 5 * time.Second
	env := harness.DefaultEnv()
	env["SHUTDOWN_TIMEOUT"] = shutdownTimeout.String()
	s := harness.StartServer(t, env)
	d := harness.NewDriver(t)
	var names []string
	for _, mode := range harness.Modes {
		for i := range 2 {
			name := fmt.Sprintf("%s-%d", mode.Name, i)
			connect(t, d, s, mode, name, harness.UserToken(t, s.JWTSecret(), "shutdown-"+mode.Name, nil))
			names = append(names, name)
		}
	}

	// A little grace over SHUTDOWN_TIMEOUT for the process to be reaped.
	code, took, err := s.Stop(shutdownTimeout + time.Second)
	if err != nil {
		t.Fatalf("SIGTERM: %v (took %v)", err, took)
	}
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if took > shutdownTimeout {
		t.Errorf("exit took %v after SIGTERM, want within SHUTDOWN_TIMEOUT %v", took, shutdownTimeout)
	}
	reasons := map[string][]string{}
	for _, name := range names {
		r := d.WaitDisconnect(name, wait)
		reasons[r.Reason] = append(reasons[r.Reason], name)
	}
	t.Logf("exit %d after %v; disconnect reasons: %v", code, took, reasons)
}
