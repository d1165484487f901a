package handlers

import (
	"bytes"
	"encoding/json"

	"github.com/web3-socket/web3-socket/internal/jsonscan"
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
// Decoding each message with a json.Decoder was the largest cost of the REST
// path: two passes of its scanner over the body, reflection, and a buffer of
// its own. The scanner is the one the envelope decoder uses (jsonscan).
func (o *outgoing) scan(body []byte) bool {
	if !json.Valid(body) {
		return false
	}
	*o = outgoing{}
	s := jsonscan.New(body)
	s.Space()
	if !s.Consume('{') {
		return false
	}
	var seen uint8
	for i := 0; ; i++ {
		name, more, ok := s.NextNameBytes(i)
		if !ok {
			return false
		}
		if !more {
			return s.AtEnd()
		}
		var bit uint8
		switch string(name) { // compared, not copied
		case "userId":
			bit, ok = 1, optionalString(&s, &o.UserID)
		case "room":
			bit, ok = 2, optionalString(&s, &o.Room)
		case "event":
			bit = 4
			s.Space()
			o.Event, ok = s.PlainString()
		case "data":
			var raw []byte
			bit = 8
			_, raw, ok = s.Value()
			o.Data = bytes.Clone(raw)
		}
		if bit == 0 || !ok || seen&bit != 0 {
			// An unknown name (or one in another case), a duplicate (the
			// last wins), a wrong type or an escape: encoding/json says.
			return false
		}
		seen |= bit
	}
}

// optionalString reads a plain string into *p, or leaves *p nil for null.
func optionalString(s *jsonscan.Scanner, p **string) bool {
	s.Space()
	if s.Literal("null") {
		return true
	}
	text, ok := s.PlainString()
	*p = &text
	return ok
}
