package schemas

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// scanCases are payloads for the scanner beyond the validation suites':
// shapes it must scan, and shapes it must leave to encoding/json.
func scanCases() []string {
	const ts = `"ts":"2026-11-27T10:00:00Z"`
	return []string{
		`{"v":1,"id":"bus-1","kind":"deliver","to":{"users":["absent-1"]},"event":"bench","data":{"t":1,"seq":1},` + ts + `}`,
		` {"v" : 1 , "id":"x", "kind":"deliver", "to" : { "users" : [ "a" , "b" ] , "rooms":[], "sockets":null, "all":false }, "event":"e", "data" : [1,{"a":"\"}"}], ` + ts + ` } `,
		`{"v":1,"id":"x","kind":"deliver","to":{"users":["a",1,null,["x"],{"a":1},true]},"event":"e",` + ts + `}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true,"except":{"users":["u"],"all":true,"except":{},"x":1}},"event":"e",` + ts + `}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"zeta":1,"alpha":2,"users":["u"]},"event":"e",` + ts + `}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":"yes","except":null},"event":"e",` + ts + `}`,
		`{"v":"1","id":2,"kind":null,"to":[],"event":{},"data":null,"userId":true,"ts":5}`,
		`{"v":1e0,"id":"ü😀","kind":"deliver","to":{"all":true},"event":"é","extra":{"deep":[[[[]]]]},` + ts + `}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","ts":"2026-11-27T10:00:00"}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","ts":"2026-13-27T10:00:00Z"}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","ts":"2026-11-27T23:59:60Z"}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","ts":"\u0032026-11-27T10:00:00Z"}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"users":["a"],"users":["b"]},"event":"e",` + ts + `}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true,"all":false},"event":"e",` + ts + `}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"x":1,"x":2,"all":true},"event":"e",` + ts + `}`,
		`{"v":1,"ID":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `,"ſocketId":"s"}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `,"naïve":"s"}`,
		"{\"v\":1,\"id\":\"x\",\"kind\":\"deliver\",\"to\":{\"all\":true},\"event\":\"e\",\"data\":\"\xff\"," + ts + "}",
		"{\"v\":1,\"id\":\"x\",\"kind\":\"deliver\",\"to\":{\"users\":[\"\xc3\"]},\"event\":\"e\"," + ts + "}",
		"{\"v\":1,\"id\":\"x\",\"kind\":\"deliver\",\"to\":{\"all\":true},\"event\":\"a\tb\"," + ts + "}",
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `,}`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `}x`,
		`{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `}{}`,
		`{"v":01,"id":"x"}`, `{"v":1.,"id":"x"}`, `{"v":-,"id":"x"}`, `{"v":1e,"id":"x"}`, `{"v":+1}`,
		`{"v":nul}`, `{"v":nullx}`, `{"v":tru}`, `{"data":{"a":[1}]}`, `{"data":{"a":"\x"}}`, `{"data":[1,]}`,
		`{"data":"\ud800"}`, `{"data":"unterminated}`, `{"to":{"users":["a"]`, `{"to":{"users":["a"],}}`,
		`{"v":1 "id":"x"}`, `{"v" 1}`, `{"v":1,,"id":"x"}`, `{`, `}`, ``, ` `, `[]`, `null`, `"x"`, `{}`, ` {} `,
	}
}

// TestScanAgreesWithEncodingJSON checks that wherever scan decodes a
// payload, encoding/json decodes it, into the same wireEnvelope.
func TestScanAgreesWithEncodingJSON(t *testing.T) {
	var payloads [][]byte
	for _, tc := range slices.Concat(validEnvelopeCases(), invalidEnvelopeCases()) {
		payloads = append(payloads, envelopeJSON(t, tc.kind, tc.set))
	}
	for _, tc := range rawCases() {
		payloads = append(payloads, []byte(tc.payload))
	}
	for _, p := range scanCases() {
		payloads = append(payloads, []byte(p))
	}
	for _, p := range payloads {
		assertScanAgrees(t, p)
	}
}

// TestScanTakesOrdinaryEnvelopes checks that the envelopes producers write,
// Encode's and those of backends, do not fall back to encoding/json.
func TestScanTakesOrdinaryEnvelopes(t *testing.T) {
	var payloads [][]byte
	for _, tc := range validEnvelopeCases() {
		payloads = append(payloads, envelopeJSON(t, tc.kind, tc.set))
	}
	for _, e := range constructedEnvelopes() {
		p, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	payloads = append(payloads, []byte(scanCases()[0]), []byte(scanCases()[1]))
	for _, p := range payloads {
		var w wireEnvelope
		if !w.scan(p) {
			t.Errorf("scan refused %s", p)
		}
	}
}

func assertScanAgrees(t *testing.T, payload []byte) {
	t.Helper()
	var fast, slow wireEnvelope
	scanned := fast.scan(payload)
	err := slow.decodeWire(payload)
	if !scanned {
		return
	}
	if err != nil {
		t.Fatalf("scan decodes %q, encoding/json refuses it: %v", payload, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("payload %q:\n scan %+v\n json %+v", payload, fast, slow)
	}
}

// FuzzScanAgreesWithEncodingJSON looks for payloads scan decodes otherwise
// than encoding/json: "go test -fuzz FuzzScanAgreesWithEncodingJSON ./schemas/".
func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	for _, tc := range slices.Concat(validEnvelopeCases(), invalidEnvelopeCases()) {
		f.Add(envelopeJSON(f, tc.kind, tc.set))
	}
	for _, tc := range rawCases() {
		f.Add([]byte(tc.payload))
	}
	for _, p := range scanCases() {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		assertScanAgrees(t, payload)
		var w wireEnvelope
		if w.scan(payload) && !json.Valid(payload) {
			t.Fatalf("scan decodes %q, which is not JSON", payload)
		}
	})
}

// TestIsDateAgreesWithTimeParse checks isDate against time.Parse on every
// February of years 0000 to 9999 (leap years), and on every month of some
// years, with days and months just out of range.
func TestIsDateAgreesWithTimeParse(t *testing.T) {
	check := func(year, month int) {
		for day := range 33 {
			s := fmt.Sprintf("%04d-%02d-%02d", year, month, day)
			_, err := time.Parse(time.DateOnly, s)
			if got := isDate(s); got != (err == nil) {
				t.Fatalf("isDate(%q) = %v, time.Parse says %v", s, got, err)
			}
		}
	}
	for year := range 10000 {
		check(year, 2)
	}
	for _, year := range []int{0, 1, 1900, 2000, 2023, 2024, 2026, 9999} {
		for month := range 14 {
			check(year, month)
		}
	}
}

// FuzzIsDateAgreesWithTimeParse looks for other strings on which they differ.
func FuzzIsDateAgreesWithTimeParse(f *testing.F) {
	for _, s := range []string{"2026-11-27", "2024-02-29", "2023-02-29", "+026-11-27", "2026-1-27", "2026/11/27", "", "2026-11-270"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := time.Parse(time.DateOnly, s)
		if got := isDate(s); got != (err == nil) {
			t.Fatalf("isDate(%q) = %v, time.Parse says %v", s, got, err)
		}
	})
}
