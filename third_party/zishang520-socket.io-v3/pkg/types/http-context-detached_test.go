package types

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"
)

func TestDetachedContextKeepsWhatIsReadOfTheRequest(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequestWithContext(base, http.MethodPost, "https://example.test:8443/socket.io/?EIO=4&transport=websocket&app=x&app=y", strings.NewReader("body"))
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("Origin", "https://example.test")
	r.RemoteAddr = "192.0.2.1:1234"
	r.TLS = &tls.ConnectionState{}
	c := NewHttpContext(httptest.NewRecorder(), r)
	if _, err := c.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}

	d := c.Detached()
	dr := d.Request()
	if dr == r {
		t.Fatal("Detached kept the request net/http made")
	}
	if d.Headers().Peek("Authorization") != "Bearer t" || d.Headers().Peek("Origin") != "https://example.test" {
		t.Errorf("headers %v, want the request's", dr.Header)
	}
	d.Headers().Set("X-Later", "1")
	if r.Header.Get("X-Later") != "1" {
		t.Error("the detached context's headers are not the request's map")
	}
	if got := d.Query().Peek("transport"); got != "websocket" {
		t.Errorf("query transport=%q, want websocket", got)
	}
	if got, _ := d.Query().Get("app"); got != "y" {
		t.Errorf("query app=%q, want the last value y", got)
	}
	if dr.RequestURI != r.RequestURI || dr.RemoteAddr != r.RemoteAddr || dr.Host != r.Host || dr.Method != r.Method || dr.Proto != r.Proto {
		t.Errorf("request line %s %s %s from %s at %s, want %s %s %s from %s at %s",
			dr.Method, dr.RequestURI, dr.Proto, dr.RemoteAddr, dr.Host, r.Method, r.RequestURI, r.Proto, r.RemoteAddr, r.Host)
	}
	if !d.Secure() || d.Host() != "example.test" || d.Path() != "socket.io" || d.Method() != http.MethodPost || d.PathInfo() != "/socket.io/" {
		t.Errorf("secure %v host %q path %q method %q, want the request's", d.Secure(), d.Host(), d.Path(), d.Method())
	}
	if d.Context() != context.Background() || dr.Context() != context.Background() {
		t.Error("the detached context keeps the request's context")
	}
	if b, _ := io.ReadAll(dr.Body); len(b) != 0 || dr.ContentLength != 0 {
		t.Errorf("the detached request has a body: %q (%d bytes)", b, dr.ContentLength)
	}
	if !d.IsDone() || !d.ResponseCommitted() {
		t.Error("the detached context is not done")
	}
	select {
	case <-d.Done():
	default:
		t.Error("the detached context's Done is open")
	}
	if _, err := d.Write([]byte("again")); !errors.Is(err, ErrResponseAlreadyWritten) {
		t.Errorf("Write on the detached context: %v, want ErrResponseAlreadyWritten", err)
	}
	if n, err := d.Response().Write([]byte("x")); n != 0 || !errors.Is(err, ErrResponseAlreadyWritten) {
		t.Errorf("the detached response wrote %d bytes, %v", n, err)
	}
	if d.Websocket != nil || d.WebTransport != nil {
		t.Error("the detached context keeps the upgraded connection")
	}
}

func TestDetachedContextKeepsAChangedQuery(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/socket.io/?transport=webtransport", nil)
	c := NewHttpContext(httptest.NewRecorder(), r)
	c.Query().Set("EIO", "4")
	d := c.Detached()
	if d.Query().Peek("EIO") != "4" || d.Query().Peek("transport") != "webtransport" {
		t.Errorf("detached query %v, want the changed one", d.Query().All())
	}
	if r.URL.RawQuery != "transport=webtransport" {
		t.Errorf("the request's URL was changed to %q", r.URL.RawQuery)
	}
	// Each read is parsed again: a change is not kept (nor the map).
	d.Query().Set("later", "1")
	if d.Query().Has("later") {
		t.Error("the detached context keeps its parsed query")
	}
}

func TestParameterBagSameAsQuery(t *testing.T) {
	many := "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9"
	tests := []struct {
		name string
		bag  map[string][]string
		raw  string
		want bool
	}{
		{"empty", map[string][]string{}, "", true},
		{"same", map[string][]string{"EIO": {"4"}, "transport": {"websocket"}}, "EIO=4&transport=websocket", true},
		{"added key", map[string][]string{"EIO": {"4"}, "transport": {"webtransport"}}, "transport=webtransport", false},
		{"changed value", map[string][]string{"EIO": {"3"}}, "EIO=4", false},
		{"extra value", map[string][]string{"a": {"1", "2"}}, "a=1", false},
		{"missing value", map[string][]string{"a": {"1"}}, "a=1&a=2", false},
		{"repeated key in order", map[string][]string{"a": {"1", "2"}, "b": {""}}, "a=1&b&a=2", true},
		{"repeated key out of order", map[string][]string{"a": {"2", "1"}}, "a=1&a=2", false},
		{"escapes", map[string][]string{"q": {"a b/c"}, "k y": {"+"}}, "q=a+b%2Fc&k%20y=%2B", true},
		{"skipped pairs", map[string][]string{"a": {"1"}}, "&a=1&&b;c=2&d=%zz", true},
		{"empty key left in bag", map[string][]string{"a": {"1"}, "b": {}}, "a=1", false},
		{"many keys", map[string][]string{"a": {"1"}, "b": {"2"}, "c": {"3"}, "d": {"4"}, "e": {"5"}, "f": {"6"}, "g": {"7"}, "h": {"8"}, "i": {"9"}}, many, true},
		{"many keys changed", map[string][]string{"a": {"1"}, "b": {"2"}, "c": {"3"}, "d": {"4"}, "e": {"5"}, "f": {"6"}, "g": {"7"}, "h": {"8"}, "i": {"0"}}, many, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewParameterBag(tt.bag).sameAsQuery(tt.raw); got != tt.want {
				t.Errorf("sameAsQuery(%q) with %v = %v, want %v", tt.raw, tt.bag, got, tt.want)
			}
		})
	}
}

func TestSameAsQueryOfAPlainQueryAllocatesNothing(t *testing.T) {
	bag := NewParameterBag(map[string][]string{"EIO": {"4"}, "transport": {"websocket"}, "app": {"x"}})
	if n := testing.AllocsPerRun(100, func() { bag.sameAsQuery("EIO=4&transport=websocket&app=x") }); n != 0 {
		t.Errorf("%v allocations, want none", n)
	}
}

// An Engine.IO socket keeps a context for its life: the lazy values are laid
// out so that it fits the 384-byte size class.
func TestHttpContextFitsThe384ByteSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(HttpContext{}); n > 384 {
		t.Errorf("HttpContext is %d bytes, want at most 384", n)
	}
}
