package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// referenceSchema is EnvelopeSchema() compiled by a JSON Schema validator: the
// contract that check.go must implement.
type referenceSchema struct {
	schema *jsonschema.Schema
	// descriptions maps a location in the schema document to its
	// "description", the message of an anyOf or not failure.
	descriptions map[string]string
}

func compileReferenceSchema(t testing.TB) *referenceSchema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(EnvelopeSchema()))
	if err != nil {
		t.Fatalf("parse envelope schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(EnvelopeSchemaURL, doc); err != nil {
		t.Fatalf("add envelope schema: %v", err)
	}
	sch, err := c.Compile(EnvelopeSchemaURL)
	if err != nil {
		t.Fatalf("compile envelope schema: %v", err)
	}
	r := &referenceSchema{schema: sch, descriptions: map[string]string{}}
	collectDescriptions(doc, "", r.descriptions)
	return r
}

func collectDescriptions(v any, ptr string, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if d, ok := v["description"].(string); ok {
			out[ptr] = d
		}
		for k, child := range v {
			collectDescriptions(child, ptr+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k), out)
		}
	case []any:
		for i, child := range v {
			collectDescriptions(child, fmt.Sprintf("%s/%d", ptr, i), out)
		}
	}
}

// fields validates payload, which must be JSON, against the schema and
// returns one FieldError per failing field (nil if valid), worded as Decode
// worded them before check.go.
func (r *referenceSchema) fields(t testing.TB, payload []byte) []FieldError {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		t.Fatalf("reference cannot parse %s: %v", payload, err)
	}
	err = r.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("validate %s: %v", payload, err)
	}
	var out []FieldError
	r.flatten(verr, &out)
	if len(out) == 0 {
		t.Fatalf("validate %s: no field in %v", payload, err)
	}
	return out
}

var printer = message.NewPrinter(language.English)

// flatten turns the validator's error tree into one line per failing field.
func (r *referenceSchema) flatten(e *jsonschema.ValidationError, out *[]FieldError) {
	loc := "/" + strings.Join(e.InstanceLocation, "/")
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, FieldError{Field: strings.TrimSuffix(loc, "/") + "/" + m, Message: "is required"})
		}
		return
	case *kind.AdditionalProperties:
		slices.Sort(k.Properties) // the validator lists them in map order
	case *kind.AnyOf, *kind.Not:
		_, frag, _ := strings.Cut(e.SchemaURL, "#")
		if d, ok := r.descriptions[frag]; ok {
			*out = append(*out, FieldError{Field: loc, Message: d})
			return
		}
	}
	if len(e.Causes) == 0 {
		*out = append(*out, FieldError{Field: loc, Message: e.ErrorKind.LocalizedString(printer)})
		return
	}
	for _, c := range e.Causes {
		r.flatten(c, out)
	}
}

// divergence documents a case on which check.go and the schema disagree on
// purpose: goOnly lists the fields that only check.go refuses, schemaOnly
// those that only the schema refuses.
type divergence struct {
	goOnly, schemaOnly []string
}

// divergences, by case name. Two reasons only:
//
//   - check.go also refuses what the Envelope cannot hold ("v": 1.0, a ts that
//     time.Parse refuses, a property the kind leaves free but of the wrong
//     type) and a ts of the zero time. Decode has always refused these: they
//     passed the schema, then json.Unmarshal into Envelope or the zero-time
//     check failed (TestGoOnlyRefusalsWereRefusedBefore proves it).
//   - encoding/json matches top-level names without regard to case (and the
//     last duplicate wins), the schema matches them exactly. check.go judges
//     the values the Envelope receives, which is what the server acts on; the
//     schema judged "kind" while Decode returned the value of "Kind".
var divergences = map[string]divergence{
	"v 1.0 (not an integer Go can hold)":                                   {goOnly: []string{"/v"}},
	"v 1e0 (not an integer Go can hold)":                                   {goOnly: []string{"/v"}},
	"v 10e-1 (not an integer Go can hold)":                                 {goOnly: []string{"/v"}},
	"ts zero time":                                                         {goOnly: []string{"/ts"}},
	"zero ts":                                                              {goOnly: []string{"/ts"}},
	"ts of year 0 (zero time, other zone)":                                 {goOnly: []string{"/ts"}},
	"ts in lower case (RFC 3339, but not for time.Parse)":                  {goOnly: []string{"/ts"}},
	"ts on a leap second (RFC 3339, but not for time.Parse)":               {goOnly: []string{"/ts"}},
	"ts on a leap second with offset (RFC 3339, but not for time.Parse)":   {goOnly: []string{"/ts"}},
	"deliver userId number":                                                {goOnly: []string{"/userId"}},
	"deliver action object":                                                {goOnly: []string{"/action"}},
	"client_event to string":                                               {goOnly: []string{"/to"}},
	"client_event to users number":                                         {goOnly: []string{"/to/users/0"}},
	"client_event to all string":                                           {goOnly: []string{"/to/all"}},
	"client_event room array":                                              {goOnly: []string{"/room"}},
	"control event number":                                                 {goOnly: []string{"/event"}},
	"control socketId boolean":                                             {goOnly: []string{"/socketId"}},
	"unknown kind with event number":                                       {goOnly: []string{"/event"}},
	"raw: v 1.0 beside another error":                                      {goOnly: []string{"/v"}},
	"raw: zero ts beside another error":                                    {goOnly: []string{"/ts"}},
	"raw: ts with a sign in the hour (Atoi accepts it, RFC 3339 does not)": {goOnly: []string{"/ts"}},
	"raw: kind in other case only":                                         {schemaOnly: []string{"/kind"}},
	"raw: reserved event in other case":                                    {goOnly: []string{"/event"}},
}

// rawCases are payloads envelopeJSON cannot build.
func rawCases() []struct{ name, payload string } {
	const ts = `"ts":"2026-11-27T10:00:00Z"`
	return []struct{ name, payload string }{
		{"raw: every bad field", everyBadField},
		{"raw: indented", "{\n  \"v\": 1,\n  \"id\": \"x\",\n  \"kind\": \"deliver\",\n  \"to\": { \"all\" : true },\n  \"event\": \"e\",\n  " + ts + "\n}\n"},
		{"raw: escaped strings", `{"v":1,"id":"\u0078","kind":"deliv\u0065r","to":{"users":["\u00fc\ud83d\ude00"]},"event":"\/e",` + ts + `}`},
		{"raw: escaped reserved event", `{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"\u0063onnect",` + ts + `}`},
		{"raw: escaped property names", `{"v":1,"id":"x","kind":"deliver","to":{"\u0075sers":["u1"]},"\u0065vent":"e",` + ts + `}`},
		{"raw: escaped ts", `{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","ts":"2026-11-27T10:00:00\u005a"}`},
		{"raw: invalid UTF-8 in a string", "{\"v\":1,\"id\":\"\xff\",\"kind\":\"deliver\",\"to\":{\"all\":true},\"event\":\"e\"," + ts + "}"},
		{"raw: duplicate property, last wins", `{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"connect","event":"e",` + ts + `}`},
		{"raw: duplicate property, last loses", `{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","event":"connect",` + ts + `}`},
		{"raw: duplicate list in to", `{"v":1,"id":"x","kind":"deliver","to":{"users":["u1"],"users":[]},"event":"e",` + ts + `}`},
		{"raw: v -0", `{"v":-0,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `}`},
		{"raw: v 1 with many decimals", `{"v":1.0000000000000000000001,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `}`},
		{"raw: v huge", `{"v":1e400,"id":"x","kind":"deliver","to":{"all":true},"event":"e",` + ts + `}`},
		{"raw: v 1.0 beside another error", `{"v":1.0,"id":"","kind":"deliver","to":{"all":true},"event":"e",` + ts + `}`},
		{"raw: zero ts beside another error", `{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"connect","ts":"0001-01-01T00:00:00Z"}`},
		{"raw: ts with a sign in the hour (Atoi accepts it, RFC 3339 does not)", `{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","ts":"2026-11-27T+1:00:00Z"}`},
		{"raw: huge heartbeat counts", `{"v":1,"id":"x","kind":"control","action":"heartbeat","instance":"i","data":{"connections":1e999999999,"users":12345678901234567890123,"rooms":-1e-999999999},` + ts + `}`},
		{"raw: empty object", `{}`},
		{"raw: only v", `{"v":1}`},
		{"raw: kind in other case only", `{"v":1,"id":"x","Kind":"control","action":"disconnect","userId":"u",` + ts + `}`},
		{"raw: reserved event in other case", `{"v":1,"id":"x","kind":"deliver","to":{"all":true},"event":"e","Event":"connect",` + ts + `}`},
	}
}

// pointers returns the sorted, distinct fields of fs.
func pointers(fs []FieldError) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Field)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// goFields returns the fields of a Decode or Encode error (nil for none).
func goFields(t *testing.T, err error) []FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	var verr *ValidationError
	if !errors.As(err, &verr) || verr.Malformed || len(verr.Fields) == 0 {
		t.Fatalf("error %v is not a ValidationError listing fields", err)
	}
	return verr.Fields
}

// assertAgree fails unless the Go checks (got) and the schema (ref) refuse the
// same fields, give or take the divergence documented for name.
func assertAgree(t *testing.T, name string, payload []byte, got, ref []FieldError) {
	t.Helper()
	d := divergences[name]
	want := map[string]bool{}
	for _, p := range pointers(ref) {
		want[p] = true
	}
	for _, p := range d.schemaOnly {
		if !want[p] {
			t.Errorf("divergence says the schema refuses %s, but it does not", p)
		}
		delete(want, p)
	}
	for _, p := range d.goOnly {
		if want[p] {
			t.Errorf("divergence says only Go refuses %s, but the schema does too", p)
		}
		want[p] = true
	}
	if gotP, wantP := pointers(got), slices.Sorted(maps.Keys(want)); !slices.Equal(gotP, wantP) {
		t.Errorf("payload %s\n Go refuses %v: %v\n want      %v (schema: %v, divergence %+v)", payload, gotP, got, wantP, ref, d)
	}
}

// TestGoChecksAgreeWithTheSchema runs every envelope of the tests in this
// package through the JSON Schema validator and through Decode (or Encode,
// for envelopes built in Go), and requires the same verdict and the same
// failing fields, apart from the documented divergences.
func TestGoChecksAgreeWithTheSchema(t *testing.T) {
	ref := compileReferenceSchema(t)
	used := map[string]bool{}
	decodeCase := func(name string, payload []byte) {
		t.Run(name, func(t *testing.T) {
			used[name] = true
			_, err := Decode(payload)
			assertAgree(t, name, payload, goFields(t, err), ref.fields(t, payload))
		})
	}
	for _, tc := range slices.Concat(validEnvelopeCases(), invalidEnvelopeCases()) {
		decodeCase(tc.name, envelopeJSON(t, tc.kind, tc.set))
	}
	for _, tc := range rawCases() {
		decodeCase(tc.name, []byte(tc.payload))
	}
	for _, p := range nonObjectPayloads() {
		decodeCase("non-object "+p, []byte(p))
	}

	builtCases := invalidBuiltEnvelopes()
	for name, env := range constructedEnvelopes() {
		builtCases = append(builtCases, builtCase{name: name, env: env})
	}
	for _, tc := range builtCases {
		t.Run("built: "+tc.name, func(t *testing.T) {
			used[tc.name] = true
			payload, err := json.Marshal(tc.env)
			if err != nil || tc.env == nil {
				// Not JSON at all (invalid data) or no envelope: no schema
				// to ask; Encode must refuse it too.
				if _, err := Encode(tc.env); err == nil {
					t.Errorf("Encode(%+v) succeeded", tc.env)
				}
				return
			}
			_, err = Encode(tc.env)
			assertAgree(t, tc.name, payload, goFields(t, err), ref.fields(t, payload))
		})
	}

	for _, p := range malformedPayloads() {
		if _, err := jsonschema.UnmarshalJSON(strings.NewReader(p)); err == nil {
			t.Errorf("reference parses malformed payload %q", p)
		}
	}
	for name := range divergences {
		if !used[name] {
			t.Errorf("divergence %q names no case", name)
		}
	}
}

// TestGoOnlyRefusalsWereRefusedBefore shows that every envelope that only the
// Go checks refuse was refused by Decode before check.go too: decoding it
// into an Envelope fails, or gives a zero ts.
func TestGoOnlyRefusalsWereRefusedBefore(t *testing.T) {
	ref := compileReferenceSchema(t)
	var payloads [][]byte
	for _, tc := range invalidEnvelopeCases() {
		payloads = append(payloads, envelopeJSON(t, tc.kind, tc.set))
	}
	for _, tc := range rawCases() {
		if d := divergences[tc.name]; len(d.schemaOnly) == 0 {
			payloads = append(payloads, []byte(tc.payload))
		}
	}
	for _, payload := range payloads {
		if _, err := Decode(payload); err == nil || ref.fields(t, payload) != nil || hasFoldedName(payload) {
			continue
		}
		var env Envelope
		if err := json.Unmarshal(payload, &env); err == nil && !env.TS.IsZero() {
			t.Errorf("only Go refuses %s, which json.Unmarshal decodes into %+v", payload, env)
		}
	}
}

// TestDecodeReturnsWhatJSONUnmarshalDecodes checks that the Envelope Decode
// returns is the one json.Unmarshal makes of the payload.
func TestDecodeReturnsWhatJSONUnmarshalDecodes(t *testing.T) {
	var payloads [][]byte
	for _, tc := range validEnvelopeCases() {
		payloads = append(payloads, envelopeJSON(t, tc.kind, tc.set))
	}
	for _, tc := range rawCases() {
		payloads = append(payloads, []byte(tc.payload))
	}
	for _, payload := range payloads {
		got, err := Decode(payload)
		if err != nil {
			continue
		}
		var want Envelope
		if err := json.Unmarshal(payload, &want); err != nil {
			if strings.Contains(string(payload), `\u005a"`) {
				continue // time.Time does not unescape its JSON string
			}
			t.Fatalf("json.Unmarshal(%s) = %v", payload, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("Decode(%s)\n = %+v\nwant %+v", payload, *got, want)
		}
	}
}

// TestMessagesMatchTheSchema checks that check.go words its messages as the
// JSON Schema validator did, apart from the ones listed here.
func TestMessagesMatchTheSchema(t *testing.T) {
	ref := compileReferenceSchema(t)
	var payloads [][]byte
	for _, tc := range invalidEnvelopeCases() {
		payloads = append(payloads, envelopeJSON(t, tc.kind, tc.set))
	}
	for _, tc := range rawCases() {
		payloads = append(payloads, []byte(tc.payload))
	}
	// The validator explains why a date-time is invalid in more detail.
	reworded := func(f FieldError) bool {
		return f.Field == "/ts" && strings.Contains(f.Message, "is not valid date-time")
	}
	for _, payload := range payloads {
		_, err := Decode(payload)
		got := goFields(t, err)
		refFields := ref.fields(t, payload)
		if refFields == nil || hasFoldedName(payload) {
			continue
		}
		for _, f := range refFields {
			if !slices.Contains(got, f) && !reworded(f) {
				t.Errorf("payload %s: the schema reports %q, Go does not: %v", payload, f, got)
			}
		}
	}
}

// FuzzDecodeAgreesWithTheSchema looks for payloads on which Decode and the
// schema disagree, beyond the documented divergences: "go test" runs the
// seeds, "go test -fuzz FuzzDecodeAgreesWithTheSchema ./schemas/" explores.
func FuzzDecodeAgreesWithTheSchema(f *testing.F) {
	for _, tc := range slices.Concat(validEnvelopeCases(), invalidEnvelopeCases()) {
		f.Add(envelopeJSON(f, tc.kind, tc.set))
	}
	for _, tc := range rawCases() {
		f.Add([]byte(tc.payload))
	}
	ref := compileReferenceSchema(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, err := Decode(payload)
		var verr *ValidationError
		if !errors.As(err, &verr) && err != nil {
			t.Fatalf("Decode error %v is not a ValidationError", err)
		}
		if !json.Valid(payload) {
			if verr == nil || !verr.Malformed {
				t.Fatalf("Decode(%q) = %v, want malformed", payload, err)
			}
			return
		}
		if verr != nil && verr.Malformed {
			t.Fatalf("Decode(%q) = %v for valid JSON", payload, err)
		}
		if hasFoldedName(payload) {
			t.Skip("a top-level name differs from a known one only by case (documented divergence)")
		}
		got := pointers(goFields(t, err))
		want := pointers(ref.fields(t, payload))
		if len(got) == 0 && len(want) != 0 {
			t.Fatalf("Decode accepts %q, the schema refuses %v", payload, want)
		}
		for _, p := range want {
			if !slices.Contains(got, p) {
				t.Fatalf("the schema refuses %s in %q, Decode does not (%v)", p, payload, err)
			}
		}
		if len(want) == 0 && len(got) != 0 {
			var env Envelope
			if err := json.Unmarshal(payload, &env); err == nil && !env.TS.IsZero() && !bytes.Contains(payload, []byte(`\`)) {
				t.Fatalf("only Decode refuses %q (%v), yet json.Unmarshal decodes it", payload, got)
			}
		}
	})
}

// hasFoldedName reports whether payload is an object with a property whose
// name equals that of an Envelope field only when case is ignored.
func hasFoldedName(payload []byte) bool {
	var props map[string]json.RawMessage
	if json.Unmarshal(payload, &props) != nil {
		return false
	}
	names := []string{"v", "id", "kind", "to", "event", "data", "userId", "socketId", "instance", "action", "room", "ts"}
	for name := range props {
		for _, n := range names {
			if name != n && strings.EqualFold(name, n) {
				return true
			}
		}
	}
	return false
}
