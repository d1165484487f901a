package schemas

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/web3-socket/web3-socket/internal/jsonscan"
)

// scan fills w from payload in one pass over its bytes, with no reflection and
// one allocation for all its strings, when the payload is an envelope as
// producers write them: an object whose property names are spelt exactly
// and appear once, and whose strings of interest are valid UTF-8 without
// escapes. It reports false for anything else, malformed payloads included,
// and Decode then leaves the payload to encoding/json (decodeWire). Where
// scan reports true, w is what decodeWire makes of the payload:
// wire_scan_test.go and FuzzScanAgreesWithEncodingJSON hold it to that.
//
// Decoding with encoding/json took most of the CPU a busy instance spent on
// an envelope from the bus, and its deep call chains made the goroutine that
// handles each message grow its stack.
func (w *wireEnvelope) scan(payload []byte) bool {
	s := scanner{jsonscan.NewShared(payload)}
	*w = wireEnvelope{}
	s.Space()
	if !s.Consume('{') {
		return false
	}
	var seen uint16
	for i := 0; ; i++ {
		name, more, ok := s.NextName(i)
		if !ok {
			return false
		}
		if !more {
			break
		}
		if !w.scanProp(&s, name, &seen) {
			return false
		}
	}
	return s.AtEnd()
}

// scanProp scans the value of the top-level property name; seen has a bit
// for each known property already scanned.
func (w *wireEnvelope) scanProp(s *scanner, name string, seen *uint16) bool {
	bit, field := uint16(0), -1
	for i, n := range topLevelNames {
		if n == name {
			bit, field = 1<<i, i
			break
		}
	}
	if field < 0 {
		// encoding/json gives an Envelope field a property whose name
		// differs only by case (folding some non-ASCII letters too).
		if !isASCII(name) || slices.ContainsFunc(topLevelNames[:], func(n string) bool { return strings.EqualFold(n, name) }) {
			return false
		}
		_, _, ok := s.Value()
		return ok
	}
	if *seen&bit != 0 {
		return false // duplicates: left to encoding/json, where the last wins
	}
	*seen |= bit
	switch name {
	case "v":
		t, raw, ok := s.Value()
		w.V = wireNumber{typ: t}
		if t == jsonNumber {
			w.V.text = string(raw)
		}
		return ok
	case "to":
		return s.address(&w.To, true)
	case "data":
		_, raw, ok := s.Value()
		w.Data = append(json.RawMessage(nil), raw...)
		return ok
	case "ts":
		t, text, ok := s.StringOrValue()
		w.TS = wireTime{typ: t}
		if ok && t == jsonString {
			w.TS.set(text)
		}
		return ok
	}
	f := w.stringField(name)
	t, text, ok := s.StringOrValue()
	*f = wireString{typ: t, s: text}
	return ok
}

// topLevelNames are the envelope's property names, as wireEnvelope tags them.
var topLevelNames = [...]string{"v", "id", "kind", "to", "event", "data", "userId", "socketId", "instance", "action", "room", "ts"}

// stringField returns the wireString property called name.
func (w *wireEnvelope) stringField(name string) *wireString {
	switch name {
	case "id":
		return &w.ID
	case "kind":
		return &w.Kind
	case "event":
		return &w.Event
	case "userId":
		return &w.UserID
	case "socketId":
		return &w.SocketID
	case "instance":
		return &w.Instance
	case "action":
		return &w.Action
	}
	return &w.Room
}

// address fills a from the value at the scanner: a to object (target) or an
// except object.
func (s *scanner) address(a *wireAddress, target bool) bool {
	s.Space()
	if !s.Consume('{') {
		t, _, ok := s.Value()
		*a = wireAddress{typ: t}
		return ok
	}
	*a = wireAddress{typ: jsonObject}
	for i := 0; ; i++ {
		name, more, ok := s.NextName(i)
		if !ok {
			return false
		}
		if !more {
			break
		}
		if !a.scanProp(s, name, target) {
			return false
		}
	}
	a.finishUnknown(target)
	return true
}

// scanProp scans the value of the address's property name.
func (a *wireAddress) scanProp(s *scanner, name string, target bool) bool {
	if slices.Contains(a.unknown, name) {
		return false // duplicates: left to encoding/json
	}
	var l *wireList
	switch {
	case name == "users":
		l = &a.users
	case name == "rooms":
		l = &a.rooms
	case name == "sockets":
		l = &a.sockets
	case target && name == "all":
		t, raw, ok := s.Value()
		a.all = wireBool{typ: t, v: ok && t == jsonBoolean && raw[0] == 't'}
		a.unknown = append(a.unknown, name) // marks it seen; removed by finishUnknown
		return ok
	case target && name == "except":
		a.except = new(wireAddress)
		a.unknown = append(a.unknown, name)
		return s.address(a.except, false)
	default:
		_, _, ok := s.Value()
		a.unknown = append(a.unknown, name)
		return ok
	}
	if l.typ != absent {
		return false
	}
	return s.list(l)
}

// finishUnknown drops the known names address noted to spot duplicates, and
// sorts the unknown ones.
func (a *wireAddress) finishUnknown(target bool) {
	if target {
		a.unknown = slices.DeleteFunc(a.unknown, func(n string) bool { return n == "all" || n == "except" })
	}
	if len(a.unknown) == 0 {
		a.unknown = nil
	}
	slices.Sort(a.unknown)
}

// list fills l from the value at the scanner.
func (s *scanner) list(l *wireList) bool {
	s.Space()
	if !s.Consume('[') {
		t, _, ok := s.Value()
		*l = wireList{typ: t}
		return ok
	}
	*l = wireList{typ: jsonArray, items: []string{}}
	var types []jsonType
	s.Space()
	if s.Consume(']') {
		return true
	}
	for {
		t, text, ok := s.StringOrValue()
		if !ok {
			return false
		}
		if t != jsonString && types == nil {
			types = make([]jsonType, len(l.items), len(l.items)+1)
			for i := range types {
				types[i] = jsonString
			}
		}
		l.items = append(l.items, text)
		if types != nil {
			types = append(types, t)
		}
		s.Space()
		switch {
		case s.Consume(','):
		case s.Consume(']'):
			l.itemTypes = types
			return true
		default:
			return false
		}
	}
}

// scanner walks a payload; the strings it returns share one copy of it.
type scanner struct{ jsonscan.Scanner }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
