package integration

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// errorCodes maps the statuses of the REST error model to their codes.
var errorCodes = map[int]string{
	400: "bad_request",
	401: "unauthorized",
	404: "not_found",
	405: "method_not_allowed",
	413: "payload_too_large",
	415: "unsupported_media_type",
}

// restRecorder remembers which (route, status) pairs the suite saw.
type restRecorder struct {
	mu   sync.Mutex
	seen map[string]map[int]bool
}

func (r *restRecorder) record(route string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]map[int]bool{}
	}
	if r.seen[route] == nil {
		r.seen[route] = map[int]bool{}
	}
	r.seen[route][status] = true
}

// call sends a request for route ("METHOD /template", or "" for a path that
// is no route), records the status and checks it is want; an error status
// must come with the error model's body and code.
func (r *restRecorder) call(t *testing.T, s *harness.Server, route, method, path string, body any, headers map[string]string, want int) []byte {
	t.Helper()
	status, answer := s.Do(method, path, body, headers)
	if route != "" && status != 0 {
		r.record(route, status)
	}
	what := fmt.Sprintf("%s %s", method, path)
	if status != want {
		t.Errorf("%s (body %s, headers %v): status %d %s, want %d", what, describeBody(body), headers, status, truncate(answer), want)
		return answer
	}
	if want >= 400 {
		var e struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(answer, &e); err != nil || e.Error == nil {
			t.Errorf("%s: %d answered %s, want {\"error\":{\"code\",\"message\"}}", what, status, truncate(answer))
		} else if e.Error.Code != errorCodes[want] || e.Error.Message == "" {
			t.Errorf("%s: %d answered code %q message %q, want code %q and a message", what, status, e.Error.Code, e.Error.Message, errorCodes[want])
		}
	}
	return answer
}

func describeBody(body any) string {
	switch v := body.(type) {
	case nil:
		return "none"
	case string:
		return truncate([]byte(v))
	case []byte:
		return truncate(v)
	default:
		return mustJSON(v)
	}
}

// eventually polls cond until it holds or timeout passes, and fails the test
// with the last explanation cond gave otherwise.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

type presence struct {
	UserID    string   `json:"userId"`
	Online    bool     `json:"online"`
	Sockets   int      `json:"sockets"`
	Instances []string `json:"instances"`
	Rooms     []string `json:"rooms"`
}

func getPresence(t *testing.T, rec *restRecorder, s *harness.Server, user string) presence {
	t.Helper()
	var p presence
	decode(t, "GET /api/users/"+user, rec.call(t, s, "GET /api/users/{userId}", "GET", "/api/users/"+url.PathEscape(user), nil, nil, 200), &p)
	return p
}

// TestRESTRoutesBehaveAndAnswerOnlyDocumentedStatuses proves every REST
// route's success (by its effect on a connected client or its answer) and its
// error statuses (401, 400, 413, 415, 404, 405), and checks each route and
// status seen against schemas.DocumentedStatuses, and that every documented
// route was exercised.
func TestRESTRoutesBehaveAndAnswerOnlyDocumentedStatuses(t *testing.T) {
	t.Parallel()
	const maxPayload = 64 << 10
	env := harness.DefaultEnv()
	key1, key2 := harness.RandomSecret(24), harness.RandomSecret(24)
	env["API_KEY"] = key1 + "," + key2
	env["MAX_PAYLOAD_BYTES"] = fmt.Sprint(maxPayload)
	env["INSTANCE_ID"] = "it-rest"
	s := harness.StartServer(t, env)
	rec := &restRecorder{}
	ws := harness.Modes[0]

	const (
		rStatus     = "GET /api/status"
		rStats      = "GET /api/stats/connections"
		rMessage    = "POST /api/message"
		rBroadcast  = "POST /api/broadcast"
		rBatch      = "POST /api/batch"
		rUser       = "GET /api/users/{userId}"
		rJoin       = "POST /api/users/{userId}/rooms"
		rLeave      = "DELETE /api/users/{userId}/rooms/{room}"
		rDisconnect = "POST /api/users/{userId}/disconnect"
		rRooms      = "GET /api/rooms"
	)

	t.Run("operations routes need no key", func(t *testing.T) {
		noKey := map[string]string{"X-API-Key": ""}
		var health struct{ Status string }
		decode(t, "/health", rec.call(t, s, "GET /health", "GET", "/health", nil, noKey, 200), &health)
		if health.Status != "ok" {
			t.Errorf("GET /health status %q, want ok", health.Status)
		}
		var ready struct{ Status, Bus string }
		decode(t, "/ready", rec.call(t, s, "GET /ready", "GET", "/ready", nil, noKey, 200), &ready)
		if ready.Status != "ready" || ready.Bus != "memory" {
			t.Errorf("GET /ready = %+v, want status ready, bus memory", ready)
		}
		metrics := string(rec.call(t, s, "GET /metrics", "GET", "/metrics", nil, noKey, 200))
		for _, name := range []string{"socket_connections_total", "socket_connections_active", "socket_messages_sent_total",
			"socket_messages_received_total", "socket_errors_total", "go_goroutines", "process_"} {
			if !strings.Contains(metrics, name) {
				t.Errorf("GET /metrics lacks %s", name)
			}
		}
	})

	t.Run("api key", func(t *testing.T) {
		routes := []struct {
			route, method, path string
			body                any
		}{
			{rStatus, "GET", "/api/status", nil},
			{rStats, "GET", "/api/stats/connections", nil},
			{rMessage, "POST", "/api/message", map[string]any{"userId": "u", "event": "e"}},
			{rBroadcast, "POST", "/api/broadcast", map[string]any{"event": "e"}},
			{rBatch, "POST", "/api/batch", map[string]any{"messages": []any{map[string]any{"event": "e"}}}},
			{rUser, "GET", "/api/users/u", nil},
			{rJoin, "POST", "/api/users/u/rooms", map[string]any{"room": "r"}},
			{rLeave, "DELETE", "/api/users/u/rooms/r", nil},
			{rDisconnect, "POST", "/api/users/u/disconnect", nil},
			{rRooms, "GET", "/api/rooms", nil},
		}
		for _, r := range routes {
			rec.call(t, s, r.route, r.method, r.path, r.body, map[string]string{"X-API-Key": ""}, 401)
			rec.call(t, s, r.route, r.method, r.path, r.body, map[string]string{"X-API-Key": "wrong-" + key1}, 401)
		}
		// Both keys of the comma-separated list work, as X-API-Key or as Bearer.
		rec.call(t, s, rStatus, "GET", "/api/status", nil, map[string]string{"X-API-Key": key2}, 200)
		rec.call(t, s, rStatus, "GET", "/api/status", nil, map[string]string{"X-API-Key": "", "Authorization": "Bearer " + key1}, 200)
		rec.call(t, s, rStatus, "GET", "/api/status", nil, map[string]string{"X-API-Key": "", "Authorization": "Bearer " + key2}, 200)
		rec.call(t, s, rStatus, "GET", "/api/status", nil, map[string]string{"X-API-Key": "", "Authorization": "Bearer wrong"}, 401)
	})

	t.Run("status and stats count the connection", func(t *testing.T) {
		d := harness.NewDriver(t)
		connect(t, d, s, ws, "c", harness.UserToken(t, s.JWTSecret(), "stats-user", nil))

		var st struct {
			Status        string
			Version       string
			InstanceID    string  `json:"instanceId"`
			UptimeSeconds float64 `json:"uptimeSeconds"`
			Bus           struct {
				Kind    string
				Healthy bool
			}
			Connections struct{ Local int }
		}
		body := rec.call(t, s, rStatus, "GET", "/api/status", nil, nil, 200)
		decode(t, "GET /api/status", body, &st)
		if st.Status != "ok" || st.Version == "" || st.InstanceID != "it-rest" || st.UptimeSeconds < 0 ||
			st.Bus.Kind != "memory" || !st.Bus.Healthy || st.Connections.Local != 1 {
			t.Errorf("GET /api/status = %s, want status ok, a version, instanceId it-rest, bus memory healthy, 1 local connection", body)
		}

		var stats struct {
			Local     struct{ Connections, Users, Rooms int }
			Cluster   struct{ Connections, Users, Rooms, Instances int }
			Instances []struct {
				ID          string
				Connections int
			}
		}
		body = rec.call(t, s, rStats, "GET", "/api/stats/connections", nil, nil, 200)
		decode(t, "GET /api/stats/connections", body, &stats)
		if stats.Local.Connections != 1 || stats.Local.Users != 1 || stats.Cluster.Connections != 1 || stats.Cluster.Instances != 1 ||
			len(stats.Instances) != 1 || stats.Instances[0].ID != "it-rest" || stats.Instances[0].Connections != 1 {
			t.Errorf("GET /api/stats/connections = %s, want 1 connection of 1 user on the one instance it-rest", body)
		}
	})

	t.Run("message broadcast and batch reach the client", func(t *testing.T) {
		d := harness.NewDriver(t)
		user := "rest-user"
		connect(t, d, s, ws, "c", harness.UserToken(t, s.JWTSecret(), user, nil))

		var acc struct{ ID string }
		decode(t, "POST /api/message", rec.call(t, s, rMessage, "POST", "/api/message",
			map[string]any{"userId": user, "event": "direct", "data": map[string]any{"n": 1}}, nil, 202), &acc)
		if acc.ID == "" {
			t.Errorf("POST /api/message answered no id")
		}
		expectData(t, d.WaitEvent("c", "direct", wait), map[string]any{"n": 1})

		// A charset parameter is still JSON.
		rec.call(t, s, rMessage, "POST", "/api/message", map[string]any{"userId": user, "event": "charset", "data": "é"},
			map[string]string{"Content-Type": "application/json; charset=utf-8"}, 202)
		expectData(t, d.WaitEvent("c", "charset", wait), "é")

		// A body just under MAX_PAYLOAD_BYTES is accepted and delivered whole.
		big := strings.Repeat("x", maxPayload-1024)
		rec.call(t, s, rMessage, "POST", "/api/message", map[string]any{"userId": user, "event": "big", "data": big}, nil, 202)
		expectData(t, d.WaitEvent("c", "big", wait), big)

		decode(t, "POST /api/broadcast", rec.call(t, s, rBroadcast, "POST", "/api/broadcast",
			map[string]any{"event": "everyone", "data": []any{1, "two"}}, nil, 202), &acc)
		if acc.ID == "" {
			t.Errorf("POST /api/broadcast answered no id")
		}
		expectData(t, d.WaitEvent("c", "everyone", wait), []any{1, "two"})

		var ids struct{ IDs []string }
		decode(t, "POST /api/batch", rec.call(t, s, rBatch, "POST", "/api/batch", map[string]any{"messages": []any{
			map[string]any{"userId": user, "event": "batch-1", "data": "one"},
			map[string]any{"event": "batch-2", "data": "two"},
			map[string]any{"userId": "someone-else", "event": "batch-3", "data": "three"},
		}}, nil, 202), &ids)
		if len(ids.IDs) != 3 || ids.IDs[0] == "" || ids.IDs[0] == ids.IDs[1] || ids.IDs[1] == ids.IDs[2] {
			t.Errorf("POST /api/batch answered ids %q, want 3 distinct ids", ids.IDs)
		}
		expectData(t, d.WaitEvent("c", "batch-1", wait), "one")
		expectData(t, d.WaitEvent("c", "batch-2", wait), "two")

		// An invalid item refuses the whole batch: its valid items are not published.
		rec.call(t, s, rBatch, "POST", "/api/batch", map[string]any{"messages": []any{
			map[string]any{"userId": user, "event": "never", "data": "refused batch"},
			map[string]any{"userId": user},
		}}, nil, 400)
		settle(t, d, s, "c", user)
		d.AssertNoEvent("c", "never", quiet)
		d.AssertNoEvent("c", "batch-3", 0)
	})

	t.Run("presence rooms and disconnect through REST", func(t *testing.T) {
		d := harness.NewDriver(t)
		user, room := "presence-user", "lobby"
		connect(t, d, s, ws, "tab1", harness.UserToken(t, s.JWTSecret(), user, nil))
		connect(t, d, s, ws, "tab2", harness.UserToken(t, s.JWTSecret(), user, nil))

		p := getPresence(t, rec, s, user)
		if !p.Online || p.Sockets != 2 || p.UserID != user || !slices.Contains(p.Instances, "it-rest") || len(p.Rooms) != 0 {
			t.Errorf("presence of %s = %+v, want online with 2 sockets on it-rest and no named room yet (the private user room is not listed)", user, p)
		}
		if p := getPresence(t, rec, s, "nobody-here"); p.Online || p.Sockets != 0 {
			t.Errorf("presence of an unknown user = %+v, want offline with 0 sockets (and 200, not 404)", p)
		}

		var acc struct{ ID string }
		decode(t, "POST /api/users/{userId}/rooms", rec.call(t, s, rJoin, "POST", "/api/users/"+user+"/rooms",
			map[string]any{"room": room}, nil, 202), &acc)
		if acc.ID == "" {
			t.Errorf("POST /api/users/%s/rooms answered no id", user)
		}
		eventually(t, wait, func() (bool, string) {
			p := getPresence(t, rec, s, user)
			return slices.Contains(p.Rooms, room), fmt.Sprintf("presence after the join: %+v", p)
		})
		var rooms struct {
			Rooms []struct {
				Name    string
				Members int
			}
		}
		body := rec.call(t, s, rRooms, "GET", "/api/rooms", nil, nil, 200)
		decode(t, "GET /api/rooms", body, &rooms)
		found := false
		for _, r := range rooms.Rooms {
			found = found || (r.Name == room && r.Members == 2)
		}
		if !found {
			t.Errorf("GET /api/rooms = %s, want %s with 2 members", body, room)
		}
		broadcast(t, s, map[string]any{"room": room, "event": "lobby-news", "data": "joined by REST"})
		expectData(t, d.WaitEvent("tab1", "lobby-news", wait), "joined by REST")
		expectData(t, d.WaitEvent("tab2", "lobby-news", wait), "joined by REST")

		rec.call(t, s, rLeave, "DELETE", "/api/users/"+user+"/rooms/"+room, nil, nil, 202)
		eventually(t, wait, func() (bool, string) {
			p := getPresence(t, rec, s, user)
			return !slices.Contains(p.Rooms, room), fmt.Sprintf("presence after the leave: %+v", p)
		})
		broadcast(t, s, map[string]any{"room": room, "event": "lobby-news", "data": "after leave"})
		settle(t, d, s, "tab1", user)
		d.AssertNoEvent("tab1", "lobby-news", quiet)

		rec.call(t, s, rDisconnect, "POST", "/api/users/"+user+"/disconnect", nil, map[string]string{"Content-Type": ""}, 202)
		for _, tab := range []string{"tab1", "tab2"} {
			if r := d.WaitDisconnect(tab, wait); r.Reason != "io server disconnect" {
				t.Errorf("%s disconnected with reason %q, want io server disconnect", tab, r.Reason)
			}
		}
		eventually(t, wait, func() (bool, string) {
			p := getPresence(t, rec, s, user)
			return !p.Online && p.Sockets == 0, fmt.Sprintf("presence after the disconnect: %+v", p)
		})
	})

	t.Run("bad requests", func(t *testing.T) {
		malformed := `{"userId": "u", "event": `
		cases := []struct {
			route, path string
			body        any
		}{
			{rMessage, "/api/message", malformed},
			{rMessage, "/api/message", map[string]any{"event": "e", "data": 1}},
			{rMessage, "/api/message", map[string]any{"userId": "u", "data": 1}},
			{rMessage, "/api/message", map[string]any{"userId": "", "event": "e"}},
			{rMessage, "/api/message", map[string]any{"userId": "u", "event": "disconnect"}},
			{rMessage, "/api/message", `[]`},
			{rBroadcast, "/api/broadcast", malformed},
			{rBroadcast, "/api/broadcast", map[string]any{"data": 1}},
			{rBroadcast, "/api/broadcast", map[string]any{"event": 42}},
			{rBatch, "/api/batch", malformed},
			{rBatch, "/api/batch", map[string]any{}},
			{rBatch, "/api/batch", map[string]any{"messages": []any{}}},
			{rBatch, "/api/batch", map[string]any{"messages": make([]any, 1001)}},
			{rJoin, "/api/users/u/rooms", malformed},
			{rJoin, "/api/users/u/rooms", map[string]any{}},
			{rJoin, "/api/users/u/rooms", map[string]any{"room": ""}},
		}
		for _, c := range cases {
			rec.call(t, s, c.route, "POST", c.path, c.body, nil, 400)
		}
		rec.call(t, s, rLeave, "DELETE", "/api/users/u/rooms/"+strings.Repeat("r", 300), nil, nil, 400)
	})

	t.Run("body too large", func(t *testing.T) {
		huge := strings.Repeat("y", maxPayload+1)
		cases := []struct {
			route, path string
			body        any
		}{
			{rMessage, "/api/message", map[string]any{"userId": "u", "event": "e", "data": huge}},
			{rBroadcast, "/api/broadcast", map[string]any{"event": "e", "data": huge}},
			{rBatch, "/api/batch", map[string]any{"messages": []any{map[string]any{"event": "e", "data": huge}}}},
			{rJoin, "/api/users/u/rooms", map[string]any{"room": huge}},
		}
		for _, c := range cases {
			rec.call(t, s, c.route, "POST", c.path, c.body, nil, 413)
		}
	})

	t.Run("not JSON", func(t *testing.T) {
		cases := []struct {
			route, path string
			body        any
		}{
			{rMessage, "/api/message", map[string]any{"userId": "u", "event": "e"}},
			{rBroadcast, "/api/broadcast", map[string]any{"event": "e"}},
			{rBatch, "/api/batch", map[string]any{"messages": []any{map[string]any{"event": "e"}}}},
			{rJoin, "/api/users/u/rooms", map[string]any{"room": "r"}},
		}
		for _, c := range cases {
			rec.call(t, s, c.route, "POST", c.path, c.body, map[string]string{"Content-Type": "text/plain"}, 415)
			rec.call(t, s, c.route, "POST", c.path, c.body, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415)
		}
		rec.call(t, s, rMessage, "POST", "/api/message", map[string]any{"userId": "u", "event": "e"}, map[string]string{"Content-Type": ""}, 415)
	})

	t.Run("unknown path and method", func(t *testing.T) {
		rec.call(t, s, "", "GET", "/api/nope", nil, nil, 404)
		rec.call(t, s, "", "POST", "/api/users/u/rooms/r/extra", map[string]any{}, nil, 404)
		rec.call(t, s, "", "PUT", "/api/message", map[string]any{"userId": "u", "event": "e"}, nil, 405)
	})

	t.Run("every route and status is documented", func(t *testing.T) {
		documented, err := schemas.DocumentedStatuses()
		if err != nil {
			t.Fatalf("schemas.DocumentedStatuses: %v", err)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var routes []string
		for route := range rec.seen {
			routes = append(routes, route)
		}
		sort.Strings(routes)
		for _, route := range routes {
			codes, ok := documented[route]
			if !ok {
				t.Errorf("%s answered but is not in openapi.yaml", route)
				continue
			}
			for status := range rec.seen[route] {
				if !slices.Contains(codes, status) {
					t.Errorf("%s answered %d, which openapi.yaml does not document (documented: %v)", route, status, codes)
				}
			}
		}
		for route, codes := range documented {
			if rec.seen[route] == nil {
				t.Errorf("documented route %s (statuses %v) was not exercised by this suite", route, codes)
				continue
			}
			var missed []int
			for _, c := range codes {
				if !rec.seen[route][c] {
					missed = append(missed, c)
				}
			}
			if len(missed) > 0 {
				t.Logf("%s: documented statuses not provoked here: %v", route, missed)
			}
		}
	})
}
