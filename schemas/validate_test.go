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
func envelopeJSON(t testing.TB, kind string, set map[string]any) []byte {
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

// envelopeCase is an envelope built by envelopeJSON: a valid one of kind,
// with set applied on top.
type envelopeCase struct {
	name string
	kind string
	set  map[string]any
	want string // for an invalid one: what the error must contain
}

// validEnvelopeCases are envelopes Decode accepts.
func validEnvelopeCases() []envelopeCase {
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

		// Boundaries: lengths count code points, not bytes.
		{"128-char multi-byte id", "deliver", map[string]any{"id": strings.Repeat("é", 128)}},
		{"128-char multi-byte event", "deliver", map[string]any{"event": strings.Repeat("€", 128)}},
		{"1-char event", "deliver", map[string]any{"event": "e"}},
		{"deliver to 256-char room and socket", "deliver", map[string]any{"to": map[string]any{"rooms": []string{strings.Repeat("r", 256)}, "sockets": []string{strings.Repeat("s", 256)}}}},
		{"deliver to 256-char multi-byte user", "deliver", map[string]any{"to": map[string]any{"users": []string{strings.Repeat("ü", 256)}}}},
		{"deliver except 256-char ids", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{"users": []string{strings.Repeat("u", 256)}}}}},
		{"client_event 128-char event", "client_event", map[string]any{"event": strings.Repeat("e", 128)}},
		{"client_event 256-char ids", "client_event", map[string]any{"userId": strings.Repeat("u", 256), "socketId": strings.Repeat("s", 256), "instance": strings.Repeat("i", 256)}},
		{"control 256-char room", "control", map[string]any{"room": strings.Repeat("r", 256)}},

		// Addressing.
		{"deliver to users and all false", "deliver", map[string]any{"to": map[string]any{"users": []string{"u1"}, "all": false}}},
		{"deliver to rooms with empty users", "deliver", map[string]any{"to": map[string]any{"users": []string{}, "rooms": []string{"r"}}}},
		{"deliver with empty except", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{}}}},
		{"deliver with empty except lists", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{"users": []string{}, "rooms": []string{}, "sockets": []string{}}}}},
		{"deliver to several users", "deliver", map[string]any{"to": map[string]any{"users": []string{"u1", "u2", "u3"}}}},

		// Names, values and kinds the schema leaves free.
		{"deliver with event that differs from a reserved one by case", "deliver", map[string]any{"event": "Connect"}},
		{"client_event may use a reserved event name", "client_event", map[string]any{"event": "disconnect"}},
		{"deliver with sender fields", "deliver", map[string]any{"userId": "u1", "socketId": "s1", "instance": "i1", "action": "join", "room": "r"}},
		{"deliver with null sender fields", "deliver", map[string]any{"userId": json.RawMessage("null"), "room": json.RawMessage("null")}},
		{"deliver with empty sender fields", "deliver", map[string]any{"userId": "", "instance": ""}},
		{"client_event with to", "client_event", map[string]any{"to": map[string]any{"users": []string{"u2"}}}},
		{"client_event with a to the schema does not look into", "client_event", map[string]any{"to": map[string]any{"user": []string{""}, "users": []string{}}}},
		{"client_event with null to", "client_event", map[string]any{"to": json.RawMessage("null")}},
		{"control join with event and data", "control", map[string]any{"event": "e", "data": []int{1}}},
		{"control disconnect with room", "control", map[string]any{"action": "disconnect"}},
		{"control heartbeat with userId and room", "control", map[string]any{"action": "heartbeat", "instance": "i1"}},
		{"control heartbeat with zero counts", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"connections": 0, "users": 0, "rooms": 0}}},
		{"control heartbeat with integral counts written as decimals", "control", map[string]any{"action": "heartbeat", "instance": "i1",
			"data": map[string]any{"connections": json.RawMessage("3.0"), "users": json.RawMessage("1e2"), "rooms": json.RawMessage("-0")}}},
		{"control heartbeat with empty data", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{}}},
		{"control heartbeat with stats in other case", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"Connections": -1}}},
		{"control query", "control", map[string]any{"action": "query", "instance": "i1", "userId": "u1", "data": map[string]any{"query": "user"}}},
		{"control reply", "control", map[string]any{"action": "reply", "instance": "i2", "data": map[string]any{"queryId": "q1", "sockets": 2}}},
		{"control reply with empty data", "control", map[string]any{"action": "reply", "instance": "i2", "data": map[string]any{}}},

		// Timestamps.
		{"ts with nanoseconds", "deliver", map[string]any{"ts": "2026-11-27T10:00:00.123456789Z"}},
		{"ts with negative offset", "deliver", map[string]any{"ts": "2026-11-27T10:00:00-05:30"}},
		{"ts on a leap day", "deliver", map[string]any{"ts": "2028-02-29T23:59:59Z"}},
		{"ts at the last second of a year", "deliver", map[string]any{"ts": "2026-12-31T23:59:59.999+00:00"}},
		{"ts of year 1", "deliver", map[string]any{"ts": "0001-01-01T00:00:00.000000001Z"}},

		// Unknown top-level properties of every type.
		{"unknown top-level null, number and array", "client_event", map[string]any{"x": json.RawMessage("null"), "y": 1.5, "z": []any{}}},
	}
	cases := make([]envelopeCase, len(tests))
	for i, tc := range tests {
		cases[i] = envelopeCase{name: tc.name, kind: tc.kind, set: tc.set}
	}
	return cases
}

func TestDecodeAcceptsValidEnvelopes(t *testing.T) {
	tests := validEnvelopeCases()
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

// invalidEnvelopeCases are envelopes Decode refuses, naming the field.
func invalidEnvelopeCases() []envelopeCase {
	tests := []envelopeCase{
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
		{"control query without instance", "control", map[string]any{"action": "query", "data": map[string]any{}}, "/instance: is required"},
		{"control query without data", "control", map[string]any{"action": "query", "instance": "i1"}, "/data: is required"},
		{"control reply with array data", "control", map[string]any{"action": "reply", "instance": "i1", "data": []int{1}}, "/data:"},
		{"control reply with null data", "control", map[string]any{"action": "reply", "instance": "i1", "data": nil}, "/data:"},
		{"control heartbeat data not an object", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": []int{1}}, "/data: "},
		{"control heartbeat negative count", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"connections": -1}}, "/data/connections: "},

		// Wrong JSON types, for every property.
		{"v null", "deliver", map[string]any{"v": json.RawMessage("null")}, "/v: value must be 1"},
		{"v true", "deliver", map[string]any{"v": true}, "/v: value must be 1"},
		{"v array", "deliver", map[string]any{"v": []int{1}}, "/v: value must be 1"},
		{"v object", "deliver", map[string]any{"v": map[string]any{"v": 1}}, "/v: value must be 1"},
		{"v 1.5", "deliver", map[string]any{"v": 1.5}, "/v: value must be 1"},
		{"v -1", "deliver", map[string]any{"v": -1}, "/v: value must be 1"},
		{"v 1e0 (not an integer Go can hold)", "deliver", map[string]any{"v": json.RawMessage("1e0")}, "/v: value must be the integer 1, got 1e0"},
		{"v 10e-1 (not an integer Go can hold)", "deliver", map[string]any{"v": json.RawMessage("10e-1")}, "/v: value must be the integer 1"},
		{"id null", "deliver", map[string]any{"id": json.RawMessage("null")}, "/id: got null, want string"},
		{"id boolean", "deliver", map[string]any{"id": true}, "/id: got boolean, want string"},
		{"id array", "deliver", map[string]any{"id": []string{"x"}}, "/id: got array, want string"},
		{"id object", "deliver", map[string]any{"id": map[string]any{}}, "/id: got object, want string"},
		{"id of 129 multi-byte chars", "deliver", map[string]any{"id": strings.Repeat("é", 129)}, "/id: maxLength: got 129, want 128"},
		{"kind null", "deliver", map[string]any{"kind": json.RawMessage("null")}, "/kind: value must be one of"},
		{"kind number", "deliver", map[string]any{"kind": 1}, "/kind: value must be one of"},
		{"kind array", "deliver", map[string]any{"kind": []string{"deliver"}}, "/kind: value must be one of"},
		{"kind in other case", "deliver", map[string]any{"kind": "Deliver"}, "/kind: value must be one of"},
		{"ts null", "deliver", map[string]any{"ts": json.RawMessage("null")}, "/ts: got null, want string"},
		{"ts boolean", "deliver", map[string]any{"ts": true}, "/ts: got boolean, want string"},
		{"ts object", "deliver", map[string]any{"ts": map[string]any{}}, "/ts: got object, want string"},
		{"to null", "deliver", map[string]any{"to": json.RawMessage("null")}, "/to: got null, want object"},
		{"to number", "deliver", map[string]any{"to": 1}, "/to: got number, want object"},
		{"to array", "deliver", map[string]any{"to": []string{"u1"}}, "/to: got array, want object"},
		{"users null", "deliver", map[string]any{"to": map[string]any{"users": json.RawMessage("null"), "all": true}}, "/to/users: got null, want array"},
		{"users object", "deliver", map[string]any{"to": map[string]any{"users": map[string]any{"u1": true}}}, "/to/users: got object, want array"},
		{"rooms number", "deliver", map[string]any{"to": map[string]any{"rooms": 1}}, "/to/rooms: got number, want array"},
		{"sockets boolean", "deliver", map[string]any{"to": map[string]any{"sockets": true}}, "/to/sockets: got boolean, want array"},
		{"user id null", "deliver", map[string]any{"to": map[string]any{"users": []any{"u1", nil}}}, "/to/users/1: got null, want string"},
		{"socket id object", "deliver", map[string]any{"to": map[string]any{"sockets": []any{map[string]any{}}}}, "/to/sockets/0: got object, want string"},
		{"room id array", "deliver", map[string]any{"to": map[string]any{"rooms": []any{[]string{"r"}}}}, "/to/rooms/0: got array, want string"},
		{"several bad ids", "deliver", map[string]any{"to": map[string]any{"users": []any{1, "", true}, "rooms": []any{nil}}}, "/to/users/2: got boolean, want string"},
		{"all null", "deliver", map[string]any{"to": map[string]any{"all": json.RawMessage("null")}}, "/to/all: got null, want boolean"},
		{"all number", "deliver", map[string]any{"to": map[string]any{"users": []string{"u1"}, "all": 1}}, "/to/all: got number, want boolean"},
		{"except null", "deliver", map[string]any{"to": map[string]any{"all": true, "except": json.RawMessage("null")}}, "/to/except: got null, want object"},
		{"except string", "deliver", map[string]any{"to": map[string]any{"all": true, "except": "u1"}}, "/to/except: got string, want object"},
		{"except rooms string", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{"rooms": "r"}}}, "/to/except/rooms: got string, want array"},
		{"except socket too long", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{"sockets": []string{strings.Repeat("s", 257)}}}}, "/to/except/sockets/0: maxLength: got 257, want 256"},
		{"event null", "deliver", map[string]any{"event": json.RawMessage("null")}, "/event: got null, want string"},
		{"event array", "deliver", map[string]any{"event": []string{"e"}}, "/event: got array, want string"},

		// Unknown properties inside to and except.
		{"to with several unknown properties", "deliver", map[string]any{"to": map[string]any{"users": []string{"u1"}, "user": []string{"u2"}, "x": 1}}, "/to: additional properties 'user', 'x' not allowed"},
		{"to with a list name in other case", "deliver", map[string]any{"to": map[string]any{"Users": []string{"u1"}}}, "/to: additional properties 'Users' not allowed"},
		{"to with only an unknown property", "deliver", map[string]any{"to": map[string]any{"everyone": true}}, "/to: must address someone"},
		{"except with all", "deliver", map[string]any{"to": map[string]any{"rooms": []string{"r"}, "except": map[string]any{"all": true}}}, "/to/except: additional properties 'all' not allowed"},
		{"except nested", "deliver", map[string]any{"to": map[string]any{"rooms": []string{"r"}, "except": map[string]any{"except": map[string]any{}}}}, "/to/except: additional properties 'except' not allowed"},
		{"except with a list name in other case", "deliver", map[string]any{"to": map[string]any{"all": true, "except": map[string]any{"Sockets": []string{"s1"}}}}, "/to/except: additional properties 'Sockets' not allowed"},

		// Lengths (code points) and reserved names.
		{"deliver event of 129 multi-byte chars", "deliver", map[string]any{"event": strings.Repeat("€", 129)}, "/event: maxLength: got 129, want 128"},
		{"deliver room id too long", "deliver", map[string]any{"to": map[string]any{"rooms": []string{strings.Repeat("r", 257)}}}, "/to/rooms/0: maxLength: got 257, want 256"},
		{"deliver multi-byte user id too long", "deliver", map[string]any{"to": map[string]any{"users": []string{strings.Repeat("ü", 257)}}}, "/to/users/0: maxLength: got 257, want 256"},

		// client_event.
		{"client_event event too long", "client_event", map[string]any{"event": strings.Repeat("e", 129)}, "/event: maxLength: got 129, want 128"},
		{"client_event event number", "client_event", map[string]any{"event": 1}, "/event: got number, want string"},
		{"client_event userId null", "client_event", map[string]any{"userId": json.RawMessage("null")}, "/userId: got null, want string"},
		{"client_event userId number", "client_event", map[string]any{"userId": 5}, "/userId: got number, want string"},
		{"client_event userId too long", "client_event", map[string]any{"userId": strings.Repeat("u", 257)}, "/userId: maxLength: got 257, want 256"},
		{"client_event empty socketId", "client_event", map[string]any{"socketId": ""}, "/socketId: minLength: got 0, want 1"},
		{"client_event socketId too long", "client_event", map[string]any{"socketId": strings.Repeat("s", 257)}, "/socketId: maxLength: got 257, want 256"},
		{"client_event instance null", "client_event", map[string]any{"instance": json.RawMessage("null")}, "/instance: got null, want string"},
		{"client_event instance too long", "client_event", map[string]any{"instance": strings.Repeat("i", 257)}, "/instance: maxLength: got 257, want 256"},
		{"client_event without anything", "client_event", map[string]any{"event": nil, "userId": nil, "socketId": nil}, "/event: is required; /socketId: is required; /userId: is required"},

		// control.
		{"control action null", "control", map[string]any{"action": json.RawMessage("null")}, "/action: value must be one of"},
		{"control action number", "control", map[string]any{"action": 1}, "/action: value must be one of"},
		{"control action in other case", "control", map[string]any{"action": "JOIN"}, "/action: value must be one of"},
		{"control leave without userId or room", "control", map[string]any{"action": "leave", "userId": nil, "room": nil}, "/room: is required; /userId: is required"},
		{"control join userId null", "control", map[string]any{"userId": json.RawMessage("null")}, "/userId: got null, want string"},
		{"control join empty userId", "control", map[string]any{"userId": ""}, "/userId: minLength: got 0, want 1"},
		{"control join room number", "control", map[string]any{"room": 5}, "/room: got number, want string"},
		{"control join room too long", "control", map[string]any{"room": strings.Repeat("r", 257)}, "/room: maxLength: got 257, want 256"},
		{"control disconnect empty userId", "control", map[string]any{"action": "disconnect", "userId": ""}, "/userId: minLength"},
		{"control heartbeat empty instance", "control", map[string]any{"action": "heartbeat", "instance": ""}, "/instance: minLength: got 0, want 1"},
		{"control heartbeat instance too long", "control", map[string]any{"action": "heartbeat", "instance": strings.Repeat("i", 257)}, "/instance: maxLength"},
		{"control heartbeat userId number", "control", map[string]any{"action": "heartbeat", "instance": "i1", "userId": 1}, "/userId: got number, want string"},
		{"control heartbeat data null", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": json.RawMessage("null")}, "/data: got null, want object"},
		{"control heartbeat data string", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": "3"}, "/data: got string, want object"},
		{"control heartbeat fractional count", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"users": 1.5}}, "/data/users: got number, want integer"},
		{"control heartbeat fractional count with exponent", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"users": json.RawMessage("25e-1")}}, "/data/users: got number, want integer"},
		{"control heartbeat negative fractional count", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"rooms": -0.5}}, "/data/rooms: minimum: got -0.5, want 0"},
		{"control heartbeat count string", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"rooms": "3"}}, "/data/rooms: got string, want integer"},
		{"control heartbeat count null", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"connections": nil}}, "/data/connections: got null, want integer"},
		{"control heartbeat every count bad", "control", map[string]any{"action": "heartbeat", "instance": "i1", "data": map[string]any{"connections": -1, "users": true, "rooms": -2}}, "/data/users: got boolean, want integer"},

		// Timestamps.
		{"ts without zone", "deliver", map[string]any{"ts": "2026-11-27T10:00:00"}, "/ts: '2026-11-27T10:00:00' is not valid date-time"},
		{"ts with a space", "deliver", map[string]any{"ts": "2026-11-27 10:00:00Z"}, "/ts: "},
		{"ts with an empty fraction", "deliver", map[string]any{"ts": "2026-11-27T10:00:00.Z"}, "/ts: "},
		{"ts with a comma fraction", "deliver", map[string]any{"ts": "2026-11-27T10:00:00,5Z"}, "/ts: "},
		{"ts at hour 24", "deliver", map[string]any{"ts": "2026-11-27T24:00:00Z"}, "/ts: "},
		{"ts with a one-digit hour", "deliver", map[string]any{"ts": "2026-11-27T1:00:00.0Z"}, "/ts: "},
		{"ts on February 30", "deliver", map[string]any{"ts": "2026-02-30T10:00:00Z"}, "/ts: "},
		{"ts on a leap day of a common year", "deliver", map[string]any{"ts": "2027-02-29T10:00:00Z"}, "/ts: "},
		{"ts with offset hour 24", "deliver", map[string]any{"ts": "2026-11-27T10:00:00+24:00"}, "/ts: "},
		{"ts with offset without colon", "deliver", map[string]any{"ts": "2026-11-27T10:00:00+0100"}, "/ts: "},
		{"ts with a short offset", "deliver", map[string]any{"ts": "2026-11-27T10:00:00+01"}, "/ts: "},
		{"ts with a second 60 outside a leap second", "deliver", map[string]any{"ts": "2026-11-27T10:00:60Z"}, "/ts: "},
		{"ts empty", "deliver", map[string]any{"ts": ""}, "/ts: '' is not valid date-time"},
		{"ts in lower case (RFC 3339, but not for time.Parse)", "deliver", map[string]any{"ts": "2026-11-27t10:00:00z"}, "/ts: parsing time"},
		{"ts on a leap second (RFC 3339, but not for time.Parse)", "deliver", map[string]any{"ts": "2016-12-31T23:59:60Z"}, "/ts: parsing time"},
		{"ts on a leap second with offset (RFC 3339, but not for time.Parse)", "deliver", map[string]any{"ts": "2017-01-01T00:59:60+01:00"}, "/ts: parsing time"},
		{"ts of year 0 (zero time, other zone)", "deliver", map[string]any{"ts": "0001-01-01T01:00:00+01:00"}, "/ts: must be set (zero time)"},

		// Properties the schema leaves free for the kind still have to fit
		// the Envelope (Decode has always refused these).
		{"deliver userId number", "deliver", map[string]any{"userId": 5}, "/userId: got number, want string"},
		{"deliver action object", "deliver", map[string]any{"action": map[string]any{}}, "/action: got object, want string"},
		{"client_event to string", "client_event", map[string]any{"to": "u1"}, "/to: got string, want object"},
		{"client_event to users number", "client_event", map[string]any{"to": map[string]any{"users": []any{1}}}, "/to/users/0: got number, want string"},
		{"client_event to all string", "client_event", map[string]any{"to": map[string]any{"all": "yes"}}, "/to/all: got string, want boolean"},
		{"client_event room array", "client_event", map[string]any{"room": []string{"r"}}, "/room: got array, want string"},
		{"control event number", "control", map[string]any{"event": 5}, "/event: got number, want string"},
		{"control socketId boolean", "control", map[string]any{"socketId": false}, "/socketId: got boolean, want string"},
		{"unknown kind with event number", "deliver", map[string]any{"kind": "shout", "event": 5}, "/event: got number, want string"},
	}
	for _, name := range []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"} {
		tests = append(tests, envelopeCase{"deliver reserved event " + name, "deliver", map[string]any{"event": name}, "/event: must be a non-empty event name other than the reserved"})
	}
	return tests
}

func TestDecodeRefusesInvalidEnvelopesNamingTheField(t *testing.T) {
	tests := invalidEnvelopeCases()
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

// everyBadField breaks five rules at once.
const everyBadField = `{"v":2,"id":"","kind":"deliver","to":{},"ts":"soon"}`

func TestDecodeReportsEveryBadField(t *testing.T) {
	_, err := Decode([]byte(everyBadField))
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

// nonObjectPayloads are JSON, but not an object.
func nonObjectPayloads() []string { return []string{`[]`, `"deliver"`, `null`, `42`, `true`} }

func TestDecodeRefusesNonObjects(t *testing.T) {
	for _, payload := range nonObjectPayloads() {
		_, err := Decode([]byte(payload))
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "envelope invalid: /: ") {
			t.Errorf("Decode(%s) = %v, want envelope invalid at /", payload, err)
		}
	}
}

// malformedPayloads are not JSON.
func malformedPayloads() []string {
	return []string{``, `{`, `{"v":1,}`, `nope`, `{"v":1} {"v":1}`, "\xff", `{"v":1,"id":"x}`, `{"v":01}`}
}

func TestDecodeRefusesMalformedJSON(t *testing.T) {
	for _, payload := range malformedPayloads() {
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

// constructedEnvelopes are valid envelopes built with the constructors.
func constructedEnvelopes() map[string]*Envelope {
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
	return tests
}

func TestConstructorsProduceValidEnvelopes(t *testing.T) {
	for name, env := range constructedEnvelopes() {
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

// builtCase is an envelope built in Go that Validate and Encode refuse.
type builtCase struct {
	name string
	env  *Envelope
	want string // what the error must contain
}

func invalidBuiltEnvelopes() []builtCase {
	zeroTS := NewClientEvent("u1", "s1", "i1", "chat", nil)
	zeroTS.TS = time.Time{}
	badData := NewDeliver(Target{All: true}, "e", json.RawMessage(`{oops`))
	return []builtCase{
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
}

func TestValidateRefusesBadEnvelopesBeforePublishing(t *testing.T) {
	for _, tc := range invalidBuiltEnvelopes() {
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

// BenchmarkDecodeDeliver decodes a deliver envelope with Decode (scan) and,
// for comparison in the same run, as Decode did with encoding/json alone.
func BenchmarkDecodeDeliver(b *testing.B) {
	payload, err := Encode(NewDeliver(Target{Users: []string{"u1"}}, "notification", json.RawMessage(`{"message":"Hello"}`)))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := new(wireEnvelope)
			if err := w.decodeWire(payload); err != nil || w.check() != nil {
				b.Fatal(err)
			}
			_ = w.envelope()
		}
	})
}

func BenchmarkEncodeDeliver(b *testing.B) {
	env := NewDeliver(Target{Users: []string{"u1"}}, "notification", json.RawMessage(`{"message":"Hello"}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(env); err != nil {
			b.Fatal(err)
		}
	}
}
