package handlers

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// scan fills o from body, a whole request body, when the body is a message
// as callers write them: one JSON object whose property names are those of
// outgoing, spelt exactly and each given once, whose userId, room and event
// are strings without escapes (or a null userId or room), and whose data is
// any value. It reports false for anything else, and decode then leaves the
// body to encoding/json, which decides what it means or which error it is.
// Where scan reports true, o is what encoding/json makes of the body:
// api_scan_test.go and FuzzScanAgreesWithDecoder hold it to that.
//
// encoding/json judges the syntax (json.Valid); scan only finds the
// properties. Decoding each message with a json.Decoder was the largest
// cost of the REST path: two passes of its scanner over the body, reflection,
// and a buffer of its own.
func (o *outgoing) scan(body []byte) bool {
	if !json.Valid(body) {
		return false
	}
	*o = outgoing{}
	s := jsonScanner{buf: body}
	s.space()
	if !s.consume('{') {
		return false
	}
	var seen uint8
	for i := 0; ; i++ {
		s.space()
		if s.consume('}') {
			return true
		}
		if i > 0 {
			s.consume(',')
			s.space()
		}
		name, ok := s.plain()
		if !ok {
			return false
		}
		s.space()
		s.consume(':')
		s.space()
		var bit uint8
		switch string(name) { // compared, not copied
		case "userId":
			bit, ok = 1, s.optionalString(&o.UserID)
		case "room":
			bit, ok = 2, s.optionalString(&o.Room)
		case "event":
			bit = 4
			o.Event, ok = s.plainString()
		case "data":
			bit, ok = 8, true
			o.Data = bytes.Clone(s.value())
		}
		if bit == 0 || !ok || seen&bit != 0 {
			// An unknown name (or one in another case), a duplicate (the
			// last wins), a wrong type or an escape: encoding/json says.
			return false
		}
		seen |= bit
	}
}

// jsonScanner walks a document json.Valid has accepted.
type jsonScanner struct {
	buf []byte
	pos int
}

// space skips white space.
func (s *jsonScanner) space() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonScanner) consume(c byte) bool {
	if s.pos < len(s.buf) && s.buf[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// plain reads a string that has no escapes and is valid UTF-8, which
// encoding/json takes byte for byte; it reports false for any other value.
func (s *jsonScanner) plain() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	n := bytes.IndexByte(s.buf[s.pos:], '"')
	text := s.buf[s.pos : s.pos+n]
	if bytes.IndexByte(text, '\\') >= 0 || !utf8.Valid(text) {
		return nil, false
	}
	s.pos += n + 1
	return text, true
}

// plainString is plain, copied into a string.
func (s *jsonScanner) plainString() (string, bool) {
	text, ok := s.plain()
	return string(text), ok
}

// optionalString reads a plain string into *p, or leaves *p nil for null
// (the document is valid: a value that starts with n is null).
func (s *jsonScanner) optionalString(p **string) bool {
	if s.buf[s.pos] == 'n' {
		s.pos += len("null")
		return true
	}
	text, ok := s.plainString()
	*p = &text
	return ok
}

// value returns the value at the scanner as it is written.
func (s *jsonScanner) value() []byte {
	start := s.pos
	switch s.buf[s.pos] {
	case '"':
		s.skipString()
	case '{', '[':
		for depth := 0; ; {
			switch s.buf[s.pos] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				break
			}
		}
	default: // a number, true, false or null
		for s.pos < len(s.buf) {
			switch s.buf[s.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.buf[start:s.pos]
			}
			s.pos++
		}
	}
	return s.buf[start:s.pos]
}

// skipString moves past the string at the scanner, escapes included.
func (s *jsonScanner) skipString() {
	for s.pos++; s.buf[s.pos] != '"'; s.pos++ {
		if s.buf[s.pos] == '\\' {
			s.pos++
		}
	}
	s.pos++
}
