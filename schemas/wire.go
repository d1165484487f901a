package schemas

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/web3-socket/web3-socket/internal/jsonscan"
)

// jsonType is the JSON type of a property as received, or absent when the
// property is not there. The typed Envelope cannot say either, and the schema
// judges both.
type jsonType = jsonscan.Kind

const (
	absent      = jsonscan.Absent
	jsonNull    = jsonscan.Null
	jsonBoolean = jsonscan.Boolean
	jsonNumber  = jsonscan.Number
	jsonString  = jsonscan.String
	jsonArray   = jsonscan.Array
	jsonObject  = jsonscan.Object
)

// typeOf returns the type of a JSON value, which encoding/json has already
// found well-formed. Leading white space is skipped: a json.RawMessage built
// by hand may carry some.
func typeOf(b []byte) jsonType {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return absent
	}
	switch b[0] {
	case 'n':
		return jsonNull
	case 't', 'f':
		return jsonBoolean
	case '"':
		return jsonString
	case '[':
		return jsonArray
	case '{':
		return jsonObject
	}
	return jsonNumber
}

// wireEnvelope is an envelope as it is on the wire: every property the schema
// constrains is decoded into a type that also records the JSON type it had,
// so that one pass of encoding/json yields every wrong type, not only the
// first, and check can judge presence and type the way the schema does.
//
// Decode fills it from the payload; Encode derives it from an Envelope
// (wireOf) so that both are judged by the same check.
type wireEnvelope struct {
	V        wireNumber      `json:"v"`
	ID       wireString      `json:"id"`
	Kind     wireString      `json:"kind"`
	To       wireAddress     `json:"to"`
	Event    wireString      `json:"event"`
	Data     json.RawMessage `json:"data"`
	UserID   wireString      `json:"userId"`
	SocketID wireString      `json:"socketId"`
	Instance wireString      `json:"instance"`
	Action   wireString      `json:"action"`
	Room     wireString      `json:"room"`
	TS       wireTime        `json:"ts"`
}

// wireString is a property meant to hold a string.
type wireString struct {
	typ jsonType
	s   string
}

// UnmarshalJSON records the type of b and, for a string, its value.
func (f *wireString) UnmarshalJSON(b []byte) error {
	*f = wireString{typ: typeOf(b)}
	if f.typ != jsonString {
		return nil
	}
	var err error
	f.s, err = unquote(b)
	return err
}

// unquote returns the value of the JSON string b.
func unquote(b []byte) (string, error) {
	// encoding/json has checked b; without escapes and with valid UTF-8 its
	// value is the bytes between the quotes.
	if in := b[1 : len(b)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), nil
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}

// wireNumber is a property meant to hold a number; text is its JSON literal.
type wireNumber struct {
	typ  jsonType
	text string
}

// UnmarshalJSON records the type of b and, for a number, its literal.
func (f *wireNumber) UnmarshalJSON(b []byte) error {
	*f = wireNumber{typ: typeOf(b)}
	if f.typ == jsonNumber {
		f.text = string(b)
	}
	return nil
}

// wireBool is a property meant to hold a boolean.
type wireBool struct {
	typ jsonType
	v   bool
}

// UnmarshalJSON records the type of b and, for a boolean, its value.
func (f *wireBool) UnmarshalJSON(b []byte) error {
	*f = wireBool{typ: typeOf(b), v: len(b) > 0 && b[0] == 't'}
	return nil
}

// wireTime is the ts property. The schema asks for an RFC 3339 date-time
// (notRFC3339 says why it is not one); the Envelope also needs time.Parse to
// accept it (t, err), which refuses some RFC 3339 strings, such as leap seconds.
type wireTime struct {
	typ        jsonType
	text       string
	notRFC3339 string
	t          time.Time
	err        error
}

// UnmarshalJSON records the type of b and, for a string, what it says.
func (f *wireTime) UnmarshalJSON(b []byte) error {
	*f = wireTime{typ: typeOf(b)}
	if f.typ != jsonString {
		return nil
	}
	text, err := unquote(b)
	if err != nil {
		return err
	}
	f.set(text)
	return nil
}

// set records what the string text says as a ts.
func (f *wireTime) set(text string) {
	f.text = text
	if f.notRFC3339 = dateTimeError(f.text); f.notRFC3339 == "" {
		f.t, f.err = time.Parse(time.RFC3339, f.text)
	}
}

// wireList is a list of ids (users, rooms or sockets).
type wireList struct {
	typ   jsonType
	items []string
	// itemTypes is nil when every item is a string.
	itemTypes []jsonType
}

// UnmarshalJSON records the type of b and, for an array, its items.
func (l *wireList) UnmarshalJSON(b []byte) error {
	*l = wireList{typ: typeOf(b)}
	if l.typ != jsonArray {
		return nil
	}
	var items []wireString
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	l.items = make([]string, len(items))
	for i, it := range items {
		l.items[i] = it.s
		if it.typ == jsonString {
			continue
		}
		if l.itemTypes == nil {
			l.itemTypes = make([]jsonType, len(items))
			for j := range l.itemTypes {
				l.itemTypes[j] = jsonString
			}
		}
		l.itemTypes[i] = it.typ
	}
	return nil
}

// itemType returns the JSON type of item i.
func (l *wireList) itemType(i int) jsonType {
	if l.itemTypes == nil {
		return jsonString
	}
	return l.itemTypes[i]
}

// wireAddress is the to object (target) or its except object.
type wireAddress struct {
	typ                   jsonType
	users, rooms, sockets wireList
	// all and except belong to a target only; in an except they are unknown.
	all    wireBool
	except *wireAddress
	// unknown names the other properties, sorted.
	unknown []string
}

// UnmarshalJSON decodes the to object.
func (a *wireAddress) UnmarshalJSON(b []byte) error { return a.decode(b, true) }

func (a *wireAddress) decode(b []byte, target bool) error {
	*a = wireAddress{typ: typeOf(b)}
	if a.typ != jsonObject {
		return nil
	}
	// A map rather than a struct: encoding/json matches struct fields without
	// regard to case and drops unknown names, but the schema refuses both
	// "Users" and "user" here, so that a misspelt list reaches nobody. (In
	// envelopes other than deliver, where the schema ignores to, such names
	// are ignored too, where json.Unmarshal would have filled Users.)
	var props map[string]json.RawMessage
	if err := json.Unmarshal(b, &props); err != nil {
		return err
	}
	for name, v := range props {
		var err error
		switch {
		case name == "users":
			err = a.users.UnmarshalJSON(v)
		case name == "rooms":
			err = a.rooms.UnmarshalJSON(v)
		case name == "sockets":
			err = a.sockets.UnmarshalJSON(v)
		case target && name == "all":
			err = a.all.UnmarshalJSON(v)
		case target && name == "except":
			a.except = new(wireAddress)
			err = a.except.decode(v, false)
		default:
			a.unknown = append(a.unknown, name)
		}
		if err != nil {
			return err
		}
	}
	slices.Sort(a.unknown)
	return nil
}

// envelope returns the Envelope that w describes; call it once check passed.
func (w *wireEnvelope) envelope() *Envelope {
	e := &Envelope{
		V:        Version, // check accepts the literal 1 only
		ID:       w.ID.s,
		Kind:     Kind(w.Kind.s),
		Event:    w.Event.s,
		Data:     w.Data,
		UserID:   w.UserID.s,
		SocketID: w.SocketID.s,
		Instance: w.Instance.s,
		Action:   w.Action.s,
		Room:     w.Room.s,
		TS:       w.TS.t,
	}
	if w.To.typ == jsonObject {
		e.To = &Target{Users: w.To.users.items, Rooms: w.To.rooms.items, Sockets: w.To.sockets.items, All: w.To.all.v}
		if x := w.To.except; x != nil && x.typ == jsonObject {
			e.To.Except = &Exclude{Users: x.users.items, Rooms: x.rooms.items, Sockets: x.sockets.items}
		}
	}
	return e
}

// wireOf describes e as json.Marshal encodes it: properties tagged omitempty
// are absent when empty.
func wireOf(e *Envelope) wireEnvelope {
	w := wireEnvelope{
		V:        wireNumber{typ: jsonNumber, text: strconv.Itoa(e.V)},
		ID:       wireString{typ: jsonString, s: e.ID},
		Kind:     wireString{typ: jsonString, s: string(e.Kind)},
		Event:    optionalString(e.Event),
		Data:     e.Data,
		UserID:   optionalString(e.UserID),
		SocketID: optionalString(e.SocketID),
		Instance: optionalString(e.Instance),
		Action:   optionalString(e.Action),
		Room:     optionalString(e.Room),
		// time.Time encodes as RFC 3339 or fails to encode at all.
		TS: wireTime{typ: jsonString, t: e.TS},
	}
	if t := e.To; t != nil {
		w.To = wireAddress{typ: jsonObject, users: optionalList(t.Users), rooms: optionalList(t.Rooms), sockets: optionalList(t.Sockets)}
		if t.All {
			w.To.all = wireBool{typ: jsonBoolean, v: true}
		}
		if x := t.Except; x != nil {
			w.To.except = &wireAddress{typ: jsonObject, users: optionalList(x.Users), rooms: optionalList(x.Rooms), sockets: optionalList(x.Sockets)}
		}
	}
	return w
}

func optionalString(s string) wireString {
	if s == "" {
		return wireString{}
	}
	return wireString{typ: jsonString, s: s}
}

func optionalList(items []string) wireList {
	if len(items) == 0 {
		return wireList{}
	}
	return wireList{typ: jsonArray, items: items}
}
