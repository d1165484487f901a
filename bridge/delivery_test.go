package bridge

import (
	"encoding/json"
	"testing"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"

	"github.com/web3-socket/web3-socket/schemas"
)

// The hand-written packet must be what the library's encoder writes.
func TestEncodeMatchesTheSocketIOEncoder(t *testing.T) {
	for _, tt := range []struct {
		event string
		data  string
	}{
		{"notification", `{"message":"Hello"}`},
		{"no-data", ``},
		{"quote\"and\\back", `[1,2,3]`},
		{"<tag>&", `"text with \u2028 and \n"`},
		{"日本", `null`},
		{"n", `12.5`},
	} {
		env := schemas.NewDeliver(schemas.Target{All: true}, tt.event, json.RawMessage(tt.data))
		// Without recovery the offset is left out; with it, it is the last
		// argument.
		for _, b := range []*Bridge{{}, {sessions: &sessions{}}} {
			got, err := b.encode("/", env, "1700000000000-7")
			if err != nil {
				t.Fatal(err)
			}
			args := []any{tt.event}
			if tt.data != "" {
				args = append(args, json.RawMessage(tt.data))
			}
			if b.sessions != nil {
				args = append(args, "1700000000000-7")
			}
			want := parser.NewEncoder().Encode(&parser.Packet{Type: parser.EVENT, Nsp: "/", Data: args})
			if len(want) != 1 || string(got.packet) != want[0].String() {
				t.Errorf("encode(%q, %s) = %s, want %s", tt.event, tt.data, got.packet, want[0])
			}
			if string(got.frame[len(got.frame)-len(got.packet)-1:]) != "4"+string(got.packet) {
				t.Errorf("frame %q does not end with the engine message packet", got.frame)
			}
		}
	}
}

func TestFrameHeaderLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := newFrame(1, make([]byte, n))
		hdr := len(f) - n
		var want int
		switch {
		case n < 126:
			want = 2
		case n <= 0xFFFF:
			want = 4
		default:
			want = 10
		}
		if hdr != want || f[0] != 0x81 {
			t.Errorf("frame of %d bytes: header %d bytes, first byte %#x; want %d and 0x81", n, hdr, f[0], want)
		}
	}
}
