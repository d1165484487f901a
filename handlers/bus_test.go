package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// fakeDeliverer records the envelopes queued for local delivery.
type fakeDeliverer struct {
	err  error
	got  []*schemas.Envelope
	ctxs []context.Context
}

func (d *fakeDeliverer) Enqueue(ctx context.Context, env *schemas.Envelope, _ string) error {
	d.ctxs = append(d.ctxs, ctx)
	if d.err != nil {
		return d.err
	}
	d.got = append(d.got, env)
	return nil
}

// fakeMembers records the cluster commands applied to this instance.
type fakeMembers struct{ calls []string }

func (m *fakeMembers) JoinUser(user, room string)  { m.calls = append(m.calls, "join "+user+" "+room) }
func (m *fakeMembers) LeaveUser(user, room string) { m.calls = append(m.calls, "leave "+user+" "+room) }
func (m *fakeMembers) DisconnectUser(user string)  { m.calls = append(m.calls, "disconnect "+user) }

// busMessage wraps env the way router.Publisher puts it on the bus.
func busMessage(t *testing.T, env *schemas.Envelope) *message.Message {
	t.Helper()
	msg, err := router.NewMessage(env)
	if err != nil {
		t.Fatalf("router.NewMessage: %v", err)
	}
	return msg
}

type ctxKey struct{}

func TestOutboundQueuesAValidDeliverEnvelope(t *testing.T) {
	tests := []struct {
		name string
		env  *schemas.Envelope
	}{
		{"to a user", schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "notification", json.RawMessage(`{"message":"Hello"}`))},
		{"to a room", schemas.NewDeliver(schemas.Target{Rooms: []string{"lobby"}}, "chat", json.RawMessage(`[1,"two"]`))},
		{"to everyone but one", schemas.NewDeliver(schemas.Target{All: true, Except: &schemas.Exclude{Users: []string{"u2"}}}, "news", nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDeliverer{}
			msg := busMessage(t, tt.env)
			ctx := context.WithValue(context.Background(), ctxKey{}, "msg-ctx")
			msg.SetContext(ctx)
			if err := Outbound(d)(msg); err != nil {
				t.Fatalf("Outbound: %v", err)
			}
			if len(d.got) != 1 {
				t.Fatalf("queued %d envelopes, want 1", len(d.got))
			}
			got := d.got[0]
			if got.ID != tt.env.ID || got.Kind != schemas.KindDeliver || got.Event != tt.env.Event ||
				string(got.Data) != string(tt.env.Data) || !got.TS.Equal(tt.env.TS) {
				t.Errorf("queued %+v, want %+v", got, tt.env)
			}
			if got.To == nil || got.To.All != tt.env.To.All || !slices.Equal(got.To.Users, tt.env.To.Users) ||
				!slices.Equal(got.To.Rooms, tt.env.To.Rooms) {
				t.Errorf("queued target %+v, want %+v", got.To, tt.env.To)
			}
			if (got.To.Except == nil) != (tt.env.To.Except == nil) {
				t.Errorf("queued except %+v, want %+v", got.To.Except, tt.env.To.Except)
			}
			if d.ctxs[0].Value(ctxKey{}) != "msg-ctx" {
				t.Error("Enqueue did not get the message's context")
			}
		})
	}
}

func TestOutboundReturnsADelivererErrorForRetry(t *testing.T) {
	queueFull := errors.New("delivery queue full")
	d := &fakeDeliverer{err: queueFull}
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "e", nil)
	err := Outbound(d)(busMessage(t, env))
	if !errors.Is(err, queueFull) {
		t.Fatalf("Outbound = %v, want the deliverer's error", err)
	}
	if router.IsPermanent(err) {
		t.Errorf("a deliverer error is permanent (%v); it should be retried", err)
	}
}

// envelopeJSON returns a well-formed deliver envelope as JSON, with fields
// overriding it (a nil value removes the field), to build broken payloads from.
func envelopeJSON(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	base := map[string]any{
		"v": 1, "id": "01936a1e-7d1c-7b7a-9f41-4c1d2f7e0a01", "kind": "deliver",
		"to": map[string]any{"users": []string{"u1"}}, "event": "e", "ts": time.Now().UTC().Format(time.RFC3339Nano),
	}
	for k, v := range fields {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	b, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOutboundRefusesABadPayloadPermanently(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		msg     string
	}{
		{"not JSON", []byte(`not json`), "malformed"},
		{"empty", []byte(``), "malformed"},
		{"truncated", []byte(`{"v":1,"id":"x"`), "malformed"},
		{"JSON array", []byte(`[1,2]`), "invalid"},
		{"empty object", []byte(`{}`), "invalid"},
		{"wrong version", envelopeJSON(t, map[string]any{"v": 2}), "/v"},
		{"no id", envelopeJSON(t, map[string]any{"id": nil}), "/id"},
		{"no ts", envelopeJSON(t, map[string]any{"ts": nil}), "/ts"},
		{"no target", envelopeJSON(t, map[string]any{"to": nil}), "/to"},
		{"empty target", envelopeJSON(t, map[string]any{"to": map[string]any{}}), "/to"},
		{"misspelt target field", envelopeJSON(t, map[string]any{"to": map[string]any{"user": []string{"u1"}}}), "/to"},
		{"reserved event", envelopeJSON(t, map[string]any{"event": "connect"}), "/event"},
		{"no event", envelopeJSON(t, map[string]any{"event": nil}), "/event"},
		{"unknown kind", envelopeJSON(t, map[string]any{"kind": "shout"}), "/kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDeliverer{}
			err := Outbound(d)(message.NewMessage("m1", tt.payload))
			wantPermanent(t, err, tt.msg)
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Errorf("error %v does not wrap schemas.ErrInvalid", err)
			}
			if len(d.ctxs) != 0 {
				t.Errorf("Enqueue called %d times for a bad payload", len(d.ctxs))
			}
		})
	}
}

func TestOutboundRefusesOtherKindsPermanently(t *testing.T) {
	tests := []struct {
		name string
		env  *schemas.Envelope
	}{
		{"control", schemas.NewControl(schemas.ActionJoin, "u1", "lobby", "inst-1")},
		{"client event", schemas.NewClientEvent("u1", "s1", "inst-1", "chat", json.RawMessage(`{}`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDeliverer{}
			err := Outbound(d)(busMessage(t, tt.env))
			wantPermanent(t, err, string(tt.env.Kind), "deliver")
			if len(d.ctxs) != 0 {
				t.Errorf("Enqueue called for a %s envelope", tt.env.Kind)
			}
		})
	}
}

func TestControlAppliesCommandsToMembers(t *testing.T) {
	tests := []struct {
		name string
		env  *schemas.Envelope
		want []string
	}{
		{"join", schemas.NewControl(schemas.ActionJoin, "u1", "lobby", "inst-2"), []string{"join u1 lobby"}},
		{"leave", schemas.NewControl(schemas.ActionLeave, "u1", "chat/general", "inst-2"), []string{"leave u1 chat/general"}},
		{"disconnect", schemas.NewControl(schemas.ActionDisconnect, "u7", "", "inst-2"), []string{"disconnect u7"}},
		{"heartbeat changes no socket", schemas.NewControl(schemas.ActionHeartbeat, "", "", "inst-2"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMembers{}
			if err := Control(m, &fakeObserver{}, nil)(busMessage(t, tt.env)); err != nil {
				t.Fatalf("Control: %v", err)
			}
			if !slices.Equal(m.calls, tt.want) {
				t.Errorf("members got %q, want %q", m.calls, tt.want)
			}
		})
	}
}

func TestControlRefusesBadPayloadsPermanently(t *testing.T) {
	control := func(fields map[string]any) []byte {
		merged := map[string]any{"kind": "control", "to": nil, "event": nil, "action": "join", "userId": "u1", "room": "lobby"}
		for k, v := range fields {
			merged[k] = v
		}
		return envelopeJSON(t, merged)
	}
	deliver := busMessage(t, schemas.NewDeliver(schemas.Target{All: true}, "e", nil)).Payload
	tests := []struct {
		name    string
		payload []byte
		msg     []string
	}{
		{"not JSON", []byte(`{`), []string{"malformed"}},
		{"deliver envelope", deliver, []string{"deliver", "control"}},
		{"unknown action", control(map[string]any{"action": "kick"}), []string{"/action"}},
		{"join without room", control(map[string]any{"room": nil}), []string{"/room"}},
		{"leave without user", control(map[string]any{"action": "leave", "userId": nil}), []string{"/userId"}},
		{"disconnect without user", control(map[string]any{"action": "disconnect", "userId": nil, "room": nil}), []string{"/userId"}},
		{"empty room", control(map[string]any{"room": ""}), []string{"/room"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMembers{}
			err := Control(m, &fakeObserver{}, nil)(message.NewMessage("m1", tt.payload))
			wantPermanent(t, err, tt.msg...)
			if len(m.calls) != 0 {
				t.Errorf("members got %q for a bad payload", m.calls)
			}
		})
	}
}

func wantPermanent(t *testing.T, err error, msgParts ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("handler accepted the payload, want an error")
	}
	if !router.IsPermanent(err) {
		t.Errorf("error %v is not permanent; it would be retried", err)
	}
	for _, part := range msgParts {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

type fakeObserver struct{ seen []router.Member }

func (f *fakeObserver) Observe(m router.Member) { f.seen = append(f.seen, m) }

func TestControlRecordsHeartbeatsInTheClusterView(t *testing.T) {
	env := schemas.NewControl(schemas.ActionHeartbeat, "", "", "inst-9")
	env.Data = HeartbeatData(3, 2, 1)
	obs := &fakeObserver{}
	if err := Control(&fakeMembers{}, obs, nil)(busMessage(t, env)); err != nil {
		t.Fatal(err)
	}
	if len(obs.seen) != 1 {
		t.Fatalf("observed %d heartbeats, want 1", len(obs.seen))
	}
	if m := obs.seen[0]; m.Instance != "inst-9" || m.Connections != 3 || m.Users != 2 || m.Rooms != 1 {
		t.Fatalf("observed %+v", m)
	}
}

// loneFakeDeliverer is a fakeDeliverer that can deliver at once, recording
// which envelopes came that way.
type loneFakeDeliverer struct {
	fakeDeliverer
	now []string
}

func (d *loneFakeDeliverer) Deliver(ctx context.Context, env *schemas.Envelope, offset string) error {
	d.now = append(d.now, env.Event)
	return d.Enqueue(ctx, env, offset)
}

func TestOutboundDeliversOnlyLoneEnvelopesAtOnce(t *testing.T) {
	d := &loneFakeDeliverer{}
	h := NewOutbound(d, nil, nil)
	envelope := func(event string) *message.Message {
		return busMessage(t, schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, event, nil))
	}
	// A batch of three: queued, so the handler goes on with the batch.
	batch := []*message.Message{envelope("b1"), envelope("b2"), envelope("b3")}
	h.Prepare(batch)
	for _, m := range batch {
		if err := h.Handle(m); err != nil {
			t.Fatal(err)
		}
	}
	// A batch of one, then a message that came without a batch: at once.
	lone := envelope("lone")
	h.Prepare([]*message.Message{lone})
	if err := h.Handle(lone); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(envelope("plain")); err != nil {
		t.Fatal(err)
	}
	// A batch cut short (nacked, handed over again as a new batch): the
	// next Prepare starts over.
	h.Prepare([]*message.Message{envelope("c1"), envelope("c2")})
	again := envelope("c2")
	h.Prepare([]*message.Message{again})
	if err := h.Handle(again); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, env := range d.got {
		order = append(order, env.Event)
	}
	if want := []string{"b1", "b2", "b3", "lone", "plain", "c2"}; !slices.Equal(order, want) {
		t.Fatalf("handed over %v, want %v", order, want)
	}
	if want := []string{"lone", "plain", "c2"}; !slices.Equal(d.now, want) {
		t.Fatalf("delivered at once %v, want %v (the envelopes of a larger batch are queued)", d.now, want)
	}
}
