package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

func TestMessageIsPublishedToTheUserWithDataUnchanged(t *testing.T) {
	tests := []struct {
		name string
		data string // raw JSON of "data"; empty leaves it out
	}{
		{"object with spacing", `{ "message" : "Hello",  "n": [1, 2.50, {"x": null}] }`},
		{"number past float64 precision", `12345678901234567890123`},
		{"string with escapes", `"caf\u00e9 \"quoted\""`},
		{"null", `null`},
		{"no data", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			body := `{"userId":"user-42","event":"notification"`
			if tt.data != "" {
				body += `,"data":` + tt.data
			}
			body += `}`
			id := wantAccepted(t, f.do(t, req{method: "POST", path: "/api/message", body: body}))
			env := f.onlyEnvelope(t, outTopic)
			if env.ID != id {
				t.Errorf("envelope id %q, answered id %q", env.ID, id)
			}
			if env.Kind != schemas.KindDeliver || env.Event != "notification" {
				t.Errorf("envelope kind/event = %q/%q, want deliver/notification", env.Kind, env.Event)
			}
			wantTarget(t, env, schemas.Target{Users: []string{"user-42"}})
			if string(env.Data) != tt.data {
				t.Errorf("envelope data = %s, want the request's bytes %s", env.Data, tt.data)
			}
		})
	}
}

func TestPublishedEnvelopesGetDistinctIDs(t *testing.T) {
	f := newFixture(t, nil)
	seen := map[string]bool{}
	for range 20 {
		id := wantAccepted(t, f.do(t, req{method: "POST", path: "/api/message", body: okMessage}))
		if seen[id] {
			t.Fatalf("id %q answered twice", id)
		}
		seen[id] = true
	}
}

func TestPublishIsBoundedByPublishTimeout(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.PublishTimeout = 3 * time.Second })
	start := time.Now()
	wantAccepted(t, f.do(t, req{method: "POST", path: "/api/message", body: okMessage}))
	call := f.pub.calls()[0]
	if !call.hasDL {
		t.Fatal("publish context has no deadline")
	}
	if d := call.deadline.Sub(start); d <= 0 || d > 3*time.Second+time.Second/2 {
		t.Errorf("publish deadline %v after the call, want about 3s", d)
	}
}

func TestInvalidMessageIsRefusedAndNothingPublished(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		body string
		msg  string // part of error.message
	}{
		{"missing userId", `{"event":"e","data":1}`, "userId is required"},
		{"null userId", `{"userId":null,"event":"e"}`, "userId is required"},
		{"empty userId", `{"userId":"","event":"e"}`, "userId must not be empty"},
		{"userId too long", `{"userId":"` + long + `","event":"e"}`, "/to/users/0"},
		{"userId not a string", `{"userId":7,"event":"e"}`, "userId"},
		{"missing event", `{"userId":"u1","data":1}`, "event is required"},
		{"empty event", `{"userId":"u1","event":""}`, "event is required"},
		{"reserved event connect", `{"userId":"u1","event":"connect"}`, "/event"},
		{"reserved event disconnect", `{"userId":"u1","event":"disconnect"}`, "/event"},
		{"reserved event newListener", `{"userId":"u1","event":"newListener"}`, "/event"},
		{"event too long", `{"userId":"u1","event":"` + long + `"}`, "/event"},
		{"unknown field", `{"userId":"u1","event":"e","extra":true}`, "unknown field"},
		{"snake-case field", `{"user_id":"u1","event":"e"}`, "unknown field"},
		{"room given", `{"userId":"u1","room":"lobby","event":"e"}`, "room"},
		{"malformed JSON", `{"userId":"u1","event":`, "not valid JSON"},
		{"not an object", `["u1","e"]`, "not valid JSON"},
		{"empty body", ``, "not valid JSON"},
		{"two JSON values", okMessage + okMessage, "more than one JSON value"},
		{"two JSON values with space", okMessage + "\n" + `{"userId":"u2","event":"e"}`, "more than one JSON value"},
		{"trailing garbage", okMessage + ` x`, "more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: "POST", path: "/api/message", body: tt.body})
			wantError(t, rec, http.StatusBadRequest, "bad_request", tt.msg)
			f.wantNothingPublished(t)
		})
	}
}

// A body is one JSON value and nothing else: whatever follows it, even a
// stray closing brace or bracket, makes it malformed.
func TestBodyWithAnythingAfterTheValueIsRefused(t *testing.T) {
	for _, tt := range []struct{ name, trailer string }{
		{"second value", okMessage},
		{"word", ` x`},
		{"closing brace", `}`},
		{"closing bracket", `]`},
		{"closing brace after space", " \n}"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: "POST", path: "/api/message", body: okMessage + tt.trailer})
			wantError(t, rec, http.StatusBadRequest, "bad_request")
			f.wantNothingPublished(t)
		})
	}
}

// JSON field names are case-sensitive: the API documents userId, event, data,
// room and messages, and refuses fields it does not know, so a differently
// cased name is an unknown field, not an alias.
func TestBodyMustBeSentAsJSON(t *testing.T) {
	tests := []struct {
		name          string
		contentType   string
		noContentType bool
		ok            bool
	}{
		{"no Content-Type", "", true, false},
		{"text/plain", "text/plain", false, false},
		{"form", "application/x-www-form-urlencoded", false, false},
		{"json lookalike", "application/jsonx", false, false},
		{"json suffix type", "application/problem+json", false, false},
		{"unparsable media type", "application/json; charset", false, false},
		{"json", "application/json", false, true},
		{"json with charset", "application/json; charset=utf-8", false, true},
		{"json in capitals", "Application/JSON", false, true},
	}
	for _, path := range []string{"/api/message", "/api/broadcast", "/api/batch", "/api/users/u1/rooms"} {
		body := map[string]string{
			"/api/message":        okMessage,
			"/api/broadcast":      `{"event":"e"}`,
			"/api/batch":          `{"messages":[{"event":"e"}]}`,
			"/api/users/u1/rooms": `{"room":"lobby"}`,
		}[path]
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				f := newFixture(t, nil)
				rec := f.do(t, req{method: "POST", path: path, body: body, contentType: tt.contentType, noContentType: tt.noContentType})
				if !tt.ok {
					wantError(t, rec, http.StatusUnsupportedMediaType, "unsupported_media_type", "application/json")
					f.wantNothingPublished(t)
					return
				}
				if rec.Code != http.StatusAccepted {
					t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
				}
				if n := len(f.pub.calls()); n != 1 {
					t.Errorf("Publish called %d times, want 1", n)
				}
			})
		}
	}
}

func TestBodyOverMaxBodyBytesIsRefused(t *testing.T) {
	const limit = 256
	// sized returns a valid message body of exactly n bytes.
	sized := func(n int) string {
		head, tail := `{"userId":"u1","event":"e","data":"`, `"}`
		return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name    string
		path    string
		body    string
		chunked bool
		ok      bool
	}{
		{"at the limit, with length", "/api/message", sized(limit), false, true},
		{"at the limit, chunked", "/api/message", sized(limit), true, true},
		{"one byte over, with length", "/api/message", sized(limit + 1), false, false},
		{"one byte over, chunked", "/api/message", sized(limit + 1), true, false},
		{"far over, chunked", "/api/message", sized(10 * limit), true, false},
		{"batch over, chunked", "/api/batch", `{"messages":[{"event":"e","data":"` + strings.Repeat("b", limit) + `"}]}`, true, false},
		{"broadcast over, with length", "/api/broadcast", `{"event":"e","data":"` + strings.Repeat("b", limit) + `"}`, false, false},
		{"join over, chunked", "/api/users/u1/rooms", `{"room":"` + strings.Repeat("r", limit) + `"}`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *APIConfig) { c.MaxBodyBytes = limit })
			rec := f.do(t, req{method: "POST", path: tt.path, body: tt.body, chunked: tt.chunked})
			if tt.ok {
				id := wantAccepted(t, rec)
				if env := f.onlyEnvelope(t, outTopic); env.ID != id || len(env.Data) != limit-len(`{"userId":"u1","event":"e","data":}`) {
					t.Errorf("published %q with %d data bytes, want id %q with the whole body's data", env.ID, len(env.Data), id)
				}
				return
			}
			wantError(t, rec, http.StatusRequestEntityTooLarge, "payload_too_large", "256")
			f.wantNothingPublished(t)
		})
	}
}

// failingBody yields its text, then fails, as the body of a client that
// goes away does.
type failingBody struct{ r io.Reader }

func (b failingBody) Read(p []byte) (int, error) {
	if n, _ := b.r.Read(p); n > 0 {
		return n, nil
	}
	return 0, errors.New("connection reset by peer")
}

// A body that cannot be read whole is refused as such, even when what was
// read is already malformed or complete.
func TestBodyThatCannotBeReadIsRefused(t *testing.T) {
	for _, tt := range []struct{ name, text string }{
		{"complete value", okMessage},
		{"complete value and space", okMessage + "  "},
		{"cut value", okMessage[:10]},
		{"malformed", `{"userId":}`},
		{"nothing", ""},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s chunked=%v", tt.name, chunked), func(t *testing.T) {
				f := newFixture(t, nil)
				r := httptest.NewRequest(http.MethodPost, "/api/message", nil)
				r.Body = io.NopCloser(failingBody{strings.NewReader(tt.text)})
				r.ContentLength = int64(len(tt.text) + 10) // the client announced more than it sent
				if chunked {
					r.ContentLength = -1
				}
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("X-API-Key", testKeys[0])
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, r)
				wantError(t, rec, http.StatusBadRequest, "bad_request", "cannot read body", "connection reset by peer")
				f.wantNothingPublished(t)
			})
		}
	}
}

// busDown is what router.Publisher returns when the broker refuses a publish.
func busDown(topic string) error {
	return fmt.Errorf("publish %s: %w: %w", topic, router.ErrBusUnavailable, errors.New("connection refused"))
}

func TestBusFailureAnswers503AndNothingIsAccepted(t *testing.T) {
	routes := []struct{ method, path, body, topic string }{
		{"POST", "/api/message", okMessage, outTopic},
		{"POST", "/api/broadcast", `{"event":"e"}`, outTopic},
		{"POST", "/api/broadcast", `{"room":"lobby","event":"e"}`, outTopic},
		{"POST", "/api/batch", `{"messages":[{"event":"e"},{"userId":"u1","event":"e"}]}`, outTopic},
		{"POST", "/api/users/u1/rooms", `{"room":"lobby"}`, ctlTopic},
		{"DELETE", "/api/users/u1/rooms/lobby", "", ctlTopic},
		{"POST", "/api/users/u1/disconnect", "", ctlTopic},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path+" "+r.body, func(t *testing.T) {
			f := newFixture(t, nil)
			f.pub.err = busDown(r.topic)
			rec := f.do(t, req{method: r.method, path: r.path, body: r.body})
			wantError(t, rec, http.StatusServiceUnavailable, "bus_unavailable", "connection refused", r.topic)
			if n := f.pub.attemptCount(); n != 1 {
				t.Errorf("Publish attempted %d times, want 1", n)
			}
			f.wantNothingPublished(t)
			if strings.Contains(rec.Body.String(), `"id"`) {
				t.Errorf("a refused call answered an id: %s", rec.Body)
			}
		})
	}
}

func TestUnexpectedPublishErrorIsInternalWithoutDetail(t *testing.T) {
	f := newFixture(t, nil)
	f.pub.err = errors.New("secret broker detail")
	rec := f.do(t, req{method: "POST", path: "/api/message", body: okMessage})
	wantError(t, rec, http.StatusInternalServerError, "internal")
	if strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("internal error leaks its cause: %s", rec.Body)
	}
}

// leavingPublisher publishes for a caller that goes away while it
// publishes: it cancels the request, then reports whether the publish
// context ended with it.
type leavingPublisher struct {
	leave func()
	ended chan error
}

func (p *leavingPublisher) Publish(ctx context.Context, _ string, _ ...*schemas.Envelope) error {
	p.leave()
	p.ended <- ctx.Err()
	return ctx.Err()
}

// A publish, once started, ends when the bus answers or the timeout passes:
// a caller going away does not leave it half done.
func TestPublishOutlivesACallerWhoLeaves(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := &leavingPublisher{leave: cancel, ended: make(chan error, 1)}
	f := newFixtureWith(t, nil, pub)
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/message", strings.NewReader(okMessage))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-API-Key", testKeys[0])
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	if err := <-pub.ended; err != nil {
		t.Fatalf("the publish context ended with the request: %v", err)
	}
	wantAccepted(t, rec)
}

// APIConfig.PublishTimeout says: "past it the call answers 503". A publisher
// that honours its context ends with the context's error when that happens.
func TestPublishPastTimeoutAnswers503(t *testing.T) {
	f := newFixtureWith(t, func(c *APIConfig) { c.PublishTimeout = 20 * time.Millisecond }, ctxPublisher{})
	rec := f.do(t, req{method: "POST", path: "/api/message", body: okMessage})
	wantError(t, rec, http.StatusServiceUnavailable, "bus_unavailable")
}

func TestBroadcastGoesToEveryoneOrToOneRoom(t *testing.T) {
	tests := []struct {
		name string
		body string
		to   schemas.Target
		data string
	}{
		{"everyone", `{"event":"announcement","data":{"message":"Maintenance at 22:00"}}`,
			schemas.Target{All: true}, `{"message":"Maintenance at 22:00"}`},
		{"one room", `{"room":"lobby","event":"chat","data":{"text": "hi"}}`,
			schemas.Target{Rooms: []string{"lobby"}}, `{"text": "hi"}`},
		{"room with a colon", `{"room":"user:u1","event":"chat","data":[1,2]}`,
			schemas.Target{Rooms: []string{"user:u1"}}, `[1,2]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			id := wantAccepted(t, f.do(t, req{method: "POST", path: "/api/broadcast", body: tt.body}))
			env := f.onlyEnvelope(t, outTopic)
			if env.ID != id || env.Kind != schemas.KindDeliver {
				t.Errorf("envelope id/kind = %q/%q, want %q/deliver", env.ID, env.Kind, id)
			}
			wantTarget(t, env, tt.to)
			if string(env.Data) != tt.data {
				t.Errorf("data = %s, want %s", env.Data, tt.data)
			}
		})
	}
}

func TestInvalidBroadcastIsRefusedAndNothingPublished(t *testing.T) {
	tests := []struct{ name, body, msg string }{
		{"userId given", `{"userId":"u1","event":"e"}`, "userId is not accepted"},
		{"userId and room given", `{"userId":"u1","room":"lobby","event":"e"}`, "userId"},
		{"empty room", `{"room":"","event":"e"}`, "room must not be empty"},
		{"missing event", `{"room":"lobby"}`, "event is required"},
		{"reserved event", `{"event":"disconnecting"}`, "/event"},
		{"unknown field", `{"event":"e","to":"everyone"}`, "unknown field"},
		{"two JSON values", `{"event":"e"}{"event":"f"}`, "more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: "POST", path: "/api/broadcast", body: tt.body})
			wantError(t, rec, http.StatusBadRequest, "bad_request", tt.msg)
			f.wantNothingPublished(t)
		})
	}
}

func TestBatchPublishesAllItemsInOneCallInOrder(t *testing.T) {
	f := newFixture(t, nil)
	body := `{"messages":[
		{"userId":"u1","event":"notification","data":{"message":"Hello"}},
		{"room":"lobby","event":"chat","data":{"text":"hi"}},
		{"event":"announcement"},
		{"userId":"u2","event":"notification","data":7}
	]}`
	rec := f.do(t, req{method: "POST", path: "/api/batch", body: body})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
	}
	var got struct {
		IDs []string `json:"ids"`
	}
	decodeStrict(t, rec.Body.Bytes(), &got)

	want := []struct {
		to    schemas.Target
		event string
		data  string
	}{
		{schemas.Target{Users: []string{"u1"}}, "notification", `{"message":"Hello"}`},
		{schemas.Target{Rooms: []string{"lobby"}}, "chat", `{"text":"hi"}`},
		{schemas.Target{All: true}, "announcement", ``},
		{schemas.Target{Users: []string{"u2"}}, "notification", `7`},
	}
	calls := f.pub.calls()
	if len(calls) != 1 {
		t.Fatalf("Publish called %d times, want once for the whole batch", len(calls))
	}
	if calls[0].topic != outTopic {
		t.Errorf("batch published on %q, want %q", calls[0].topic, outTopic)
	}
	envs := calls[0].envs
	if len(envs) != len(want) || len(got.IDs) != len(want) {
		t.Fatalf("published %d envelopes and answered %d ids, want %d of each", len(envs), len(got.IDs), len(want))
	}
	for i, w := range want {
		env := envs[i]
		if env.ID != got.IDs[i] {
			t.Errorf("ids[%d] = %q, envelope %d has id %q", i, got.IDs[i], i, env.ID)
		}
		if env.Kind != schemas.KindDeliver || env.Event != w.event || string(env.Data) != w.data {
			t.Errorf("envelope %d = kind %q event %q data %s, want deliver %q %s", i, env.Kind, env.Event, env.Data, w.event, w.data)
		}
		wantTarget(t, env, w.to)
		if err := env.Validate(); err != nil {
			t.Errorf("envelope %d invalid: %v", i, err)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(got.IDs)))) != len(got.IDs) {
		t.Errorf("ids %v are not distinct", got.IDs)
	}
}

func batchOf(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"userId":"u%d","event":"e"}`, i)
	}
	return `{"messages":[` + strings.Join(items, ",") + `]}`
}

func TestBatchSizeLimits(t *testing.T) {
	tests := []struct {
		name     string
		maxBatch int
		body     string
		accepted int    // 0: refused
		msg      string // part of error.message when refused
	}{
		{"no items", 0, `{"messages":[]}`, 0, "at least one"},
		{"no messages field", 0, `{}`, 0, "at least one"},
		{"null messages", 0, `{"messages":null}`, 0, "at least one"},
		{"one item", 0, batchOf(1), 1, ""},
		{"1000 items", 0, batchOf(1000), 1000, ""},
		{"1001 items", 0, batchOf(1001), 0, "1001"},
		{"over a configured MaxBatch", 2, batchOf(3), 0, "at most 2"},
		{"at a configured MaxBatch", 2, batchOf(2), 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *APIConfig) { c.MaxBatch = tt.maxBatch })
			rec := f.do(t, req{method: "POST", path: "/api/batch", body: tt.body})
			if tt.accepted == 0 {
				wantError(t, rec, http.StatusBadRequest, "bad_request", tt.msg)
				f.wantNothingPublished(t)
				return
			}
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
			}
			var got struct {
				IDs []string `json:"ids"`
			}
			decodeStrict(t, rec.Body.Bytes(), &got)
			calls := f.pub.calls()
			if len(calls) != 1 || len(calls[0].envs) != tt.accepted || len(got.IDs) != tt.accepted {
				t.Fatalf("answered %d ids over %d calls, want %d ids and envelopes in one call", len(got.IDs), len(calls), tt.accepted)
			}
			for i, env := range calls[0].envs {
				if want := fmt.Sprintf("u%d", i); env.ID != got.IDs[i] || !slices.Equal(env.To.Users, []string{want}) {
					t.Fatalf("envelope %d: id %q to %v, want id %q to [%s]", i, env.ID, env.To.Users, got.IDs[i], want)
				}
			}
		})
	}
}

func TestBatchWithAnInvalidItemPublishesNothing(t *testing.T) {
	good := []string{`{"userId":"u0","event":"e"}`, `{"room":"lobby","event":"e"}`, `{"event":"e"}`}
	tests := []struct{ name, item, msg string }{
		{"missing event", `{"userId":"u3"}`, "event is required"},
		{"reserved event", `{"room":"lobby","event":"connect"}`, "/event"},
		{"empty userId", `{"userId":"","event":"e"}`, "userId must not be empty"},
		{"empty room", `{"room":"","event":"e"}`, "room must not be empty"},
		{"userId and room", `{"userId":"u3","room":"lobby","event":"e"}`, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			items := append(slices.Clone(good), tt.item, `{"event":"after"}`)
			rec := f.do(t, req{method: "POST", path: "/api/batch", body: `{"messages":[` + strings.Join(items, ",") + `]}`})
			wantError(t, rec, http.StatusBadRequest, "bad_request", "messages[3]", tt.msg)
			var eb errorBody
			_ = json.Unmarshal(rec.Body.Bytes(), &eb)
			for _, other := range []string{"messages[0]", "messages[1]", "messages[2]", "messages[4]"} {
				if strings.Contains(eb.Error.Message, other) {
					t.Errorf("error.message %q names %s, which is valid", eb.Error.Message, other)
				}
			}
			f.wantNothingPublished(t)
		})
	}
}

func TestBatchWithAMalformedItemPublishesNothing(t *testing.T) {
	for _, body := range []string{
		`{"messages":[{"event":"e"},{"event":"e","extra":1}]}`,
		`{"messages":[{"event":"e"},{"event":5}]}`,
		`{"messages":{"event":"e"}}`,
		`{"messages":[{"event":"e"}],"more":true}`,
	} {
		t.Run(body, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: "POST", path: "/api/batch", body: body})
			wantError(t, rec, http.StatusBadRequest, "bad_request")
			f.wantNothingPublished(t)
		})
	}
}

func TestUserControlCommandsArePublishedOnTheControlTopic(t *testing.T) {
	tests := []struct {
		name         string
		method, path string
		body         string
		action       string
		user, room   string
	}{
		{"join", "POST", "/api/users/u1/rooms", `{"room":"lobby"}`, schemas.ActionJoin, "u1", "lobby"},
		{"join a room with a colon", "POST", "/api/users/u1/rooms", `{"room":"user:u2"}`, schemas.ActionJoin, "u1", "user:u2"},
		{"leave uses the path room", "DELETE", "/api/users/u1/rooms/lobby", "", schemas.ActionLeave, "u1", "lobby"},
		{"leave an escaped room", "DELETE", "/api/users/u1/rooms/chat%2Fgeneral", "", schemas.ActionLeave, "u1", "chat/general"},
		{"leave with an escaped user", "DELETE", "/api/users/a%20b/rooms/lobby", "", schemas.ActionLeave, "a b", "lobby"},
		{"disconnect", "POST", "/api/users/u1/disconnect", "", schemas.ActionDisconnect, "u1", ""},
		{"disconnect ignores a body", "POST", "/api/users/u9/disconnect", `{"reason":"x"}`, schemas.ActionDisconnect, "u9", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			id := wantAccepted(t, f.do(t, req{method: tt.method, path: tt.path, body: tt.body}))
			env := f.onlyEnvelope(t, ctlTopic)
			if env.ID != id {
				t.Errorf("envelope id %q, answered %q", env.ID, id)
			}
			if env.Kind != schemas.KindControl || env.Action != tt.action || env.UserID != tt.user ||
				env.Room != tt.room || env.Instance != testInstance {
				t.Errorf("envelope = kind %q action %q user %q room %q instance %q; want control %q %q %q %q",
					env.Kind, env.Action, env.UserID, env.Room, env.Instance, tt.action, tt.user, tt.room, testInstance)
			}
			if env.To != nil || env.Event != "" || env.Data != nil {
				t.Errorf("control envelope carries delivery fields: to %v event %q data %s", env.To, env.Event, env.Data)
			}
		})
	}
}

func TestInvalidJoinIsRefusedAndNothingPublished(t *testing.T) {
	tests := []struct {
		name, path, body, msg string
	}{
		{"no room", "/api/users/u1/rooms", `{}`, "room is required"},
		{"empty room", "/api/users/u1/rooms", `{"room":""}`, "room is required"},
		{"null room", "/api/users/u1/rooms", `{"room":null}`, "room is required"},
		{"room too long", "/api/users/u1/rooms", `{"room":"` + strings.Repeat("r", 257) + `"}`, "/room"},
		{"user too long", "/api/users/" + strings.Repeat("u", 257) + "/rooms", `{"room":"lobby"}`, "/userId"},
		{"unknown field", "/api/users/u1/rooms", `{"room":"lobby","user":"u2"}`, "unknown field"},
		{"room not a string", "/api/users/u1/rooms", `{"room":["lobby"]}`, "room"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: "POST", path: tt.path, body: tt.body})
			wantError(t, rec, http.StatusBadRequest, "bad_request", tt.msg)
			f.wantNothingPublished(t)
		})
	}
}

func wantTarget(t *testing.T, env *schemas.Envelope, want schemas.Target) {
	t.Helper()
	if env.To == nil {
		t.Fatalf("envelope has no target, want %+v", want)
	}
	got := *env.To
	if got.All != want.All || !slices.Equal(got.Users, want.Users) || !slices.Equal(got.Rooms, want.Rooms) ||
		len(got.Sockets) != 0 || got.Except != nil {
		t.Errorf("target = %+v, want %+v", got, want)
	}
}
