package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/web3-socket/web3-socket/bridge"
	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// publishCall is one call of Publisher.Publish as the fake saw it.
type publishCall struct {
	topic    string
	envs     []*schemas.Envelope
	deadline time.Time
	hasDL    bool
}

// fakePublisher records what it is asked to publish. With err set it refuses
// every call and records nothing as accepted (attempts are still counted).
type fakePublisher struct {
	mu       sync.Mutex
	err      error
	accepted []publishCall
	attempts int
}

func (p *fakePublisher) Publish(ctx context.Context, topic string, envs ...*schemas.Envelope) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.err != nil {
		return p.err
	}
	// As router.Publisher: every envelope is validated before any is
	// published.
	for i, env := range envs {
		if err := env.Validate(); err != nil {
			return &router.InvalidError{Index: i, Err: err}
		}
	}
	dl, ok := ctx.Deadline()
	p.accepted = append(p.accepted, publishCall{topic: topic, envs: envs, deadline: dl, hasDL: ok})
	return nil
}

func (p *fakePublisher) calls() []publishCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]publishCall(nil), p.accepted...)
}

func (p *fakePublisher) attemptCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts
}

// blockingPublisher holds every Publish until release is closed, ignoring
// the context, like a broker client stuck on a dead connection.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlockingPublisher() *blockingPublisher {
	return &blockingPublisher{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (p *blockingPublisher) Publish(context.Context, string, ...*schemas.Envelope) error {
	p.entered <- struct{}{}
	<-p.release
	return nil
}

func (p *blockingPublisher) Release() { p.once.Do(func() { close(p.release) }) }

// ctxPublisher waits for its context to end and returns why, as a publisher
// that honours cancellation does when the broker does not answer in time.
type ctxPublisher struct{}

func (ctxPublisher) Publish(ctx context.Context, topic string, _ ...*schemas.Envelope) error {
	<-ctx.Done()
	return ctx.Err()
}

// fakePinger is the bus as /ready and /api/status see it.
type fakePinger struct {
	mu  sync.Mutex
	err error
}

func (p *fakePinger) Kind() string { return "memory" }

func (p *fakePinger) Ping(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *fakePinger) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// fakeEdge answers fixed statistics and remembers which users were asked for.
type fakeEdge struct {
	mu       sync.Mutex
	stats    bridge.Stats
	presence map[string]bridge.Presence
	rooms    map[string]int
	asked    []string
}

func (e *fakeEdge) LocalStats() bridge.Stats { return e.stats }

func (e *fakeEdge) LocalUser(user string) bridge.Presence {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, user)
	if p, ok := e.presence[user]; ok {
		return p
	}
	return bridge.Presence{Rooms: []string{}}
}

func (e *fakeEdge) LocalRooms() map[string]int { return e.rooms }

const (
	testInstance = "inst-1"
	testVersion  = "1.2.3"
	outTopic     = "socket.outbound"
	ctlTopic     = "socket.control"
)

var testKeys = []string{"key-one", "key-two", "key-three"}

// fixture is an API mounted the way the binary mounts it, with fakes around it.
type fixture struct {
	api  *API
	h    http.Handler
	pub  *fakePublisher
	bus  *fakePinger
	edge *fakeEdge
}

func newFixture(t *testing.T, configure func(*APIConfig)) *fixture {
	t.Helper()
	return newFixtureWith(t, configure, nil)
}

// newFixtureWith builds the API over pub, or over a fakePublisher when pub is nil.
func newFixtureWith(t *testing.T, configure func(*APIConfig), pub Publisher) *fixture {
	t.Helper()
	cfg := APIConfig{
		Version:       testVersion,
		Instance:      testInstance,
		Keys:          testKeys,
		OutboundTopic: outTopic,
		ControlTopic:  ctlTopic,
	}
	if configure != nil {
		configure(&cfg)
	}
	f := &fixture{
		bus: &fakePinger{},
		edge: &fakeEdge{
			stats:    bridge.Stats{Connections: 5, Users: 3, Rooms: 4},
			presence: map[string]bridge.Presence{},
			rooms:    map[string]int{},
		},
	}
	if pub == nil {
		f.pub = &fakePublisher{}
		pub = f.pub
	}
	api, err := NewAPI(cfg, pub, f.bus, f.edge, nil, NewHTTPMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewAPI: %v", err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	f.api, f.h = api, mux
	return f
}

// req describes one HTTP request; a zero key means "send the first test key".
type req struct {
	method string
	path   string
	body   string
	// contentType is sent unless noContentType; empty means application/json.
	contentType   string
	noContentType bool
	// headers, when set, are sent instead of the default X-API-Key.
	headers map[string]string
	noKey   bool
	// chunked hides the length, as a chunked request body does.
	chunked bool
}

func (f *fixture) do(t *testing.T, r req) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.chunked {
		hr.ContentLength = -1
		hr.Body = io.NopCloser(strings.NewReader(r.body))
		hr.TransferEncoding = []string{"chunked"}
	}
	if !r.noContentType {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	if !r.noKey && r.headers == nil {
		hr.Header.Set("X-API-Key", testKeys[0])
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, hr)
	return rec
}

// errorBody is the REST error model; decoding refuses any other field.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks status, content type and that the body is exactly the
// error model with code and a message containing every one of msgParts.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string, msgParts ...string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var eb errorBody
	decodeStrict(t, rec.Body.Bytes(), &eb)
	if eb.Error.Code != code {
		t.Errorf("error.code = %q, want %q; body %s", eb.Error.Code, code, rec.Body)
	}
	if eb.Error.Message == "" {
		t.Errorf("error.message is empty; body %s", rec.Body)
	}
	for _, part := range msgParts {
		if !strings.Contains(eb.Error.Message, part) {
			t.Errorf("error.message = %q, want it to contain %q", eb.Error.Message, part)
		}
	}
}

// decodeStrict decodes b into v, failing on unknown fields or trailing data.
func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %s does not decode into %T: %v", b, v, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("body %s holds more than one JSON value", b)
	}
}

// wantAccepted checks a 202 {id} answer and returns the id.
func wantAccepted(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		ID string `json:"id"`
	}
	decodeStrict(t, rec.Body.Bytes(), &body)
	if body.ID == "" {
		t.Fatalf("answer %s has no id", rec.Body)
	}
	return body.ID
}

// wantNothingPublished fails if the fake publisher accepted any envelope.
func (f *fixture) wantNothingPublished(t *testing.T) {
	t.Helper()
	if calls := f.pub.calls(); len(calls) != 0 {
		t.Errorf("published %d calls (first on %q with %d envelopes), want none", len(calls), calls[0].topic, len(calls[0].envs))
	}
}

// onlyEnvelope asserts exactly one Publish call with one envelope on topic.
func (f *fixture) onlyEnvelope(t *testing.T, topic string) *schemas.Envelope {
	t.Helper()
	calls := f.pub.calls()
	if len(calls) != 1 {
		t.Fatalf("Publish called %d times, want 1", len(calls))
	}
	if calls[0].topic != topic {
		t.Errorf("published on %q, want %q", calls[0].topic, topic)
	}
	if len(calls[0].envs) != 1 {
		t.Fatalf("published %d envelopes, want 1", len(calls[0].envs))
	}
	env := calls[0].envs[0]
	if err := env.Validate(); err != nil {
		t.Errorf("published envelope is invalid: %v", err)
	}
	if env.V != schemas.Version || env.TS.IsZero() {
		t.Errorf("envelope v=%d ts=%v, want v=%d and a timestamp", env.V, env.TS, schemas.Version)
	}
	return env
}
