package main

import (
	"testing"
	"time"
)

func TestParseFrameRecognisesEnginePacketsAndSocketIOPackets(t *testing.T) {
	tests := []struct {
		in      string
		kind    frameKind
		payload string
	}{
		{`0{"sid":"abc","pingInterval":25000}`, frameOpen, `{"sid":"abc","pingInterval":25000}`},
		{`1`, frameClose, ``},
		{`2`, framePing, ``},
		{`2probe`, framePing, `probe`},
		{`6`, frameNoop, ``},
		{`40{"sid":"xyz"}`, frameConnect, `{"sid":"xyz"}`},
		{`40/admin,{"sid":"xyz"}`, frameConnect, `{"sid":"xyz"}`},
		{`41`, frameDisconnect, ``},
		{`41/admin,`, frameDisconnect, ``},
		{`42["bench",{"t":1,"seq":2}]`, frameEvent, `["bench",{"t":1,"seq":2}]`},
		{`4217["bench",1]`, frameEvent, `["bench",1]`},
		{`42/chat,5["bench",1]`, frameEvent, `["bench",1]`},
		{`43[{"ok":true}]`, frameAck, `[{"ok":true}]`},
		{`44{"message":"unauthorized: invalid token"}`, frameConnectError, `{"message":"unauthorized: invalid token"}`},
		{`451-["bench",{"_placeholder":true,"num":0}]`, frameBinary, ``},
		{``, frameUnknown, ``},
		{`4`, frameUnknown, ``},
		{`49`, frameUnknown, ``},
		{`x`, frameUnknown, ``},
	}
	for _, tt := range tests {
		got := parseFrame([]byte(tt.in))
		if got.kind != tt.kind || string(got.payload) != tt.payload {
			t.Errorf("parseFrame(%q) = kind %d payload %q, want kind %d payload %q", tt.in, got.kind, got.payload, tt.kind, tt.payload)
		}
	}
}

func TestParseEventSplitsNameAndFirstArgument(t *testing.T) {
	tests := []struct {
		in, name, data string
		ok             bool
	}{
		{`["bench",{"t":1,"seq":2}]`, "bench", `{"t":1,"seq":2}`, true},
		// web3-socket with connection state recovery appends the offset.
		{`["bench",{"t":1,"seq":2},"1764255600000-0"]`, "bench", `{"t":1,"seq":2}`, true},
		{`["bench","x","1-0"]`, "bench", `"x"`, true},
		{`["bench","a,b"]`, "bench", `"a,b"`, true},
		{`["bench","a,"]`, "bench", `"a,"`, true},
		{`["bench",42]`, "bench", `42`, true},
		{`[ "bench" , {"t":1} ]`, "bench", `{"t":1}`, true},
		{`["be\"nch",1]`, `be"nch`, `1`, true},
		{`["bench"]`, "bench", ``, true},
		{`["bench",`, "", "", false},
		{`{"bench":1}`, "", "", false},
		{`[]`, "", "", false},
	}
	for _, tt := range tests {
		name, data, ok := parseEvent([]byte(tt.in))
		if ok != tt.ok || name != tt.name || string(data) != tt.data {
			t.Errorf("parseEvent(%q) = %q, %q, %v; want %q, %q, %v", tt.in, name, data, ok, tt.name, tt.data, tt.ok)
		}
	}
}

func TestParseStampReadsSendTimeAndSeqInAnyOrder(t *testing.T) {
	tests := []struct {
		in   string
		want stamp
		ok   bool
	}{
		{`{"t":1700000000123456789,"seq":42}`, stamp{1700000000123456789, 42}, true},
		{`{"seq":42,"t":7}`, stamp{7, 42}, true},
		{`{ "t" : 7 , "seq" : 0 }`, stamp{7, 0}, true},
		{`{"t":7,"seq":3,"extra":9}`, stamp{7, 3}, true},
		{`{"t":7,"note":"x","seq":3}`, stamp{7, 3}, true}, // encoding/json path
		{`{"t":7.5,"seq":3}`, stamp{}, false},
		{`{"t":7}`, stamp{}, false},
		{`{"t":7,"seq":3}x`, stamp{}, false},
		{`{"t":99999999999999999999,"seq":3}`, stamp{}, false},
		{`[1,2]`, stamp{}, false},
		{``, stamp{}, false},
	}
	for _, tt := range tests {
		got, ok := parseStamp([]byte(tt.in))
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseStamp(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMessageBodiesRoundTripThroughTheParser(t *testing.T) {
	body := broadcastItem(nil, 17, 123456789)
	if string(body) != `{"event":"bench","data":{"t":123456789,"seq":17}}` {
		t.Fatalf("broadcastItem = %s", body)
	}
	if got := string(userItem(2000)(nil, 2017, 5)); got != `{"userId":"u17","event":"bench","data":{"t":5,"seq":2017}}` {
		t.Fatalf("userItem = %s", got)
	}
	f := parseFrame([]byte(`42["bench",{"t":123456789,"seq":17}]`))
	name, data, ok := parseEvent(f.payload)
	s, ok2 := parseStamp(data)
	if !ok || !ok2 || name != benchEvent || s != (stamp{T: 123456789, Seq: 17}) {
		t.Fatalf("parsed %q %+v (%v %v)", name, s, ok, ok2)
	}
}

func TestTallySlotMapsSeqToItsRecipients(t *testing.T) {
	broadcast := &tally{slots: 500}
	perUser := &tally{slots: 10, stride: 2000}
	tests := []struct {
		t    *tally
		idx  int
		seq  int64
		want int
	}{
		{broadcast, 0, 0, 0},
		{broadcast, 1999, 499, 499},
		{broadcast, 3, 500, -1},
		{broadcast, 3, -1, -1},
		{perUser, 17, 17, 0},
		{perUser, 17, 2017, 1},
		{perUser, 17, 18, -1},
		{perUser, 17, 20017, -1}, // beyond the messages sent
	}
	for _, tt := range tests {
		if got := tt.t.slot(tt.idx, tt.seq); got != tt.want {
			t.Errorf("slot(%d, %d) with stride %d = %d, want %d", tt.idx, tt.seq, tt.t.stride, got, tt.want)
		}
	}
}

func TestHistogramQuantilesAreWithinBucketPrecision(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, q := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(q.q)
		if diff := got - q.want; diff < -q.want/50 || diff > q.want/50 {
			t.Errorf("quantile(%v) = %v, want %v ± 2%%", q.q, got, q.want)
		}
	}
	for us := uint64(0); us < 1<<20; us += 997 {
		i := histIndex(us)
		if lo, hi := histLower(i), histLower(i+1); us < lo || us >= hi {
			t.Fatalf("histIndex(%d) = %d, bucket [%d, %d)", us, i, lo, hi)
		}
	}
}
