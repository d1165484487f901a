package schemas

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
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
	s := scanner{buf: payload}
	*w = wireEnvelope{}
	s.space()
	if !s.consume('{') {
		return false
	}
	var seen uint16
	for i := 0; ; i++ {
		name, more, ok := s.nextName(i)
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
	s.space()
	return s.pos == len(s.buf)
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
		_, _, ok := s.value()
		return ok
	}
	if *seen&bit != 0 {
		return false // duplicates: left to encoding/json, where the last wins
	}
	*seen |= bit
	switch name {
	case "v":
		s.space()
		start := s.pos
		t, _, ok := s.value()
		w.V = wireNumber{typ: t}
		if t == jsonNumber {
			w.V.text = s.substr(start, s.pos)
		}
		return ok
	case "to":
		return s.address(&w.To, true)
	case "data":
		_, raw, ok := s.value()
		w.Data = append(json.RawMessage(nil), raw...)
		return ok
	case "ts":
		t, text, ok := s.stringOrValue()
		w.TS = wireTime{typ: t}
		if ok && t == jsonString {
			w.TS.set(text)
		}
		return ok
	}
	f := w.stringField(name)
	t, text, ok := s.stringOrValue()
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
	s.space()
	if !s.consume('{') {
		t, _, ok := s.value()
		*a = wireAddress{typ: t}
		return ok
	}
	*a = wireAddress{typ: jsonObject}
	for i := 0; ; i++ {
		name, more, ok := s.nextName(i)
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
		t, raw, ok := s.value()
		a.all = wireBool{typ: t, v: ok && t == jsonBoolean && raw[0] == 't'}
		a.unknown = append(a.unknown, name) // marks it seen; removed by finishUnknown
		return ok
	case target && name == "except":
		a.except = new(wireAddress)
		a.unknown = append(a.unknown, name)
		return s.address(a.except, false)
	default:
		_, _, ok := s.value()
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
	s.space()
	if !s.consume('[') {
		t, _, ok := s.value()
		*l = wireList{typ: t}
		return ok
	}
	*l = wireList{typ: jsonArray, items: []string{}}
	var types []jsonType
	s.space()
	if s.consume(']') {
		return true
	}
	for {
		t, text, ok := s.stringOrValue()
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
		s.space()
		switch {
		case s.consume(','):
		case s.consume(']'):
			l.itemTypes = types
			return true
		default:
			return false
		}
	}
}

// scanner walks a payload. Values it returns as strings are substrings of
// one copy of the payload, made on first use.
type scanner struct {
	buf  []byte
	pos  int
	text string
}

// substr returns s.buf[start:end] as a string.
func (s *scanner) substr(start, end int) string {
	if s.text == "" {
		s.text = string(s.buf)
	}
	return s.text[start:end]
}

func (s *scanner) space() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// consume skips c if it is next.
func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.buf) && s.buf[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// nextName moves to the i-th property of the object whose '{' was consumed
// and returns its name; more is false at the end of the object.
func (s *scanner) nextName(i int) (name string, more, ok bool) {
	s.space()
	switch {
	case s.consume('}'):
		return "", false, true
	case i > 0 && !s.consume(','):
		return "", false, false
	}
	s.space()
	if name, ok = s.plainString(); !ok {
		return "", false, false
	}
	s.space()
	return name, true, s.consume(':')
}

// plainString returns the string at the scanner when it is valid UTF-8 with
// no escapes (and not otherwise).
func (s *scanner) plainString() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.pos
	ascii := true
	for ; s.pos < len(s.buf); s.pos++ {
		switch c := s.buf[s.pos]; {
		case c == '"':
			end := s.pos
			s.pos++
			if !ascii && !utf8.Valid(s.buf[start:end]) {
				return "", false
			}
			return s.substr(start, end), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// stringOrValue scans a value meant to be a string: its text when it is a
// plain string, its type otherwise.
func (s *scanner) stringOrValue() (jsonType, string, bool) {
	s.space()
	if s.pos < len(s.buf) && s.buf[s.pos] == '"' {
		text, ok := s.plainString()
		return jsonString, text, ok
	}
	t, _, ok := s.value()
	return t, "", ok
}

// value skips the JSON value at the scanner and returns its type and bytes;
// it reports false unless the value is well-formed (json.Valid judges any
// that is not a plain string or a literal).
func (s *scanner) value() (jsonType, []byte, bool) {
	s.space()
	if s.pos >= len(s.buf) {
		return absent, nil, false
	}
	start := s.pos
	var t jsonType
	switch c := s.buf[s.pos]; {
	case c == 'n':
		ok := s.literal("null")
		return jsonNull, s.buf[start:s.pos], ok
	case c == 't':
		ok := s.literal("true")
		return jsonBoolean, s.buf[start:s.pos], ok
	case c == 'f':
		ok := s.literal("false")
		return jsonBoolean, s.buf[start:s.pos], ok
	case c == '"':
		if _, ok := s.plainString(); ok {
			return jsonString, s.buf[start:s.pos], true
		}
		s.pos = start
		t = jsonString
		s.skipString()
	case c == '{' || c == '[':
		t = jsonObject
		if c == '[' {
			t = jsonArray
		}
		s.skipContainer()
	case c == '-' || ('0' <= c && c <= '9'):
		t = jsonNumber
		for s.pos < len(s.buf) && strings.IndexByte("0123456789+-.eE", s.buf[s.pos]) >= 0 {
			s.pos++
		}
	default:
		return absent, nil, false
	}
	raw := s.buf[start:s.pos]
	return t, raw, json.Valid(raw)
}

// literal skips lit and reports whether it was next.
func (s *scanner) literal(lit string) bool {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// skipString moves past the string at the scanner, escapes included (its
// validity is json.Valid's to judge).
func (s *scanner) skipString() {
	for s.pos++; s.pos < len(s.buf); s.pos++ {
		switch s.buf[s.pos] {
		case '\\':
			s.pos++
		case '"':
			s.pos++
			return
		}
	}
}

// skipContainer moves past the object or array at the scanner, by counting
// brackets outside strings (whether they match is json.Valid's to judge).
func (s *scanner) skipContainer() {
	depth := 0
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case '"':
			s.skipString()
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.pos++
				return
			}
		}
		s.pos++
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
