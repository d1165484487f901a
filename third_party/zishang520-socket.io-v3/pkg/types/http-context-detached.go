package types

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// closedDone is the Done channel of every detached context: their response
// is over.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Detached returns a context for the same request that keeps only what is
// read of a request once its response is over: its method, URL, protocol,
// headers (the same map), host, remote address, request URI, TLS state and
// forms. It has no body, no request context (Context is
// context.Background), no response to write (Write reports
// ErrResponseAlreadyWritten, ResponseHeaders is empty) and no upgraded
// connection, and it is done.
//
// An Engine.IO socket keeps the first request of its session for its life,
// and Socket.IO reads it when the client joins a namespace (its headers,
// query, URL and TLS state). The request net/http made holds its context
// chain, its body and its connection's state, and the context its response
// state; a detached context holds none of them. Its Query is parsed from
// the URL on each call rather than kept, and reflects parameters set on
// c's Query before Detached was called. (Added by web3-socket; see
// third_party/README.md.)
func (c *HttpContext) Detached() *HttpContext {
	r := c.request
	u := r.URL
	if u != nil {
		if q := c.Query(); !q.sameAsQuery(u.RawQuery) {
			// The query was changed (WebTransport sets EIO): the
			// detached context keeps the changed one.
			v := *u
			v.RawQuery = url.Values(q.All()).Encode()
			u = &v
		}
	}
	d := &HttpContext{
		EventEmitter: NewEventEmitter(),
		IdleTimeout:  c.IdleTimeout,
		request: &http.Request{
			Method:           r.Method,
			URL:              u,
			Proto:            r.Proto,
			ProtoMajor:       r.ProtoMajor,
			ProtoMinor:       r.ProtoMinor,
			Header:           r.Header,
			Body:             http.NoBody,
			TransferEncoding: r.TransferEncoding,
			Close:            r.Close,
			Host:             r.Host,
			Form:             r.Form,
			PostForm:         r.PostForm,
			MultipartForm:    r.MultipartForm,
			Trailer:          r.Trailer,
			RemoteAddr:       r.RemoteAddr,
			RequestURI:       r.RequestURI,
			TLS:              r.TLS,
			Pattern:          r.Pattern,
		},
		response: detachedResponse{},
		ctx:      context.Background(),
		done:     closedDone,
		detached: true,
	}
	d.statusCode.Store(int32(c.GetStatusCode()))
	d.state.Store(httpResponseCommitted | httpContextFinalizing)
	return d
}

// detachedResponse is the response of a detached context, already written.
type detachedResponse struct{}

func (detachedResponse) Header() http.Header       { return http.Header{} }
func (detachedResponse) Write([]byte) (int, error) { return 0, ErrResponseAlreadyWritten }
func (detachedResponse) WriteHeader(int)           {}

// sameAsQuery reports whether the bag holds exactly the parameters that
// url.ParseQuery reads from raw, in the same order for each key. It does
// not allocate for a query without escapes and with up to eight keys; past
// that it compares with a parsed copy.
func (p *ParameterBag) sameAsQuery(raw string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var seen [8]struct {
		key string
		n   int
	}
	keys, values := 0, 0
	for rest := raw; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue // url.ParseQuery skips these
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		i := 0
		for i < keys && seen[i].key != key {
			i++
		}
		if i == keys {
			if keys == len(seen) {
				return p.sameAsParsed(raw)
			}
			seen[i].key, keys = key, keys+1
		}
		have := p.parameters[key]
		if seen[i].n >= len(have) || have[seen[i].n] != value {
			return false
		}
		seen[i].n++
		values++
	}
	total := 0
	for _, v := range p.parameters {
		total += len(v)
	}
	return total == values && len(p.parameters) == keys
}

// sameAsParsed is sameAsQuery by way of url.ParseQuery; the caller holds
// p.mu.
func (p *ParameterBag) sameAsParsed(raw string) bool {
	q, _ := url.ParseQuery(raw)
	if len(q) != len(p.parameters) {
		return false
	}
	for k, v := range q {
		if have, ok := p.parameters[k]; !ok || !slices.Equal(have, v) {
			return false
		}
	}
	return true
}
