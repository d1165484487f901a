package schemas

import (
	"bytes"
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 description of the REST API as raw YAML.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// httpMethods are the keys of an OpenAPI path item that name operations.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// DocumentedStatuses returns, for every operation in the OpenAPI document, the
// sorted HTTP status codes it documents, keyed by "METHOD /path/template"
// (for example "POST /api/users/{userId}/rooms"). A "default" response has no
// code and is left out.
func DocumentedStatuses() (map[string][]int, error) {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	out := make(map[string][]int)
	for path, item := range doc.Paths {
		for method, node := range item {
			if !slices.Contains(httpMethods, method) {
				continue // parameters, summary, servers…
			}
			var op struct {
				Responses map[string]yaml.Node `yaml:"responses"`
			}
			if err := node.Decode(&op); err != nil {
				return nil, fmt.Errorf("parse openapi.yaml %s %s: %w", method, path, err)
			}
			key := strings.ToUpper(method) + " " + path
			codes := []int{}
			for status := range op.Responses {
				if status == "default" {
					continue
				}
				code, err := strconv.Atoi(status)
				if err != nil || code < 100 || code > 599 {
					return nil, fmt.Errorf("openapi.yaml %s: response %q is not an HTTP status", key, status)
				}
				codes = append(codes, code)
			}
			slices.Sort(codes)
			out[key] = codes
		}
	}
	return out, nil
}
