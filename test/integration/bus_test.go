package integration

// The tests in this file need the bus itself, so they run web3-socket
// in-process (app.New + Serve on a loopback listener) instead of as a binary;
// the clients are still the official socket.io-client.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/web3-socket/web3-socket/cmd/web3-socket/app"
	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// inProcess is one web3-socket instance running inside the test binary.
type inProcess struct {
	*harness.Server
	app    *app.App
	topics router.Topics
}

// startInProcess runs an instance in-process until the test ends; its log is
// written to the test log when the test failed.
func startInProcess(t *testing.T) *inProcess {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.JWTSecret = harness.RandomSecret(32)
	cfg.APIKeys = []string{harness.RandomSecret(24)}
	cfg.InstanceID = "it-bus"
	cfg.ShutdownTimeout = 5 * time.Second

	logs := &harness.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(cfg, log, "it")
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
			t.Errorf("Serve did not return %v after its context was cancelled", cfg.ShutdownTimeout+5*time.Second)
		}
		if t.Failed() {
			t.Logf("in-process web3-socket log:\n%s", logs.String())
		}
	})
	s := harness.Attach(t, "http://"+ln.Addr().String(), map[string]string{
		"JWT_SECRET": cfg.JWTSecret, "API_KEY": cfg.APIKeys[0],
	})
	return &inProcess{Server: s, app: a, topics: router.NewTopics(cfg.TopicPrefix)}
}

// watch subscribes to topic (fan-out) until the test ends. It acks every
// message at once (the embedded bus blocks publishers until subscribers ack)
// and passes on those keep accepts.
func (p *inProcess) watch(t *testing.T, topic string, keep func(*message.Message) bool) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := p.app.Bus().FanOut().Subscribe(ctx, topic)
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	out := make(chan *message.Message, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range msgs {
			msg.Ack()
			if keep(msg) {
				select {
				case out <- msg:
				default: // the test stopped reading; keep acking
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// receive waits for the next message on ch.
func receive(t *testing.T, ch <-chan *message.Message, what string) *message.Message {
	t.Helper()
	select {
	case msg := <-ch:
		return msg
	case <-time.After(wait):
		t.Fatalf("no %s within %v", what, wait)
		return nil
	}
}

// TestClientEventIsPublishedOnInboundTopicWithSenderIDs proves that a client
// event with no built-in meaning ("chat") is published on the inbound topic
// as a client_event envelope naming the sender's user and socket, whose id is
// the Watermill message UUID and the id in the client's {ok:true, id} ack.
func TestClientEventIsPublishedOnInboundTopicWithSenderIDs(t *testing.T) {
	t.Parallel()
	p := startInProcess(t)
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		user := "inbound-" + mode.Name
		inbound := p.watch(t, p.topics.Inbound, func(msg *message.Message) bool {
			env, err := schemas.Decode(msg.Payload)
			return err == nil && env.UserID == user
		})
		d := harness.NewDriver(t)
		conn := connect(t, d, p.Server, mode, "c", harness.UserToken(t, p.JWTSecret(), user, nil))

		data := map[string]any{"text": "hello backends", "n": 3}
		a := expectAck(t, "chat", d.MustAck("c", "chat", wait, data), true)
		if a.ID == "" {
			t.Fatalf("chat ack has no id")
		}

		msg := receive(t, inbound, "client_event of "+user+" on "+p.topics.Inbound)
		env, err := schemas.Decode(msg.Payload)
		if err != nil {
			t.Fatalf("decode the inbound envelope: %v: %s", err, msg.Payload)
		}
		if env.Kind != schemas.KindClientEvent || env.ID != a.ID || msg.UUID != a.ID ||
			env.UserID != user || env.SocketID != conn.SID || env.Event != "chat" || env.Instance != "it-bus" {
			t.Errorf("inbound message %s (uuid %s), want kind client_event, id and uuid %s, userId %s, socketId %s, event chat, instance it-bus",
				msg.Payload, msg.UUID, a.ID, user, conn.SID)
		}
		if !sameJSON(t, env.Data, data) {
			t.Errorf("inbound envelope data %s, want %s", env.Data, mustJSON(data))
		}
		for key, want := range map[string]string{schemas.MetaKind: "client_event", schemas.MetaEvent: "chat", schemas.MetaUser: user, schemas.MetaSocket: conn.SID} {
			if got := msg.Metadata.Get(key); got != want {
				t.Errorf("inbound message metadata %s = %q, want %q (metadata %v)", key, got, want, msg.Metadata)
			}
		}
	})
}

// TestInvalidOutboundEnvelopeGoesToPoisonAndNextIsDelivered proves that
// envelopes a backend publishes on the outbound topic that are malformed or
// invalid land on the poison topic, unchanged and with the reason in the
// reason_poisoned metadata, and that the valid envelope published after them
// is still delivered to the client.
func TestInvalidOutboundEnvelopeGoesToPoisonAndNextIsDelivered(t *testing.T) {
	t.Parallel()
	p := startInProcess(t)
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		user := "poison-" + mode.Name
		d := harness.NewDriver(t)
		connect(t, d, p.Server, mode, "c", harness.UserToken(t, p.JWTSecret(), user, nil))

		type badEnvelope struct{ name, payload string }
		bad := map[string]badEnvelope{} // by message UUID
		for _, b := range []badEnvelope{
			{"not JSON", `{"v":1,"kind":"deliver",`},
			{"no target", `{"v":1,"id":"` + schemas.NewID() + `","kind":"deliver","event":"x","data":1,"ts":"2026-11-27T10:00:00Z"}`},
			{"unknown kind", `{"v":1,"id":"` + schemas.NewID() + `","kind":"explode","to":{"users":["` + user + `"]},"event":"x","ts":"2026-11-27T10:00:00Z"}`},
		} {
			bad[schemas.NewID()] = b
		}
		poison := p.watch(t, p.topics.Poison, func(msg *message.Message) bool { _, ok := bad[msg.UUID]; return ok })

		var msgs []*message.Message
		for uuid, b := range bad {
			msgs = append(msgs, message.NewMessage(uuid, []byte(b.payload)))
		}
		data := json.RawMessage(`{"after":"poison"}`)
		env := schemas.NewDeliver(schemas.Target{Users: []string{user}}, "after-poison", data)
		payload, err := schemas.Encode(env)
		if err != nil {
			t.Fatalf("encode a valid envelope: %v", err)
		}
		msgs = append(msgs, message.NewMessage(env.ID, payload))
		for _, msg := range msgs {
			if err := p.app.Bus().Publisher().Publish(p.topics.Outbound, msg); err != nil {
				t.Fatalf("publish on %s: %v", p.topics.Outbound, err)
			}
		}

		expectData(t, d.WaitEvent("c", "after-poison", wait), data)
		d.AssertNoEvent("c", "x", 0)

		seen := map[string]bool{}
		for range bad {
			msg := receive(t, poison, "poisoned message")
			b := bad[msg.UUID]
			seen[msg.UUID] = true
			if !bytes.Equal(msg.Payload, []byte(b.payload)) {
				t.Errorf("poisoned %s: payload %s, want the original %s", b.name, msg.Payload, b.payload)
			}
			if reason := msg.Metadata.Get("reason_poisoned"); reason == "" {
				t.Errorf("poisoned %s carries no reason_poisoned (metadata %v)", b.name, msg.Metadata)
			} else {
				t.Logf("poisoned %s: reason_poisoned %q", b.name, reason)
			}
		}
		if len(seen) != len(bad) {
			t.Errorf("%d distinct envelopes poisoned, want all %d invalid ones", len(seen), len(bad))
		}
	})
}
