package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// decodeStrictly decodes body as decode does when scan declines it.
func decodeStrictly(body []byte) (outgoing, error) {
	var o outgoing
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return o, errors.New("more than one value")
	}
	return o, nil
}

// sameOutgoing reports whether a and b are equal, nil pointers and slices
// told from empty ones.
func sameOutgoing(a, b outgoing) bool {
	sameString := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return sameString(a.UserID, b.UserID) && sameString(a.Room, b.Room) && a.Event == b.Event &&
		(a.Data == nil) == (b.Data == nil) && bytes.Equal(a.Data, b.Data)
}

// checkScan fails t unless scan, where it accepts body, decodes what
// encoding/json decodes; it returns whether scan accepted it.
func checkScan(t *testing.T, body []byte) bool {
	t.Helper()
	var scanned outgoing
	if !scanned.scan(body) {
		return false
	}
	decoded, err := decodeStrictly(body)
	if err != nil {
		t.Fatalf("scan accepted %q, encoding/json refuses it: %v", body, err)
	}
	if !sameOutgoing(scanned, decoded) {
		t.Fatalf("%q: scan made %+v, encoding/json %+v", body, scanned, decoded)
	}
	return true
}

// scanned are bodies scan decodes itself; declined are bodies it leaves to
// encoding/json (the unusual, the wrong and the malformed).
var (
	scanned = []string{
		okMessage,
		`{"userId":"u1","event":"e"}`,
		` { "userId" : "u1" , "event" : "e" , "data" : [ 1 , {"a":"\"}]"} ] } ` + "\n",
		`{"event":"e","data":null}`,
		`{"userId":null,"room":null,"event":"e"}`,
		`{"room":"lobby","event":"e","data":"text \u00e9 \"quoted\""}`,
		`{"userId":"ü😀","event":"é","data":-1.5e3}`,
		`{"data":true,"event":"e"}`,
		`{"data":{}}`,
		`{}`,
		"{\"userId\":\"u1\",\t\"event\":\"e\",\r\n\"data\":{\"n\":1}}",
		`{"event":"","data":""}`,
		"{\"event\":\"e\",\"data\":\"\xff\"}", // data is kept as it is written
	}
	declined = []string{
		`{"userId":"u1","event":"e","extra":true}`,
		`{"user_id":"u1","event":"e"}`,
		`{"UserId":"u1","event":"e"}`,
		`{"userid":"u1","EVENT":"e"}`,
		`{"userId":"u1","userId":"u2","event":"e"}`,
		`{"event":"a","event":"b"}`,
		`{"data":1,"data":2}`,
		`{"userId":"u\"1","event":"e"}`,
		`{"userId":"u\u0031","event":"e"}`,
		`{"user\u0049d":"u1","event":"e"}`,
		`{"userId":7,"event":"e"}`,
		`{"userId":"u1","event":null}`,
		`{"userId":"u1","event":1}`,
		`{"room":["r"],"event":"e"}`,
		"{\"userId\":\"\xff\",\"event\":\"e\"}",
		`{"userId":"u1","event":`,
		`{"userId":"u1","event":"e"}{}`,
		`{"userId":"u1","event":"e"} x`,
		`{"userId":"u1","event":"e"}}`,
		`{"userId":"u1","event":"e",}`,
		`{"data":[1,]}`,
		`["u1","e"]`,
		`null`,
		`"x"`,
		``,
		` `,
	}
)

func TestScanAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range scanned {
		if !checkScan(t, []byte(body)) {
			t.Errorf("scan declined %q, an ordinary message", body)
		}
	}
	for _, body := range declined {
		if checkScan(t, []byte(body)) {
			t.Errorf("scan accepted %q, which it must leave to encoding/json", body)
		}
	}
}

// FuzzScanAgreesWithEncodingJSON checks that wherever scan decodes a body,
// encoding/json decodes the same message (go test -fuzz ScanAgrees ./handlers).
func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	for _, body := range append(append([]string{}, scanned...), declined...) {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkScan(t, body) })
}
