package schemas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// EnvelopeSchemaURL is the $id of the envelope JSON Schema.
const EnvelopeSchemaURL = "https://github.com/web3-socket/web3-socket/schemas/envelope.schema.json"

//go:embed envelope.schema.json
var envelopeSchema []byte

// EnvelopeSchema returns the envelope JSON Schema (draft 2020-12) as raw JSON.
// Unknown top-level envelope properties are allowed, for forward compatibility.
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

func invalid(fields ...FieldError) error { return &ValidationError{Fields: fields} }

// compiledSchema holds the envelope schema, compiled on first use. The schema
// is immutable once compiled and safe for concurrent validation.
type compiledSchema struct {
	schema *jsonschema.Schema
	// descriptions maps a schema location (JSON Pointer inside the schema
	// document) to its "description", used as the message for anyOf/oneOf/not
	// failures, whose raw output ("anyOf failed") would name no cause.
	descriptions map[string]string
}

var loadSchema = sync.OnceValues(func() (*compiledSchema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(envelopeSchema))
	if err != nil {
		return nil, fmt.Errorf("parse envelope schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(EnvelopeSchemaURL, doc); err != nil {
		return nil, fmt.Errorf("add envelope schema: %w", err)
	}
	sch, err := c.Compile(EnvelopeSchemaURL)
	if err != nil {
		return nil, fmt.Errorf("compile envelope schema: %w", err)
	}
	descs := map[string]string{}
	collectDescriptions(doc, "", descs)
	return &compiledSchema{schema: sch, descriptions: descs}, nil
})

func collectDescriptions(v any, ptr string, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if d, ok := v["description"].(string); ok {
			out[ptr] = d
		}
		for k, child := range v {
			collectDescriptions(child, ptr+"/"+escapePointer(k), out)
		}
	case []any:
		for i, child := range v {
			collectDescriptions(child, fmt.Sprintf("%s/%d", ptr, i), out)
		}
	}
}

var printer = message.NewPrinter(language.English)

// Decode parses payload and validates it against the envelope schema. A
// payload that is not JSON gives an "envelope malformed: …" error; one that
// breaks the schema gives "envelope invalid: /field: …". Both wrap ErrInvalid.
func Decode(payload []byte) (*Envelope, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return nil, malformed(err)
	}
	if err := validateInstance(inst); err != nil {
		return nil, err
	}
	var env Envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		// The schema accepted it, so this is a value Go cannot hold (such as
		// "v": 1.0 or a leap second); still a bad envelope, not a crash.
		return nil, invalid(unmarshalFieldError(err))
	}
	if err := env.checkSemantics(); err != nil {
		return nil, err
	}
	return &env, nil
}

// Encode validates e and returns its JSON encoding, ready to publish.
func Encode(e *Envelope) ([]byte, error) {
	if e == nil {
		return nil, invalid(FieldError{Field: "/", Message: "envelope is nil"})
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, malformed(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, malformed(err)
	}
	if err := validateInstance(inst); err != nil {
		return nil, err
	}
	if err := e.checkSemantics(); err != nil {
		return nil, err
	}
	return b, nil
}

// Validate reports whether e, as it would be encoded, satisfies the envelope
// schema. Call it before publishing an envelope built by hand.
func (e *Envelope) Validate() error {
	_, err := Encode(e)
	return err
}

// checkSemantics covers what the schema cannot see: a ts of the zero time is
// a well-formed date-time, but always a forgotten field.
func (e *Envelope) checkSemantics() error {
	if e.TS.IsZero() {
		return invalid(FieldError{Field: "/ts", Message: "must be set (zero time)"})
	}
	return nil
}

func validateInstance(inst any) error {
	cs, err := loadSchema()
	if err != nil {
		// The schema is embedded and covered by tests; failing here is a
		// build defect, reported rather than panicking inside a consumer.
		return fmt.Errorf("envelope schema unusable: %w", err)
	}
	err = cs.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return invalid(FieldError{Field: "/", Message: err.Error()})
	}
	var fields []FieldError
	cs.flatten(verr, &fields)
	slices.SortStableFunc(fields, func(a, b FieldError) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	fields = slices.Compact(fields)
	if len(fields) == 0 {
		fields = []FieldError{{Field: "/", Message: verr.Error()}}
	}
	return invalid(fields...)
}

// flatten turns the library's error tree into one line per offending field.
func (cs *compiledSchema) flatten(e *jsonschema.ValidationError, out *[]FieldError) {
	loc := pointer(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, FieldError{Field: pointer(append(slices.Clone(e.InstanceLocation), m)), Message: "is required"})
		}
		return
	case *kind.AnyOf, *kind.OneOf, *kind.Not:
		if d, ok := cs.descriptions[fragment(e.SchemaURL)]; ok {
			*out = append(*out, FieldError{Field: loc, Message: d})
			return
		}
		if _, ok := k.(*kind.Not); ok {
			*out = append(*out, FieldError{Field: loc, Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
	}
	if len(e.Causes) == 0 {
		*out = append(*out, FieldError{Field: loc, Message: e.ErrorKind.LocalizedString(printer)})
		return
	}
	for _, c := range e.Causes {
		cs.flatten(c, out)
	}
}

func unmarshalFieldError(err error) FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return FieldError{Field: "/" + strings.ReplaceAll(te.Field, ".", "/"), Message: "cannot hold " + te.Value}
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return FieldError{Field: "/ts", Message: err.Error()}
	}
	return FieldError{Field: "/", Message: err.Error()}
}

func fragment(url string) string {
	if _, f, ok := strings.Cut(url, "#"); ok {
		return f
	}
	return ""
}

func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return "/"
	}
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapePointer(t))
	}
	return sb.String()
}

func escapePointer(t string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(t)
}
