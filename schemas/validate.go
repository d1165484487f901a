package schemas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// EnvelopeSchemaURL is the $id of the envelope JSON Schema.
const EnvelopeSchemaURL = "https://github.com/web3-socket/web3-socket/schemas/envelope.schema.json"

//go:embed envelope.schema.json
var envelopeSchema []byte

// EnvelopeSchema returns the envelope JSON Schema (draft 2020-12) as raw JSON:
// the contract for backends not written in Go. Decode and Encode apply the
// same rules in Go (check.go). Unknown top-level envelope properties are
// allowed, for forward compatibility.
func EnvelopeSchema() []byte { return bytes.Clone(envelopeSchema) }

// ErrInvalid is wrapped by every error that reports a malformed or invalid
// envelope, so callers can test for it with errors.Is.
var ErrInvalid = errors.New("invalid envelope")

// FieldError is one problem found in an envelope: Field is a JSON Pointer to
// the offending value ("/to/users/0"), "/" for the envelope itself.
type FieldError struct {
	Field   string
	Message string
}

func (f FieldError) String() string { return f.Field + ": " + f.Message }

// ValidationError reports why an envelope was refused. It wraps ErrInvalid and,
// for malformed input, the underlying decoding error.
type ValidationError struct {
	// Malformed is set when the payload is not JSON (or cannot be encoded).
	Malformed bool
	// Fields lists what is wrong with a well-formed envelope, sorted by field.
	Fields []FieldError

	cause error
}

// Error returns "envelope malformed: …" or "envelope invalid: /field: …; …".
func (e *ValidationError) Error() string {
	if e.Malformed {
		return "envelope malformed: " + e.cause.Error()
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.String()
	}
	return "envelope invalid: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the decoding error behind a malformed payload, if any.
func (e *ValidationError) Unwrap() error { return e.cause }

func malformed(err error) error { return &ValidationError{Malformed: true, cause: err} }

// invalid returns the error for fields, sorted by field and without repeats.
func invalid(fields ...FieldError) error {
	slices.SortFunc(fields, func(a, b FieldError) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return &ValidationError{Fields: slices.Compact(fields)}
}

// Decode parses payload and checks it against the envelope schema. A payload
// that is not JSON gives an "envelope malformed: …" error; one that breaks the
// schema gives "envelope invalid: /field: …". Both wrap ErrInvalid.
func Decode(payload []byte) (*Envelope, error) {
	var scanned wireEnvelope // kept on the stack: decodeWire's escapes
	w := &scanned
	if !scanned.scan(payload) {
		decoded := new(wireEnvelope)
		if err := decoded.decodeWire(payload); err != nil {
			return nil, err
		}
		w = decoded
	}
	if fields := w.check(); fields != nil {
		return nil, invalid(fields...)
	}
	return w.envelope(), nil
}

// decodeWire fills w from payload with encoding/json, which decides what an
// envelope unusual enough for scan to refuse means (escapes, names in
// another case, repeated names); it returns the error for a payload that is
// not JSON or not an object.
func (w *wireEnvelope) decodeWire(payload []byte) error {
	if err := json.Unmarshal(payload, w); err != nil {
		// encoding/json checks the syntax of the whole payload first, so a
		// payload that is not JSON gets a SyntaxError and nothing else.
		var serr *json.SyntaxError
		if errors.As(err, &serr) {
			return malformed(err)
		}
		if typeOf(payload) == jsonObject {
			// Cannot happen: the wire types take any JSON value.
			return invalid(FieldError{Field: "/", Message: err.Error()})
		}
	}
	if t := typeOf(payload); t != jsonObject {
		return invalid(FieldError{Field: "/", Message: "got " + t.String() + ", want object"})
	}
	return nil
}

// Encode checks e against the envelope schema and returns its JSON encoding,
// ready to publish.
func Encode(e *Envelope) ([]byte, error) {
	if e == nil {
		return nil, invalid(FieldError{Field: "/", Message: "envelope is nil"})
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return appendEnvelope(make([]byte, 0, 256+len(e.Data)), e), nil
}

// Validate reports whether e, as it would be encoded, satisfies the envelope
// schema. Call it before publishing an envelope built by hand.
func (e *Envelope) Validate() error {
	if e == nil {
		return invalid(FieldError{Field: "/", Message: "envelope is nil"})
	}
	if len(e.Data) > 0 && !json.Valid(e.Data) {
		return malformed(errors.New("data is not valid JSON"))
	}
	w := wireOf(e)
	if fields := w.check(); fields != nil {
		return invalid(fields...)
	}
	return nil
}
