package schemas

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The hand-written encoder must write what json.Marshal writes.
func TestAppendEnvelopeMatchesJSONMarshal(t *testing.T) {
	ts := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	strs := []string{"", "plain", `q"uo\te`, "tab\tnew\nline\rcr", "\x00\x01\x1f", "<html>&amp;", "é ü 日本 🚀",
		"bad \xff utf8", "line\u2028sep\u2029", "\x7f del"}
	var envs []*Envelope
	for _, s := range strs {
		envs = append(envs,
			&Envelope{V: 1, ID: "id-" + s, Kind: KindDeliver, To: &Target{Users: []string{s, "u"}, Rooms: []string{s}}, Event: "ev" + s, Data: json.RawMessage(`{"a":[1,2,{"b":null}]}`), TS: ts},
			&Envelope{V: 1, ID: "x", Kind: KindClientEvent, Event: s, UserID: s, SocketID: s, Instance: s, TS: ts.Add(time.Hour)},
			&Envelope{V: 1, ID: "y", Kind: KindControl, Action: s, UserID: s, Room: s, TS: ts.In(time.FixedZone("x", 3600))},
		)
	}
	envs = append(envs,
		&Envelope{V: 1, ID: "all", Kind: KindDeliver, To: &Target{All: true, Except: &Exclude{Sockets: []string{"s1"}, Users: []string{"u"}}}, Event: "e", TS: ts},
		&Envelope{V: 1, ID: "empty-lists", Kind: KindDeliver, To: &Target{Users: []string{}, Except: &Exclude{}}, Event: "e", Data: json.RawMessage(`"s"`), TS: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		NewDeliver(Target{Sockets: []string{"a"}}, "e", json.RawMessage(`12.5e3`)),
		NewClientEvent("u", "s", "i", "chat", json.RawMessage(`[true,false]`)),
		NewControl(ActionJoin, "u", "r", "i"),
	)
	for _, e := range envs {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEnvelope(nil, e); !bytes.Equal(got, want) {
			t.Errorf("appendEnvelope(%q)\n got %s\nwant %s", e.ID, got, want)
		}
	}
}

func FuzzAppendEnvelopeMatchesJSONMarshal(f *testing.F) {
	f.Add("id", "event", "user", "room", int64(0))
	f.Add("\xff\xfe", "<>&\u2028", "\x00", `"\`, int64(1e18))
	f.Fuzz(func(t *testing.T, id, event, user, room string, nanos int64) {
		e := &Envelope{V: 1, ID: id, Kind: KindDeliver, To: &Target{Users: []string{user}, Rooms: []string{room}},
			Event: event, UserID: user, Room: room, TS: time.Unix(0, nanos).UTC()}
		want, err := json.Marshal(e)
		if err != nil {
			t.Skip() // a time json.Marshal refuses (year outside 0..9999)
		}
		if got := appendEnvelope(nil, e); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
