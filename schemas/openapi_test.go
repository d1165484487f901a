package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// wantStatuses is the REST contract of SPEC.md: every route and the statuses
// it answers. openapi.yaml must document exactly these.
var wantStatuses = map[string][]int{
	"GET /health":                             {200},
	"GET /ready":                              {200, 503},
	"GET /metrics":                            {200},
	"GET /api/status":                         {200, 401, 429},
	"GET /api/stats/connections":              {200, 401, 429},
	"POST /api/message":                       {202, 400, 401, 413, 415, 429, 503},
	"POST /api/broadcast":                     {202, 400, 401, 413, 415, 429, 503},
	"POST /api/batch":                         {202, 400, 401, 413, 415, 429, 503},
	"GET /api/users/{userId}":                 {200, 401, 429, 503},
	"POST /api/users/{userId}/rooms":          {202, 400, 401, 413, 415, 429, 503},
	"DELETE /api/users/{userId}/rooms/{room}": {202, 400, 401, 429, 503},
	"POST /api/users/{userId}/disconnect":     {202, 401, 429, 503},
	"GET /api/rooms":                          {200, 401, 429, 503},
}

const openAPIURL = "https://github.com/web3-socket/web3-socket/schemas/openapi.json"

// openAPIDoc returns openapi.yaml as a JSON value (maps, slices, json.Number).
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	var y any
	if err := yaml.Unmarshal(OpenAPI(), &y); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	b, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("openapi.yaml is not JSON-compatible: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("openapi.yaml: top level is %T, want a mapping", doc)
	}
	return m
}

func resolvePointer(doc any, ref string) (any, bool) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, false
	}
	cur := doc
	if frag == "" {
		return cur, true
	}
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// deref follows $ref (possibly chained) to the object it names.
func deref(t *testing.T, doc, v any) map[string]any {
	t.Helper()
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("expected an object, got %T", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		if v, ok = resolvePointer(doc, ref); !ok {
			t.Fatalf("$ref %s does not resolve", ref)
		}
	}
	t.Fatal("$ref chain too long")
	return nil
}

func TestOpenAPIParsesAsVersion31(t *testing.T) {
	doc := openAPIDoc(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	for _, k := range []string{"info", "paths", "components"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("openapi.yaml has no %q", k)
		}
	}
}

func TestOpenAPIDocumentsEveryRouteAndStatus(t *testing.T) {
	got, err := DocumentedStatuses()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range slices.Sorted(maps.Keys(wantStatuses)) {
		if !slices.Equal(got[op], wantStatuses[op]) {
			t.Errorf("%s documents %v, want %v", op, got[op], wantStatuses[op])
		}
	}
	for _, op := range slices.Sorted(maps.Keys(got)) {
		if _, ok := wantStatuses[op]; !ok {
			t.Errorf("%s is documented but not part of the REST contract", op)
		}
	}
}

func TestOpenAPIEveryRefResolves(t *testing.T) {
	doc := openAPIDoc(t)
	var n int
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				if _, ok := resolvePointer(doc, ref); !ok {
					t.Errorf("%s: $ref %q does not resolve", at, ref)
				}
			}
			for k, c := range v {
				walk(c, at+"/"+k)
			}
		case []any:
			for i, c := range v {
				walk(c, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(doc, "#")
	if n == 0 {
		t.Fatal("no $ref found; the walk is broken")
	}
}

func TestOpenAPISecurity(t *testing.T) {
	doc := openAPIDoc(t)
	schemes := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)
	apiKey := schemes["ApiKeyHeader"].(map[string]any)
	if apiKey["type"] != "apiKey" || apiKey["in"] != "header" || apiKey["name"] != "X-API-Key" {
		t.Errorf("ApiKeyHeader = %v, want an apiKey in header X-API-Key", apiKey)
	}
	bearer := schemes["BearerAuth"].(map[string]any)
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Errorf("BearerAuth = %v, want http bearer", bearer)
	}
	if global, _ := doc["security"].([]any); len(global) != 2 {
		t.Errorf("global security = %v, want X-API-Key or bearer", doc["security"])
	}
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			sec, overridden := op.(map[string]any)["security"]
			public := !strings.HasPrefix(path, "/api/")
			switch {
			case public && (!overridden || len(sec.([]any)) != 0):
				t.Errorf("%s %s needs no key but does not say security: []", method, path)
			case !public && overridden:
				t.Errorf("%s %s overrides the API key requirement", method, path)
			}
		}
	}
}

// TestOpenAPIExamplesMatchTheirSchemas compiles every schema in the document
// as JSON Schema 2020-12 and checks each example against the schema beside it,
// so the document is both well-formed and self-consistent.
func TestOpenAPIExamplesMatchTheirSchemas(t *testing.T) {
	doc := openAPIDoc(t)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openAPIURL, doc); err != nil {
		t.Fatal(err)
	}
	var checked int
	checkMedia := func(where string, mt map[string]any, ptr string) {
		if _, ok := mt["schema"]; !ok {
			t.Errorf("%s has no schema", where)
			return
		}
		sch, err := c.Compile(openAPIURL + "#" + ptr + "/schema")
		if err != nil {
			t.Errorf("%s: schema does not compile: %v", where, err)
			return
		}
		examples := map[string]any{}
		if ex, ok := mt["example"]; ok {
			examples["example"] = ex
		}
		if exs, ok := mt["examples"].(map[string]any); ok {
			for name, ex := range exs {
				examples[name] = deref(t, doc, ex)["value"]
			}
		}
		for name, ex := range examples {
			checked++
			if err := sch.Validate(ex); err != nil {
				t.Errorf("%s example %s does not match its schema: %v", where, name, err)
			}
		}
	}
	esc := func(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }
	for path, item := range doc["paths"].(map[string]any) {
		for method, opv := range item.(map[string]any) {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			op := opv.(map[string]any)
			opPtr := "/paths/" + esc(path) + "/" + method
			where := strings.ToUpper(method) + " " + path
			if rb, ok := op["requestBody"].(map[string]any); ok {
				for ct, mt := range rb["content"].(map[string]any) {
					checkMedia(where+" request "+ct, mt.(map[string]any), opPtr+"/requestBody/content/"+esc(ct))
				}
			}
			for status, rv := range op["responses"].(map[string]any) {
				ptr := opPtr + "/responses/" + status
				r := rv.(map[string]any)
				if ref, ok := r["$ref"].(string); ok {
					ptr = strings.TrimPrefix(ref, "#")
					r = deref(t, doc, r)
				}
				if _, ok := r["description"].(string); !ok {
					t.Errorf("%s %s has no description", where, status)
				}
				content, _ := r["content"].(map[string]any)
				if len(content) == 0 {
					t.Errorf("%s %s documents no body", where, status)
				}
				for ct, mt := range content {
					checkMedia(fmt.Sprintf("%s %s %s", where, status, ct), mt.(map[string]any), ptr+"/content/"+esc(ct))
				}
			}
		}
	}
	for name := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := c.Compile(openAPIURL + "#/components/schemas/" + esc(name)); err != nil {
			t.Errorf("components.schemas.%s does not compile: %v", name, err)
		}
	}
	if checked < 15 {
		t.Errorf("only %d examples checked; the walk is broken", checked)
	}
}

// TestOpenAPIBatchItemIsMessageOrBroadcast pins the one schema with logic in
// it: an item with userId is a message, one without is a broadcast.
func TestOpenAPIBatchItemIsMessageOrBroadcast(t *testing.T) {
	doc := openAPIDoc(t)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(openAPIURL, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(openAPIURL + "#/components/schemas/BatchRequest")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"messages":[{"userId":"u1","event":"e"}]}`, true},
		{`{"messages":[{"event":"e","data":[1,2]}]}`, true},
		{`{"messages":[{"room":"r","event":"e"}]}`, true},
		{`{"messages":[]}`, false},
		{`{"messages":[{"userId":"","event":"e"}]}`, false},
		{`{"messages":[{"data":1}]}`, false},
		{`{"messages":[{"event":"connect"}]}`, false},
		{`{"messages":[` + strings.Repeat(`{"event":"e"},`, 1000) + `{"event":"e"}]}`, false},
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); (err == nil) != tc.ok {
			t.Errorf("%.60s: valid = %v, want %v (%v)", tc.body, err == nil, tc.ok, err)
		}
	}
}
