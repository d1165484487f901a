package router

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/web3-socket/web3-socket/schemas"
)

var topics = NewTopics("test.")

// startRouter runs a router over a fresh memory bus with fn on the outbound
// topic, and returns the bus, the metrics and a channel of poisoned messages.
func startRouter(t *testing.T, fn HandlerFunc) (Bus, *Metrics, <-chan *message.Message) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus, err := NewBus(BusConfig{Kind: KindMemory}, log)
	if err != nil {
		t.Fatal(err)
	}
	metrics := NewMetrics(prometheus.NewRegistry())
	rt, err := New(Config{Poison: topics.Poison, RetryInterval: time.Millisecond}, bus, metrics, log)
	if err != nil {
		t.Fatal(err)
	}
	rt.HandleFanOut("test", topics.Outbound, fn)
	ctx, cancel := context.WithCancel(context.Background())
	poisoned, err := bus.FanOut().Subscribe(ctx, topics.Poison)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); _ = rt.Close(); <-done; _ = bus.Close() })
	select {
	case <-rt.Running():
	case <-time.After(5 * time.Second):
		t.Fatal("router did not start")
	}
	return bus, metrics, poisoned
}

func deliver(t *testing.T, n int) *message.Message {
	t.Helper()
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "tick", json.RawMessage(`{"n":`+strconv.Itoa(n)+`}`))
	msg, err := NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// publish publishes in the background: the memory bus blocks a publisher until
// every subscriber acks, and the poison topic's subscriber is the test itself.
func publish(t *testing.T, bus Bus, msgs ...*message.Message) {
	t.Helper()
	go func() {
		if err := bus.Publisher().Publish(topics.Outbound, msgs...); err != nil {
			t.Error(err)
		}
	}()
}

func waitPoison(t *testing.T, poisoned <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg := <-poisoned:
		msg.Ack()
		return msg
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the poison topic")
		return nil
	}
}

func TestInvalidEnvelopeGoesToPoisonAndTheNextIsHandled(t *testing.T) {
	handled := make(chan string, 4)
	bus, metrics, poisoned := startRouter(t, func(msg *message.Message) error {
		if _, err := schemas.Decode(msg.Payload); err != nil {
			return err
		}
		handled <- msg.UUID
		return nil
	})
	bad := message.NewMessage("bad-1", []byte(`{"v":1,"kind":"deliver"}`))
	good := deliver(t, 1)
	publish(t, bus, bad, good)
	p := waitPoison(t, poisoned)
	if p.UUID != "bad-1" {
		t.Fatalf("poisoned %q, want bad-1", p.UUID)
	}
	reason := p.Metadata.Get(middleware.ReasonForPoisonedKey)
	if reason == "" || !strings.Contains(reason, "envelope invalid") || !strings.Contains(reason, "/id") {
		t.Fatalf("poison reason %q does not say what is wrong", reason)
	}
	select {
	case id := <-handled:
		if id != good.UUID {
			t.Fatalf("handled %q, want %q", id, good.UUID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the valid envelope after the poisoned one was not handled")
	}
	if got := testutil.ToFloat64(metrics.poisoned.WithLabelValues(topics.Outbound)); got != 1 {
		t.Fatalf("poisoned counter = %v, want 1", got)
	}
}

func TestTransientErrorIsRetriedThenHandled(t *testing.T) {
	var mu sync.Mutex
	attempts := 0
	handled := make(chan struct{}, 1)
	bus, _, poisoned := startRouter(t, func(*message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts < 3 {
			return errors.New("temporarily unavailable")
		}
		handled <- struct{}{}
		return nil
	})
	publish(t, bus, deliver(t, 1))
	select {
	case <-handled:
	case p := <-poisoned:
		t.Fatalf("a transient error was poisoned: %s", p.Metadata.Get(middleware.ReasonForPoisonedKey))
	case <-time.After(5 * time.Second):
		t.Fatal("not handled after retries")
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 3 {
		t.Fatalf("attempts = %d, want 3", attempts)
	}
}

func TestTransientErrorIsRetriedMaxRetriesTimesThenPoisoned(t *testing.T) {
	var mu sync.Mutex
	attempts := 0
	bus, _, poisoned := startRouter(t, func(*message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		return errors.New("still down")
	})
	publish(t, bus, deliver(t, 1))
	p := waitPoison(t, poisoned)
	if got := p.Metadata.Get(middleware.ReasonForPoisonedKey); got != "still down" {
		t.Fatalf("reason %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := 1 + 3; attempts != want { // the first attempt and the default 3 retries
		t.Fatalf("attempts = %d, want %d", attempts, want)
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	var mu sync.Mutex
	attempts := 0
	bus, _, poisoned := startRouter(t, func(*message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		return Permanent(errors.New("cannot ever work"))
	})
	publish(t, bus, deliver(t, 1))
	p := waitPoison(t, poisoned)
	if got := p.Metadata.Get(middleware.ReasonForPoisonedKey); got != "cannot ever work" {
		t.Fatalf("reason %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 1 {
		t.Fatalf("attempts = %d, want 1", attempts)
	}
}

func TestPanicInHandlerIsPoisonedAndRouterGoesOn(t *testing.T) {
	handled := make(chan string, 1)
	first := true
	bus, _, poisoned := startRouter(t, func(msg *message.Message) error {
		if first {
			first = false
			panic("boom")
		}
		handled <- msg.UUID
		return nil
	})
	// The recoverer turns the panic into an error the retry middleware
	// retries; the second attempt succeeds.
	msg := deliver(t, 1)
	if err := bus.Publisher().Publish(topics.Outbound, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-handled:
		if id != msg.UUID {
			t.Fatalf("handled %q", id)
		}
	case p := <-poisoned:
		t.Fatalf("poisoned after one panic: %s", p.Metadata.Get(middleware.ReasonForPoisonedKey))
	case <-time.After(5 * time.Second):
		t.Fatal("router stopped handling after a panic")
	}
}

func TestMemoryBusKeepsOrder(t *testing.T) {
	const n = 200
	got := make(chan string, n)
	bus, _, _ := startRouter(t, func(msg *message.Message) error {
		got <- msg.UUID
		return nil
	})
	want := make([]string, n)
	go func() {
		for i := range n {
			msg := deliver(t, i)
			want[i] = msg.UUID
			if err := bus.Publisher().Publish(topics.Outbound, msg); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range n {
		select {
		case id := <-got:
			if id != want[i] {
				t.Fatalf("message %d out of order", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d messages handled", i, n)
		}
	}
}

func TestNewMessageMirrorsRoutingFieldsInMetadata(t *testing.T) {
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1", "u2"}, Rooms: []string{"r"}}, "ev", json.RawMessage(`1`))
	msg, err := NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		schemas.MetaKind: "deliver", schemas.MetaEvent: "ev", schemas.MetaUser: "u1,u2", schemas.MetaRoom: "r",
	}
	for k, v := range want {
		if got := msg.Metadata.Get(k); got != v {
			t.Errorf("metadata %s = %q, want %q", k, got, v)
		}
	}
	if msg.UUID != env.ID {
		t.Errorf("uuid %q != envelope id %q", msg.UUID, env.ID)
	}
	if _, err := NewMessage(&schemas.Envelope{V: 1, Kind: schemas.KindDeliver}); !errors.Is(err, schemas.ErrInvalid) {
		t.Errorf("invalid envelope: err = %v, want ErrInvalid", err)
	}
}

// The user and room metadata list the envelope's own user (or room) first,
// then its target's, as one comma-separated string.
func TestNewMessageJoinsUsersAndRoomsOfEveryKind(t *testing.T) {
	tests := []struct {
		name       string
		env        *schemas.Envelope
		user, room string
	}{
		{"one user", schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "ev", nil), "u1", ""},
		{"one room", schemas.NewDeliver(schemas.Target{Rooms: []string{"r1"}}, "ev", nil), "", "r1"},
		{"everyone", schemas.NewDeliver(schemas.Target{All: true}, "ev", nil), "", ""},
		{"several", schemas.NewDeliver(schemas.Target{Users: []string{"u1", "u2", "u3"}, Rooms: []string{"r1", "r2"}}, "ev", nil), "u1,u2,u3", "r1,r2"},
		{"client event", schemas.NewClientEvent("u1", "s1", "i1", "chat", nil), "u1", ""},
		{"control", schemas.NewControl(schemas.ActionJoin, "u1", "lobby", "i1"), "u1", "lobby"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := NewMessage(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]string{schemas.MetaUser: tt.user, schemas.MetaRoom: tt.room} {
				if got, ok := msg.Metadata[key]; got != want || ok != (want != "") {
					t.Errorf("metadata %s = %q (present %v), want %q", key, got, ok, want)
				}
			}
		})
	}
	for _, tt := range []struct {
		first string
		rest  []string
		want  string
	}{
		{"", nil, ""},
		{"a", nil, "a"},
		{"", []string{"b"}, "b"},
		{"a", []string{"b", "c"}, "a,b,c"},
	} {
		if got := joinIDs(tt.first, tt.rest); got != tt.want {
			t.Errorf("joinIDs(%q, %q) = %q, want %q", tt.first, tt.rest, got, tt.want)
		}
	}
}

func TestPublisherReportsBusUnavailable(t *testing.T) {
	p := NewPublisher(failingPublisher{}, NewMetrics(prometheus.NewRegistry()))
	err := p.Publish(context.Background(), topics.Outbound, schemas.NewDeliver(schemas.Target{All: true}, "ev", nil))
	if !errors.Is(err, ErrBusUnavailable) {
		t.Fatalf("err = %v, want ErrBusUnavailable", err)
	}
}

func TestPublisherCountsWhatItPublishesByTopic(t *testing.T) {
	metrics := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(newMemoryBus(0, slog.New(slog.DiscardHandler)).Publisher(), metrics)
	env := func() *schemas.Envelope { return schemas.NewDeliver(schemas.Target{All: true}, "ev", nil) }
	for _, call := range []struct {
		topic string
		envs  []*schemas.Envelope
	}{
		{"a", []*schemas.Envelope{env()}},
		{"b", []*schemas.Envelope{env(), env()}},
		{"a", []*schemas.Envelope{env(), env()}},
	} {
		if err := p.Publish(context.Background(), call.topic, call.envs...); err != nil {
			t.Fatal(err)
		}
	}
	for topic, want := range map[string]float64{"a": 3, "b": 2} {
		if got := testutil.ToFloat64(metrics.published.WithLabelValues(topic)); got != want {
			t.Errorf("published on %s = %v, want %v", topic, got, want)
		}
	}
}

type failingPublisher struct{}

func (failingPublisher) Publish(string, ...*message.Message) error {
	return errors.New("connection refused")
}
func (failingPublisher) Close() error { return nil }

func TestEnvelopeTravelsWithInProcessMessagesOnly(t *testing.T) {
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "ev", json.RawMessage(`1`))
	msg, err := NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := EnvelopeOf(msg); !ok || got != env {
		t.Fatalf("EnvelopeOf(built message) = %v, %v; want the envelope", got, ok)
	}
	if _, ok := EnvelopeOf(message.NewMessage("x", msg.Payload)); ok {
		t.Fatal("a message made from bytes claims an in-process envelope")
	}
	// Through the memory bus the envelope arrives with the message.
	got := make(chan *message.Message, 1)
	bus, _, _ := startRouter(t, func(m *message.Message) error { got <- m; return nil })
	publish(t, bus, msg)
	select {
	case m := <-got:
		if e, ok := EnvelopeOf(m); !ok || e.ID != env.ID {
			t.Fatalf("after the memory bus: EnvelopeOf = %v, %v", e, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not handled")
	}
}
