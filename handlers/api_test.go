package handlers

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/web3-socket/web3-socket/bridge"
)

const okMessage = `{"userId":"u1","event":"notice","data":{"n":1}}`

func TestNewAPIRefusesAnEmptyKeyList(t *testing.T) {
	for _, keys := range [][]string{nil, {}} {
		api, err := NewAPI(APIConfig{Keys: keys}, &fakePublisher{}, &fakePinger{}, &fakeEdge{}, nil,
			NewHTTPMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
		if err == nil || api != nil {
			t.Errorf("NewAPI(Keys=%#v) = %v, %v; want nil and an error", keys, api, err)
		}
	}
}

func TestAPIKeyIsRequiredAndAnyConfiguredKeyIsAccepted(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		ok      bool
	}{
		{"no key", map[string]string{}, false},
		{"wrong X-API-Key", map[string]string{"X-API-Key": "nope"}, false},
		{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}, false},
		{"key with a suffix", map[string]string{"X-API-Key": testKeys[0] + "x"}, false},
		{"prefix of a key", map[string]string{"X-API-Key": testKeys[0][:3]}, false},
		{"two keys joined", map[string]string{"X-API-Key": testKeys[0] + "," + testKeys[1]}, false},
		{"key as Basic credentials", map[string]string{"Authorization": "Basic " + testKeys[0]}, false},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, false},
		{"wrong X-API-Key beside a right bearer", map[string]string{"X-API-Key": "nope", "Authorization": "Bearer " + testKeys[0]}, false},
		{"X-API-Key first key", map[string]string{"X-API-Key": testKeys[0]}, true},
		{"X-API-Key second key", map[string]string{"X-API-Key": testKeys[1]}, true},
		{"X-API-Key third key", map[string]string{"X-API-Key": testKeys[2]}, true},
		{"bearer first key", map[string]string{"Authorization": "Bearer " + testKeys[0]}, true},
		{"bearer second key", map[string]string{"Authorization": "Bearer " + testKeys[1]}, true},
		{"bearer third key", map[string]string{"Authorization": "Bearer " + testKeys[2]}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: "POST", path: "/api/message", body: okMessage, headers: tt.headers})
			failures := testutil.ToFloat64(f.api.metrics.authFailures)
			if !tt.ok {
				wantError(t, rec, http.StatusUnauthorized, "unauthorized", "API key")
				f.wantNothingPublished(t)
				if failures != 1 {
					t.Errorf("http_auth_failures_total = %v, want 1", failures)
				}
				return
			}
			id := wantAccepted(t, rec)
			if env := f.onlyEnvelope(t, outTopic); env.ID != id {
				t.Errorf("published id %q, answered %q", env.ID, id)
			}
			if failures != 0 {
				t.Errorf("http_auth_failures_total = %v, want 0", failures)
			}
		})
	}
}

// SPEC.md accepts the key as X-API-Key or as "Authorization: Bearer <key>";
// an Authorization header in any other form is not a key.
func TestAuthorizationHeaderWithoutBearerSchemeIsRefused(t *testing.T) {
	for _, value := range []string{testKeys[0], "Token " + testKeys[0], " " + testKeys[0]} {
		t.Run(value, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: "POST", path: "/api/message", body: okMessage, headers: map[string]string{"Authorization": value}})
			wantError(t, rec, http.StatusUnauthorized, "unauthorized")
			f.wantNothingPublished(t)
		})
	}
}

func TestEveryAPIRouteRefusesACallWithoutKey(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{"GET", "/api/status", ""},
		{"GET", "/api/stats/connections", ""},
		{"POST", "/api/message", okMessage},
		{"POST", "/api/broadcast", `{"event":"e"}`},
		{"POST", "/api/batch", `{"messages":[{"event":"e"}]}`},
		{"GET", "/api/users/u1", ""},
		{"POST", "/api/users/u1/rooms", `{"room":"lobby"}`},
		{"DELETE", "/api/users/u1/rooms/lobby", ""},
		{"POST", "/api/users/u1/disconnect", ""},
		{"GET", "/api/rooms", ""},
		{"GET", "/api/nope", ""},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: r.method, path: r.path, body: r.body, noKey: true})
			wantError(t, rec, http.StatusUnauthorized, "unauthorized")
			f.wantNothingPublished(t)
			if len(f.edge.asked) != 0 {
				t.Errorf("edge was asked about %v before the key was checked", f.edge.asked)
			}
		})
	}
}

func TestHealthAndReadyNeedNoKey(t *testing.T) {
	f := newFixture(t, nil)
	for _, tt := range []struct {
		path string
		want map[string]string
	}{
		{"/health", map[string]string{"status": "ok"}},
		{"/ready", map[string]string{"status": "ready", "bus": "memory"}},
	} {
		rec := f.do(t, req{method: "GET", path: tt.path, noKey: true})
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s without key: status %d, want 200; body %s", tt.path, rec.Code, rec.Body)
		}
		var got map[string]string
		decodeStrict(t, rec.Body.Bytes(), &got)
		if !maps.Equal(got, tt.want) {
			t.Errorf("GET %s: body %v, want %v", tt.path, got, tt.want)
		}
	}
	if n := testutil.ToFloat64(f.api.metrics.authFailures); n != 0 {
		t.Errorf("http_auth_failures_total = %v after /health and /ready, want 0", n)
	}
}

func TestReadyFollowsBusAndDrain(t *testing.T) {
	tests := []struct {
		name   string
		ping   error
		drain  bool
		status int
		want   map[string]string
	}{
		{"bus reachable", nil, false, 200, map[string]string{"status": "ready", "bus": "memory"}},
		{"bus down", errors.New("dial tcp: connection refused"), false, 503,
			map[string]string{"status": "not_ready", "bus": "memory", "reason": "dial tcp: connection refused"}},
		{"draining with a healthy bus", nil, true, 503,
			map[string]string{"status": "not_ready", "bus": "memory", "reason": "shutting down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.bus.fail(tt.ping)
			if tt.drain {
				f.api.Drain()
			}
			rec := f.do(t, req{method: "GET", path: "/ready", noKey: true})
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			var got map[string]string
			decodeStrict(t, rec.Body.Bytes(), &got)
			if !maps.Equal(got, tt.want) {
				t.Errorf("body %v, want %v", got, tt.want)
			}
			// Liveness does not depend on the bus or on draining.
			if rec := f.do(t, req{method: "GET", path: "/health", noKey: true}); rec.Code != http.StatusOK {
				t.Errorf("/health answered %d, want 200", rec.Code)
			}
		})
	}
}

func TestUnknownAPIPathIsNotFound(t *testing.T) {
	for _, tt := range []struct{ method, path string }{
		{"GET", "/api/nope"},
		{"POST", "/api/nope"},
		{"PUT", "/api/nope"},
		{"GET", "/api/"},
		{"POST", "/api/message/extra"},
		{"GET", "/api/users/u1/rooms/lobby/extra"},
		{"GET", "/api/stats"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: tt.method, path: tt.path, body: okMessage})
			wantError(t, rec, http.StatusNotFound, "not_found")
			f.wantNothingPublished(t)
		})
	}
}

// allowed lists, for each path probed below, the methods openapi.yaml gives it.
var allowed = map[string][]string{
	"/api/message":              {"POST"},
	"/api/status":               {"GET"},
	"/api/batch":                {"POST"},
	"/api/rooms":                {"GET"},
	"/api/users/u1":             {"GET"},
	"/api/users/u1/rooms":       {"POST"},
	"/api/users/u1/rooms/lobby": {"DELETE"},
	"/api/users/u1/disconnect":  {"POST"},
}

var wrongMethods = []struct{ method, path string }{
	{"GET", "/api/message"},
	{"PUT", "/api/message"},
	{"DELETE", "/api/status"},
	{"POST", "/api/status"},
	{"GET", "/api/batch"},
	{"PATCH", "/api/rooms"},
	{"DELETE", "/api/users/u1"},
	{"GET", "/api/users/u1/rooms"},
	{"POST", "/api/users/u1/rooms/lobby"},
	{"GET", "/api/users/u1/disconnect"},
}

func TestWrongMethodOnKnownPathIsMethodNotAllowed(t *testing.T) {
	for _, tt := range wrongMethods {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: tt.method, path: tt.path, body: okMessage})
			wantError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
			f.wantNothingPublished(t)
		})
	}
}

// RFC 9110 §15.5.6 and openapi.yaml (components.responses.MethodNotAllowed)
// both say a 405 carries an Allow header naming the path's methods.
func TestMethodNotAllowedNamesTheAllowedMethods(t *testing.T) {
	for _, tt := range wrongMethods {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, req{method: tt.method, path: tt.path})
			if rec.Code != http.StatusMethodNotAllowed {
				t.Fatalf("status %d, want 405", rec.Code)
			}
			got := strings.Split(strings.ReplaceAll(rec.Header().Get("Allow"), " ", ""), ",")
			for _, m := range allowed[tt.path] {
				if !slices.Contains(got, m) {
					t.Errorf("Allow = %q, want it to list %s", rec.Header().Get("Allow"), m)
				}
			}
		})
	}
}

func TestRequestsAreCountedByRoutePattern(t *testing.T) {
	f := newFixture(t, nil)
	f.do(t, req{method: "POST", path: "/api/message", body: okMessage})
	f.do(t, req{method: "POST", path: "/api/message", body: `{}`})
	f.do(t, req{method: "POST", path: "/api/message", body: okMessage})
	f.do(t, req{method: "GET", path: "/api/users/alice"})
	f.do(t, req{method: "HEAD", path: "/api/users/alice"})
	f.do(t, req{method: "GET", path: "/api/users/bob"})
	f.do(t, req{method: "GET", path: "/api/nope"})
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"POST", "POST /api/message", "202"}, 2},
		{[]string{"POST", "POST /api/message", "400"}, 1},
		{[]string{"GET", "GET /api/users/{userId}", "200"}, 2},
		{[]string{"HEAD", "GET /api/users/{userId}", "200"}, 1},
		{[]string{"GET", "/api/", "404"}, 1},
	} {
		if got := testutil.ToFloat64(f.api.metrics.requests.WithLabelValues(tt.labels...)); got != tt.want {
			t.Errorf("http_requests_total%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
}

func TestStatusReportsInstanceBusAndConnections(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ping    error
		healthy bool
	}{
		{"healthy bus", nil, true},
		{"bus down", errors.New("down"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.bus.fail(tt.ping)
			rec := f.do(t, req{method: "GET", path: "/api/status"})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
			}
			var got struct {
				Status        string  `json:"status"`
				Version       string  `json:"version"`
				InstanceID    string  `json:"instanceId"`
				UptimeSeconds float64 `json:"uptimeSeconds"`
				Bus           struct {
					Kind    string `json:"kind"`
					Healthy bool   `json:"healthy"`
				} `json:"bus"`
				Connections struct {
					Local int `json:"local"`
				} `json:"connections"`
			}
			decodeStrict(t, rec.Body.Bytes(), &got)
			if got.Status != "ok" || got.Version != testVersion || got.InstanceID != testInstance {
				t.Errorf("status/version/instanceId = %q/%q/%q, want ok/%s/%s", got.Status, got.Version, got.InstanceID, testVersion, testInstance)
			}
			if got.UptimeSeconds < 0 || got.UptimeSeconds > 60 {
				t.Errorf("uptimeSeconds = %v, want a small non-negative number", got.UptimeSeconds)
			}
			if got.Bus.Kind != "memory" || got.Bus.Healthy != tt.healthy {
				t.Errorf("bus = %+v, want kind memory healthy %v", got.Bus, tt.healthy)
			}
			if got.Connections.Local != 5 {
				t.Errorf("connections.local = %d, want 5 (from the edge)", got.Connections.Local)
			}
		})
	}
}

func TestConnectionStatsComeFromTheEdge(t *testing.T) {
	f := newFixture(t, nil)
	f.edge.stats = bridge.Stats{Connections: 7, Users: 2, Rooms: 3}
	before := time.Now().UTC().Add(-time.Second)
	rec := f.do(t, req{method: "GET", path: "/api/stats/connections"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
	}
	type counts struct {
		Connections int `json:"connections"`
		Users       int `json:"users"`
		Rooms       int `json:"rooms"`
	}
	var got struct {
		Local   counts `json:"local"`
		Cluster struct {
			counts
			Instances int `json:"instances"`
		} `json:"cluster"`
		Instances []struct {
			counts
			ID       string    `json:"id"`
			LastSeen time.Time `json:"lastSeen"`
		} `json:"instances"`
	}
	decodeStrict(t, rec.Body.Bytes(), &got)
	want := counts{7, 2, 3}
	if got.Local != want {
		t.Errorf("local = %+v, want %+v", got.Local, want)
	}
	if got.Cluster.counts != want || got.Cluster.Instances != 1 {
		t.Errorf("cluster = %+v, want %+v with 1 instance", got.Cluster, want)
	}
	if len(got.Instances) != 1 {
		t.Fatalf("instances = %+v, want one", got.Instances)
	}
	in := got.Instances[0]
	if in.ID != testInstance || in.counts != want {
		t.Errorf("instances[0] = %+v, want id %s with %+v", in, testInstance, want)
	}
	if in.LastSeen.Before(before) || in.LastSeen.After(time.Now().Add(time.Second)) {
		t.Errorf("instances[0].lastSeen = %v, want about now", in.LastSeen)
	}
}

func TestUserPresenceComesFromTheEdge(t *testing.T) {
	type presence struct {
		UserID    string   `json:"userId"`
		Online    bool     `json:"online"`
		Sockets   int      `json:"sockets"`
		Instances []string `json:"instances"`
		Rooms     []string `json:"rooms"`
	}
	tests := []struct {
		name string
		path string
		user string
		p    bridge.Presence
		want presence
	}{
		{"online", "/api/users/u1", "u1", bridge.Presence{Sockets: 2, Rooms: []string{"lobby", "vip"}},
			presence{"u1", true, 2, []string{testInstance}, []string{"lobby", "vip"}}},
		{"offline", "/api/users/u2", "u2", bridge.Presence{Rooms: []string{}},
			presence{"u2", false, 0, []string{}, []string{}}},
		{"escaped id", "/api/users/a%2Fb", "a/b", bridge.Presence{Sockets: 1, Rooms: []string{}},
			presence{"a/b", true, 1, []string{testInstance}, []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.edge.presence[tt.user] = tt.p
			rec := f.do(t, req{method: "GET", path: tt.path})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
			}
			// Arrays must be arrays, never null: openapi.yaml requires them.
			for _, field := range []string{`"instances":[`, `"rooms":[`} {
				if !strings.Contains(rec.Body.String(), field) {
					t.Errorf("body %s: want %s…]", rec.Body, field)
				}
			}
			var got presence
			decodeStrict(t, rec.Body.Bytes(), &got)
			if got.UserID != tt.want.UserID || got.Online != tt.want.Online || got.Sockets != tt.want.Sockets ||
				!slices.Equal(got.Instances, tt.want.Instances) || !slices.Equal(got.Rooms, tt.want.Rooms) {
				t.Errorf("presence = %+v, want %+v", got, tt.want)
			}
			if !slices.Equal(f.edge.asked, []string{tt.user}) {
				t.Errorf("edge asked about %q, want [%q]", f.edge.asked, tt.user)
			}
			f.wantNothingPublished(t)
		})
	}
}

func TestRoomsAreListedSortedByName(t *testing.T) {
	type room struct {
		Name    string `json:"name"`
		Members int    `json:"members"`
	}
	tests := []struct {
		name  string
		rooms map[string]int
		want  []room
	}{
		{"none", map[string]int{}, []room{}},
		{"several", map[string]int{"zeta": 1, "alpha": 3, "mid": 2, "Beta": 9},
			[]room{{"Beta", 9}, {"alpha", 3}, {"mid", 2}, {"zeta", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.edge.rooms = tt.rooms
			rec := f.do(t, req{method: "GET", path: "/api/rooms"})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), `"rooms":[`) {
				t.Errorf("body %s: rooms must be an array", rec.Body)
			}
			var got struct {
				Rooms []room `json:"rooms"`
			}
			decodeStrict(t, rec.Body.Bytes(), &got)
			if !slices.Equal(got.Rooms, tt.want) {
				t.Errorf("rooms = %+v, want %+v", got.Rooms, tt.want)
			}
		})
	}
}

func TestWaitReturnsAtOnceWhenNothingIsInFlight(t *testing.T) {
	f := newFixture(t, nil)
	f.do(t, req{method: "POST", path: "/api/message", body: okMessage})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := f.api.Wait(ctx); err != nil {
		t.Fatalf("Wait with nothing in flight: %v", err)
	}
}

// startStuckMessage sends a message whose publish blocks, and returns once the
// request is inside the publisher, with a channel that receives its answer.
func startStuckMessage(t *testing.T, f *fixture, pub *blockingPublisher) <-chan *httptest.ResponseRecorder {
	t.Helper()
	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		hr := httptest.NewRequest("POST", "/api/message", strings.NewReader(okMessage))
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("X-API-Key", testKeys[0])
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, hr)
		answered <- rec
	}()
	select {
	case <-pub.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached the publisher")
	}
	return answered
}

func TestWaitReturnsOnceInFlightRequestsEnd(t *testing.T) {
	pub := newBlockingPublisher()
	f := newFixtureWith(t, nil, pub)
	t.Cleanup(pub.Release)
	answered := startStuckMessage(t, f, pub)

	waited := make(chan error, 1)
	go func() { waited <- f.api.Wait(context.Background()) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v while a request was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	pub.Release()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("Wait = %v, want nil once the request ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the request ended")
	}
	wantAccepted(t, <-answered)
}

func TestWaitGivesUpWhenContextExpiresWithARequestStuck(t *testing.T) {
	pub := newBlockingPublisher()
	f := newFixtureWith(t, nil, pub)
	answered := startStuckMessage(t, f, pub)
	defer func() {
		pub.Release()
		wantAccepted(t, <-answered)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := f.api.Wait(ctx)
	if err == nil {
		t.Fatal("Wait = nil with a request stuck, want an error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Wait took %v to give up, want about the context's 50ms", d)
	}
}

func TestEachAPIKeyHasItsOwnRateLimit(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.RateLimit, c.RateBurst = 0.001, 2 })
	get := func(key string) *httptest.ResponseRecorder {
		return f.do(t, req{method: "GET", path: "/api/status", headers: map[string]string{"X-API-Key": key}})
	}
	for i := range 2 {
		if rec := get(testKeys[0]); rec.Code != http.StatusOK {
			t.Fatalf("call %d within the burst: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := get(testKeys[0])
	wantError(t, rec, http.StatusTooManyRequests, "rate_limited")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if rec := get(testKeys[1]); rec.Code != http.StatusOK {
		t.Fatalf("another key is limited too: %d %s", rec.Code, rec.Body)
	}
	// A wrong key is refused as unauthorized, not counted against anyone.
	wantError(t, get("wrong-key"), http.StatusUnauthorized, "unauthorized")
}
