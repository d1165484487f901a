package schemas

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendEnvelope appends the JSON encoding of e, field for field what
// json.Marshal writes (the same names, order and omitempty rules, RFC 3339
// times with nanoseconds), without reflection: it runs once per published
// message. e.Data must be valid JSON (Validate checks it).
func appendEnvelope(b []byte, e *Envelope) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = appendField(b, "id", e.ID, false)
	b = appendField(b, "kind", string(e.Kind), false)
	if e.To != nil {
		b = append(b, `,"to":{`...)
		n := len(b)
		b = appendList(b, "users", e.To.Users)
		b = appendList(b, "rooms", e.To.Rooms)
		b = appendList(b, "sockets", e.To.Sockets)
		if e.To.All {
			b = append(b, `,"all":true`...)
		}
		if x := e.To.Except; x != nil {
			b = append(b, `,"except":{`...)
			m := len(b)
			b = appendList(b, "users", x.Users)
			b = appendList(b, "rooms", x.Rooms)
			b = appendList(b, "sockets", x.Sockets)
			b = dropLeadingComma(b, m)
			b = append(b, '}')
		}
		b = dropLeadingComma(b, n)
		b = append(b, '}')
	}
	b = appendField(b, "event", e.Event, true)
	if len(e.Data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, e.Data...)
	}
	b = appendField(b, "userId", e.UserID, true)
	b = appendField(b, "socketId", e.SocketID, true)
	b = appendField(b, "instance", e.Instance, true)
	b = appendField(b, "action", e.Action, true)
	b = appendField(b, "room", e.Room, true)
	b = append(b, `,"ts":"`...)
	b = e.TS.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

func appendField(b []byte, name, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

func appendList(b []byte, name string, items []string) []byte {
	if len(items) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":[`...)
	for i, s := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// dropLeadingComma removes the comma the first member of an object written
// from index n starts with.
func dropLeadingComma(b []byte, n int) []byte {
	if len(b) > n && b[n] == ',' {
		return append(b[:n], b[n+1:]...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// appendString appends s as a JSON string the way encoding/json does: control
// characters, quotes, backslashes, <, >, & and U+2028/U+2029 escaped, invalid
// UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
