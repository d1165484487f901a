// Package jsonscan walks a JSON document byte by byte, without reflection,
// for the decoders that take the common shape of a message in one pass and
// leave anything unusual (escapes, odd types) to encoding/json: the envelope
// decoder of package schemas and the REST API's message decoder.
package jsonscan

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Kind is the JSON type of a value, or Absent when there is none.
type Kind uint8

const (
	Absent Kind = iota
	Null
	Boolean
	Number
	String
	Array
	Object
)

// String names the type as JSON Schema does ("got number, want string").
func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Boolean:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	case Array:
		return "array"
	case Object:
		return "object"
	}
	return "nothing"
}

// Scanner walks a document from its start.
type Scanner struct {
	buf []byte
	pos int
	// shared makes strings substrings of text, one copy of buf made on
	// first use, instead of a copy each.
	shared bool
	text   string
}

// New returns a Scanner of buf whose strings are copies of their own.
func New(buf []byte) Scanner { return Scanner{buf: buf} }

// NewShared returns a Scanner of buf whose strings share one copy of buf:
// fewer allocations when most of the document ends up in strings that live
// as long as each other.
func NewShared(buf []byte) Scanner { return Scanner{buf: buf, shared: true} }

func (s *Scanner) substr(start, end int) string {
	if !s.shared {
		return string(s.buf[start:end])
	}
	if s.text == "" {
		s.text = string(s.buf)
	}
	return s.text[start:end]
}

// Space skips white space.
func (s *Scanner) Space() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// Consume skips c if it is next.
func (s *Scanner) Consume(c byte) bool {
	if s.pos < len(s.buf) && s.buf[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// AtEnd skips white space and reports whether the document ends there.
func (s *Scanner) AtEnd() bool {
	s.Space()
	return s.pos == len(s.buf)
}

// NextNameBytes moves to the i-th property of the object whose '{' was
// consumed and returns its name, which must be a plain string (see
// PlainString); more is false at the end of the object. The name is part of
// the document: compare it, or copy it to keep it.
func (s *Scanner) NextNameBytes(i int) (name []byte, more, ok bool) {
	start, end, more, ok := s.nextName(i)
	return s.buf[start:end], more, ok
}

// NextName is NextNameBytes with the name as a string.
func (s *Scanner) NextName(i int) (name string, more, ok bool) {
	start, end, more, ok := s.nextName(i)
	if !more || !ok {
		return "", more, ok
	}
	return s.substr(start, end), true, true
}

func (s *Scanner) nextName(i int) (start, end int, more, ok bool) {
	s.Space()
	switch {
	case s.Consume('}'):
		return 0, 0, false, true
	case i > 0 && !s.Consume(','):
		return 0, 0, false, false
	}
	s.Space()
	if start, end, ok = s.plain(); !ok {
		return 0, 0, false, false
	}
	s.Space()
	return start, end, true, s.Consume(':')
}

// PlainString returns the string at the scanner when it is valid UTF-8 with
// no escapes (which encoding/json takes byte for byte), and reports false
// for anything else.
func (s *Scanner) PlainString() (string, bool) {
	start, end, ok := s.plain()
	if !ok {
		return "", false
	}
	return s.substr(start, end), true
}

// plain finds the plain string at the scanner and moves past it.
func (s *Scanner) plain() (start, end int, ok bool) {
	if !s.Consume('"') {
		return 0, 0, false
	}
	start = s.pos
	ascii := true
	for ; s.pos < len(s.buf); s.pos++ {
		switch c := s.buf[s.pos]; {
		case c == '"':
			end = s.pos
			s.pos++
			if !ascii && !utf8.Valid(s.buf[start:end]) {
				return 0, 0, false
			}
			return start, end, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, false
}

// StringOrValue scans a value meant to be a string: its text when it is a
// plain string, its kind otherwise.
func (s *Scanner) StringOrValue() (Kind, string, bool) {
	s.Space()
	if s.pos < len(s.buf) && s.buf[s.pos] == '"' {
		text, ok := s.PlainString()
		return String, text, ok
	}
	k, _, ok := s.Value()
	return k, "", ok
}

// Value skips the JSON value at the scanner and returns its kind and bytes;
// it reports false unless the value is well-formed (json.Valid judges any
// that is not a plain string or a literal).
func (s *Scanner) Value() (Kind, []byte, bool) {
	s.Space()
	if s.pos >= len(s.buf) {
		return Absent, nil, false
	}
	start := s.pos
	var k Kind
	switch c := s.buf[s.pos]; {
	case c == 'n':
		ok := s.Literal("null")
		return Null, s.buf[start:s.pos], ok
	case c == 't':
		ok := s.Literal("true")
		return Boolean, s.buf[start:s.pos], ok
	case c == 'f':
		ok := s.Literal("false")
		return Boolean, s.buf[start:s.pos], ok
	case c == '"':
		if _, _, ok := s.plain(); ok {
			return String, s.buf[start:s.pos], true
		}
		s.pos = start
		k = String
		s.skipString()
	case c == '{' || c == '[':
		k = Object
		if c == '[' {
			k = Array
		}
		s.skipContainer()
	case c == '-' || ('0' <= c && c <= '9'):
		k = Number
		for s.pos < len(s.buf) && strings.IndexByte("0123456789+-.eE", s.buf[s.pos]) >= 0 {
			s.pos++
		}
	default:
		return Absent, nil, false
	}
	raw := s.buf[start:s.pos]
	return k, raw, json.Valid(raw)
}

// Literal skips lit and reports whether it was next.
func (s *Scanner) Literal(lit string) bool {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// skipString moves past the string at the scanner, escapes included (its
// validity is json.Valid's to judge).
func (s *Scanner) skipString() {
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
func (s *Scanner) skipContainer() {
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
