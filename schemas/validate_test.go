package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const testTS = "2026-11-27T10:00:00.000Z"

// envelopeJSON returns a valid envelope of the given kind as JSON, with set
// applied on top (a nil value deletes the property).
func envelopeJSON(t *testing.T, kind string, set map[string]any) []byte {
	t.Helper()
	m := map[string]any{"v": 1, "id": "0193a1e2-0000-7000-8000-000000000001", "kind": kind, "ts": testTS}
	switch kind {
	case "deliver":
		m["to"] = map[string]any{"users": []string{"u1"}}
		m["event"] = "notification"
		m["data"] = map[string]any{"message": "Hello"}
	case "client_event":
		m["event"] = "chat"
		m["userId"] = "u1"
		m["socketId"] = "s1"
		m["instance"] = "i1"
		m["data"] = map[string]any{"text": "hi"}
	case "control":
		m["action"] = "join"
		m["userId"] = "u1"
		m["room"] = "lobby"
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeAcceptsValidEnvelopes(t *testing.T) {
	tests := []struct {
		name string
		kind string
		set  map[string]any
	}{
		{"deliver to users", "deliver", nil},
		{"deliver to rooms", "deliver", map[string]any{"to": map[string]any{"rooms": []string{"lobby"}}}},
		{"deliver to sockets", "deliver", map[string]any{"to": map[string]any{"sockets": []string{"s1"}}}},
		{"deliver to all", "deliver", map[string]any{"to": map[string]any{"all": true}}},
		{"deliver to all with empty lists", "deliver", map[string]any{"to": map[string]any{"all": true, "users": []string{}, "rooms": []string{}, "sockets": []string{}}}},
		{"deliver with except", "deliver", map[string]any{"to": map[string]any{"rooms": []string{"lobby"}, "except": map[string]any{"users": []string{"u2"}, "rooms": []string{"r"}, "sockets": []string{"s9"}}}}},
		{"deliver without data", "deliver", map[string]any{"data": nil}},
		{"deliver with null data", "deliver", map[string]any{"data": json.RawMessage("null")}},
		{"deliver with array data", "deliver", map[string]any{"data": []any{1, "two", false}}},
		{"deliver with string data", "deliver", map[string]any{"data": "plain"}},
		{"deliver with 128-char event", "deliver", map[string]any{"event": strings.Repeat("e", 128)}},
		{"deliver to 256-char user", "deliver", map[string]any{"to": map[string]any{"users": []string{strings.Repeat("u", 256)}}}},
		{"deliver with event resembling a reserved name", "deliver", map[string]any{"event": "connected"}},
		{"ts with offset", "deliver", map[string]any{"ts": "2026-11-27T11:00:00+01:00"}},
		{"ts without fraction", "deliver", map[string]any{"ts": "2026-11-27T10:00:00Z"}},
		{"128-char id", "deliver", map[string]any{"id": strings.Repeat("i", 128)}},
		{"unknown top-level property (forward compatible)", "deliver", map[string]any{"priority": "high", "trace": map[string]any{"id": 1}}},
		{"client_event", "client_event", nil},
		{"client_event without instance or data", "client_event", map[string]any{"instance": nil, "data": nil}},
		{"control join", "control", nil},
		{"control leave", "control", map[string]any{"action": "leave"}},
		{"control disconnect", "control", map[string]any{"action": "disconnect", "room": nil}},
		{"control heartbeat", "control", map[string]any{"action": "heartbeat", "userId": nil, "room": nil, "instance": "i1"}},
		{"control heartbeat with stats", "control", map[string]any{"action": "heartbeat", "userId": nil, "room": nil, "instance": "i1",
			"data": map[string]any{"connections": 3, "users": 2, "rooms": 4, "extra": "ok"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := envelopeJSON(t, tc.kind, tc.set)
			env, err := Decode(payload)
			if err != nil {
				t.Fatalf("Decode(%s) = %v", payload, err)
			}
			if string(env.Kind) != tc.kind || env.V != 1 || env.TS.IsZero() {
				t.Errorf("Decode(%s) = %+v", payload, env)
			}
		})
	}
}

func TestDecodeRefusesInvalidEnvelopesNamingTheField(t *testing.T) {
	type tc struct {
		name string
		kind string
		set  map[string]any
		want string // must appear in the error message
	}
	tests := []tc{
		{"v missing", "deliver", map[string]any{"v": nil}, "/v: is required"},
		{"v 2", "deliver", map[string]any{"v": 2}, "/v: "},
		{"v string", "deliver", map[string]any{"v": "1"}, "/v: "},
		{"v 1.0 (not an integer Go can hold)", "deliver", map[string]any{"v": json.RawMessage("1.0")}, "/v: "},
		{"id missing", "deliver", map[string]any{"id": nil}, "/id: is required"},
		{"id empty", "deliver", map[string]any{"id": ""}, "/id: "},
		{"id too long", "deliver", map[string]any{"id": strings.Repeat("i", 129)}, "/id: "},
		{"id number", "deliver", map[string]any{"id": 7}, "/id: "},
		{"kind missing", "deliver", map[string]any{"kind": nil}, "/kind: is required"},
		{"kind unknown", "deliver", map[string]any{"kind": "shout"}, "/kind: "},
		{"ts missing", "deliver", map[string]any{"ts": nil}, "/ts: is required"},
		{"ts not a date-time", "deliver", map[string]any{"ts": "yesterday"}, "/ts: "},
		{"ts date only", "deliver", map[string]any{"ts": "2026-11-27"}, "/ts: "},
		{"ts number", "deliver", map[string]any{"ts": 1764237600}, "/ts: "},
		{"ts zero time", "deliver", map[string]any{"ts": "0001-01-01T00:00:00Z"}, "/ts: "},

		{"deliver without to", "deliver", map[string]any{"to": nil}, "/to: is required"},
		{"deliver to nobody", "deliver", map[string]any{"to": map[string]any{}}, "/to: must address someone"},
		{"deliver to empty lists", "deliver", map[string]any{"to": map[string]any{"users": []string{}, "rooms": []string{}, "sockets": []string{}}}, "/to: must address someone"},
		{"deliver to all false", "deliver", map[string]any{"to": map[string]any{"all": false}}, "/to: must address someone"},
		{"deliver to is not an object", "deliver", map[string]any{"to": "u1"}, "/to: "},
		{"deliver users not an array", "deliver", map[string]any{"to": map[string]any{"users": "u1"}}, "/to/users: "},
		{"deliver empty user id", "deliver", map[string]any{"to": map[string]any{"users": []string{"u1", ""}}}, "/to/users/1: "},
		{"deliver user id too long", "deliver", map[string]any{"to": map[string]any{"users": []string{strings.Repeat("u", 257)}}}, "/to/users/0: "},
		{"deliver room not a string", "deliver", map[string]any{"to": map[string]any{"rooms": []any{1}}}, "/to/rooms/0: "},
		{"deliver empty socket id", "deliver", map[string]any{"to": map[string]any{"sockets": []string{""}}}, "/to/sockets/0: "},
		{"deliver all not a boolean", "deliver", map[string]any{"to": map[string]any{"all": "yes"}}, "/to/all: "},
		{"deliver misspelt target", "deliver", map[string]any{"to": map[string]any{"users": []string{"u1"}, "user": []string{"u2"}}}, "/to: additional properties 'user'"},
		{"deliver except not an object", "deliver", map[string]any{"to": map[string]any{"all": true, "except": []string{"u1"}}}, "/to/except: "},
		{"deliver except empty user", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{"users": []string{""}}}}, "/to/except/users/0: "},
		{"deliver except misspelt", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{"user": []string{"u1"}}}}, "/to/except: "},
		{"deliver without event", "deliver", map[string]any{"event": nil}, "/event: is required"},
		{"deliver empty event", "deliver", map[string]any{"event": ""}, "/event: "},
		{"deliver event too long", "deliver", map[string]any{"event": strings.Repeat("e", 129)}, "/event: "},
		{"deliver event not a string", "deliver", map[string]any{"event": 3}, "/event: "},

		{"client_event without event", "client_event", map[string]any{"event": nil}, "/event: is required"},
		{"client_event empty event", "client_event", map[string]any{"event": ""}, "/event: "},
		{"client_event without userId", "client_event", map[string]any{"userId": nil}, "/userId: is required"},
		{"client_event empty userId", "client_event", map[string]any{"userId": ""}, "/userId: "},
		{"client_event without socketId", "client_event", map[string]any{"socketId": nil}, "/socketId: is required"},
		{"client_event empty instance", "client_event", map[string]any{"instance": ""}, "/instance: "},

		{"control without action", "control", map[string]any{"action": nil}, "/action: is required"},
		{"control unknown action", "control", map[string]any{"action": "kick"}, "/action: "},
		{"control join without userId", "control", map[string]any{"userId": nil}, "/userId: is required"},
		{"control join without room", "control", map[string]any{"room": nil}, "/room: is required"},
		{"control join empty room", "control", map[string]any{"room": ""}, "/room: "},
		{"control leave without room", "control", map[string]any{"action": "leave", "room": nil}, "/room: is required"},
		{"control leave without userId", "control", map[string]any{"action": "leave", "userId": nil}, "/userId: is required"},
		{"control disconnect without userId", "control", map[string]any{"action": "disconnect", "userId": nil}, "/userId: is required"},
		{"control heartbeat without instance", "control", map[string]any{"action": "heartbeat"}, "/instance: is required"},
		{"control heartbeat data not an object", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": []int{1}}, "/data: "},
		{"control heartbeat negative count", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"connections": -1}}, "/data/connections: "},
	}
	for _, name := range []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"} {
		tests = append(tests, tc{"deliver reserved event " + name, "deliver", map[string]any{"event": name}, "/event: must be a non-empty event name other than the reserved"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := envelopeJSON(t, tc.kind, tc.set)
			env, err := Decode(payload)
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want an error", payload, env)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "envelope invalid: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("Decode(%s) error = %q, want it to contain %q", payload, msg, tc.want)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) || verr.Malformed || len(verr.Fields) == 0 {
				t.Errorf("error %#v is not a ValidationError listing fields", err)
			}
		})
	}
}

func TestDecodeReportsEveryBadField(t *testing.T) {
	payload := []byte(`{"v":2,"id":"","kind":"deliver","to":{},"ts":"soon"}`)
	_, err := Decode(payload)
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Decode = %v, want a *ValidationError", err)
	}
	var fields []string
	for _, f := range verr.Fields {
		fields = append(fields, f.Field)
	}
	want := []string{"/event", "/id", "/to", "/ts", "/v"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields = %v, want %v (%v)", fields, want, err)
	}
}

func TestDecodeRefusesNonObjects(t *testing.T) {
	for _, payload := range []string{`[]`, `"deliver"`, `null`, `42`} {
		_, err := Decode([]byte(payload))
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "envelope invalid: /: ") {
			t.Errorf("Decode(%s) = %v, want envelope invalid at /", payload, err)
		}
	}
}

func TestDecodeRefusesMalformedJSON(t *testing.T) {
	for _, payload := range []string{``, `{`, `{"v":1,}`, `nope`, `{"v":1} {"v":1}`, "\xff"} {
		_, err := Decode([]byte(payload))
		if err == nil {
			t.Fatalf("Decode(%q) succeeded", payload)
		}
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "envelope malformed: ") {
			t.Errorf("Decode(%q) = %v, want envelope malformed wrapping ErrInvalid", payload, err)
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || !verr.Malformed || errors.Unwrap(err) == nil {
			t.Errorf("Decode(%q): %#v should be a malformed ValidationError with a cause", payload, err)
		}
	}
}

func TestConstructorsProduceValidEnvelopes(t *testing.T) {
	data := json.RawMessage(`{"message":"Hello"}`)
	heartbeat := NewControl(ActionHeartbeat, "", "", "i1")
	heartbeat.Data = json.RawMessage(`{"connections":3,"users":2,"rooms":1}`)
	tests := map[string]*Envelope{
		"NewDeliver users":    NewDeliver(Target{Users: []string{"u1", "u2"}}, "notification", data),
		"NewDeliver all":      NewDeliver(Target{All: true, Except: &Exclude{Sockets: []string{"s1"}}}, "news", nil),
		"NewDeliver room":     NewDeliver(Target{Rooms: []string{"lobby"}}, "chat", json.RawMessage(`"hi"`)),
		"NewClientEvent":      NewClientEvent("u1", "s1", "i1", "chat", data),
		"NewClientEvent bare": NewClientEvent("u1", "s1", "", "ping", nil),
		"NewControl join":     NewControl(ActionJoin, "u1", "lobby", "i1"),
		"NewControl leave":    NewControl(ActionLeave, "u1", "lobby", ""),
		"NewControl disc.":    NewControl(ActionDisconnect, "u1", "", "i1"),
		"NewControl beat":     heartbeat,
	}
	for name, env := range tests {
		t.Run(name, func(t *testing.T) {
			if err := env.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			b, err := Encode(env)
			if err != nil {
				t.Fatalf("Encode() = %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode()) = %v", err)
			}
			if !got.TS.Equal(env.TS) {
				t.Errorf("ts = %v, want %v", got.TS, env.TS)
			}
			want := *env
			gotCopy := *got
			want.TS, gotCopy.TS = time.Time{}, time.Time{}
			if !reflect.DeepEqual(gotCopy, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", gotCopy, want)
			}
		})
	}
}

func TestValidateRefusesBadEnvelopesBeforePublishing(t *testing.T) {
	zeroTS := NewClientEvent("u1", "s1", "i1", "chat", nil)
	zeroTS.TS = time.Time{}
	badData := NewDeliver(Target{All: true}, "e", json.RawMessage(`{oops`))
	tests := []struct {
		name string
		env  *Envelope
		want string
	}{
		{"nobody addressed", NewDeliver(Target{}, "e", nil), "/to: must address someone"},
		{"reserved event", NewDeliver(Target{All: true}, "disconnect", nil), "/event: "},
		{"no event", NewDeliver(Target{All: true}, "", nil), "/event: is required"},
		{"empty room", NewDeliver(Target{Rooms: []string{""}}, "e", nil), "/to/rooms/0: "},
		{"client event without socket", NewClientEvent("u1", "", "i1", "chat", nil), "/socketId: is required"},
		{"join without room", NewControl(ActionJoin, "u1", "", "i1"), "/room: is required"},
		{"heartbeat without instance", NewControl(ActionHeartbeat, "", "", ""), "/instance: is required"},
		{"unknown action", NewControl("explode", "u1", "", "i1"), "/action: "},
		{"version zero", &Envelope{ID: "x", Kind: KindControl, Action: ActionDisconnect, UserID: "u1", TS: time.Now()}, "/v: "},
		{"zero ts", zeroTS, "/ts: "},
		{"bad data", badData, "envelope malformed: "},
		{"nil", nil, "envelope invalid: /: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.env.Validate()
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an ErrInvalid containing %q", err, tc.want)
			}
			if b, err := Encode(tc.env); err == nil {
				t.Errorf("Encode() = %s, want an error", b)
			}
		})
	}
}

func TestDecodeIsSafeForConcurrentUse(t *testing.T) {
	good := envelopeJSON(t, "deliver", nil)
	bad := envelopeJSON(t, "deliver", map[string]any{"to": map[string]any{}})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			if _, err := Decode(good); err != nil {
				errs <- err
			}
			if _, err := Decode(bad); err == nil {
				errs <- fmt.Errorf("goroutine %d: invalid envelope accepted", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEnvelopeSchemaIsEmbeddedJSON(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(EnvelopeSchema(), &doc); err != nil {
		t.Fatalf("envelope.schema.json: %v", err)
	}
	if doc["$id"] != EnvelopeSchemaURL || doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$id/$schema = %v/%v", doc["$id"], doc["$schema"])
	}
	defs, _ := doc["$defs"].(map[string]any)
	for _, k := range []Kind{KindDeliver, KindClientEvent, KindControl} {
		if _, ok := defs[string(k)]; !ok {
			t.Errorf("no $defs/%s", k)
		}
	}
}

func BenchmarkDecodeDeliver(b *testing.B) {
	payload, err := Encode(NewDeliver(Target{Users: []string{"u1"}}, "notification", json.RawMessage(`{"message":"Hello"}`)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}
