package main

import (
	"bytes"
	"encoding/json"
	"math"
)

// frameKind is what one WebSocket message of Engine.IO v4 carries, together
// with the Socket.IO v5 packet type inside an Engine.IO message packet.
type frameKind int

const (
	frameUnknown      frameKind = iota
	frameOpen                   // 0{"sid":…,"pingInterval":…}
	frameClose                  // 1
	framePing                   // 2
	frameNoop                   // 6 and other Engine.IO types a client ignores
	frameConnect                // 40{"sid":…}
	frameDisconnect             // 41
	frameEvent                  // 42["event",data]
	frameAck                    // 43
	frameConnectError           // 44{"message":…}
	frameBinary                 // 45/46: binary attachments, which the benchmark never sends
)

// frame is one parsed WebSocket text message. Payload aliases the message:
// the JSON after the packet type, namespace and ack id.
type frame struct {
	kind    frameKind
	payload []byte
}

// parseFrame parses one Engine.IO v4 text message. Only the main namespace
// matters here; a namespace prefix ("/nsp,") and an ack id are skipped.
func parseFrame(b []byte) frame {
	if len(b) == 0 {
		return frame{kind: frameUnknown}
	}
	switch b[0] {
	case '0':
		return frame{kind: frameOpen, payload: b[1:]}
	case '1':
		return frame{kind: frameClose}
	case '2':
		return frame{kind: framePing, payload: b[1:]}
	case '3', '5', '6':
		return frame{kind: frameNoop}
	case '4':
	default:
		return frame{kind: frameUnknown}
	}
	if len(b) < 2 {
		return frame{kind: frameUnknown}
	}
	var kind frameKind
	switch b[1] {
	case '0':
		kind = frameConnect
	case '1':
		kind = frameDisconnect
	case '2':
		kind = frameEvent
	case '3':
		kind = frameAck
	case '4':
		kind = frameConnectError
	case '5', '6':
		return frame{kind: frameBinary}
	default:
		return frame{kind: frameUnknown}
	}
	rest := b[2:]
	if len(rest) > 0 && rest[0] == '/' {
		i := bytes.IndexByte(rest, ',')
		if i < 0 {
			return frame{kind: kind} // "41/nsp": no payload
		}
		rest = rest[i+1:]
	}
	for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
		rest = rest[1:] // ack id
	}
	return frame{kind: kind, payload: rest}
}

// parseEvent splits the payload of an event packet, ["name",data], into the
// event name and the raw JSON of its first argument.
func parseEvent(p []byte) (name string, data []byte, ok bool) {
	// Fast path for what both servers write: ["name",data] with a plain name,
	// or ["name",data,"offset"] from a server with connection state recovery
	// (web3-socket with a bus log appends each packet's offset).
	if len(p) >= 5 && p[0] == '[' && p[1] == '"' && p[len(p)-1] == ']' {
		end := bytes.IndexByte(p[2:], '"')
		if end >= 0 && bytes.IndexByte(p[2:2+end], '\\') < 0 {
			rest := p[2+end+1 : len(p)-1]
			if len(rest) > 1 && rest[0] == ',' {
				data := rest[1:]
				// A string last argument is the data itself, or the
				// recovery offset after it.
				if i := bytes.LastIndex(rest, []byte(`,"`)); data[len(data)-1] == '"' && i > 0 &&
					i+2 <= len(rest)-1 && !bytes.ContainsAny(rest[i+2:len(rest)-1], "\"\\") {
					data = rest[1:i]
				}
				return string(p[2 : 2+end]), data, true
			}
		}
	}
	var args []json.RawMessage
	if err := json.Unmarshal(p, &args); err != nil || len(args) == 0 {
		return "", nil, false
	}
	if err := json.Unmarshal(args[0], &name); err != nil {
		return "", nil, false
	}
	if len(args) > 1 {
		data = args[1]
	}
	return name, data, true
}

// stamp is the data of every benchmark message: the send time in Unix
// nanoseconds and the sequence number of the message in its scenario.
type stamp struct {
	T   int64 `json:"t"`
	Seq int64 `json:"seq"`
}

// parseStamp reads {"t":…,"seq":…} with keys in any order. The fast path
// takes a flat object of integers, which is what both servers pass through;
// anything else goes through encoding/json.
func parseStamp(data []byte) (stamp, bool) {
	if s, ok := scanStamp(data); ok {
		return s, true
	}
	var s struct {
		T   *int64 `json:"t"`
		Seq *int64 `json:"seq"`
	}
	if err := json.Unmarshal(data, &s); err != nil || s.T == nil || s.Seq == nil {
		return stamp{}, false
	}
	return stamp{T: *s.T, Seq: *s.Seq}, true
}

// scanStamp is the allocation-free path of parseStamp.
func scanStamp(b []byte) (stamp, bool) {
	var s stamp
	var haveT, haveSeq bool
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return s, false
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return s, false
		}
		end := bytes.IndexByte(b[i+1:], '"')
		if end < 0 {
			return s, false
		}
		key := b[i+1 : i+1+end]
		i = skipSpace(b, i+1+end+1)
		if i >= len(b) || b[i] != ':' {
			return s, false
		}
		i = skipSpace(b, i+1)
		n, j, ok := scanInt(b, i)
		if !ok {
			return s, false
		}
		switch string(key) {
		case "t":
			s.T, haveT = n, true
		case "seq":
			s.Seq, haveSeq = n, true
		}
		i = skipSpace(b, j)
		if i >= len(b) {
			return s, false
		}
		if b[i] == '}' {
			return s, haveT && haveSeq && skipSpace(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return s, false
		}
		i++
	}
}

// scanInt reads a decimal int64 at b[i:], returning it and the index after it.
func scanInt(b []byte, i int) (n int64, next int, ok bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n > (math.MaxInt64-9)/10 {
			return 0, i, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	if i == start {
		return 0, i, false
	}
	if neg {
		n = -n
	}
	return n, i, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
