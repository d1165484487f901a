package bridge

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// releasingWriter stands between net/http and the engine. The engine keeps
// each connection's request context, response writer included, for the life
// of the connection; net/http's response writer holds the connection's 4 KiB
// read and write buffers, which a WebSocket never uses after the upgrade. Once
// hijacked, the writer lets go of them.
type releasingWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter // nil once hijacked
}

func (r *releasingWriter) inner() http.ResponseWriter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return hijacked{}
	}
	return r.w
}

func (r *releasingWriter) Header() http.Header         { return r.inner().Header() }
func (r *releasingWriter) Write(b []byte) (int, error) { return r.inner().Write(b) }
func (r *releasingWriter) WriteHeader(code int)        { r.inner().WriteHeader(code) }

// Flush passes flushes through to net/http (long polling needs them).
func (r *releasingWriter) Flush() { _ = http.NewResponseController(r.inner()).Flush() }

// Unwrap lets http.ResponseController reach net/http's writer.
func (r *releasingWriter) Unwrap() http.ResponseWriter { return r.inner() }

// Hijack hands the connection over and drops net/http's writer.
func (r *releasingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return nil, nil, http.ErrHijacked
	}
	conn, rw, err := http.NewResponseController(r.w).Hijack()
	if err == nil {
		r.w = nil
	}
	return conn, rw, err
}

// hijacked answers for a writer whose connection was taken over.
type hijacked struct{}

func (hijacked) Header() http.Header       { return http.Header{} }
func (hijacked) Write([]byte) (int, error) { return 0, http.ErrHijacked }
func (hijacked) WriteHeader(int)           {}

var _ http.Hijacker = (*releasingWriter)(nil)

// releaseAfterHijack wraps h so that WebSocket connections do not keep
// net/http's buffers.
func releaseAfterHijack(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&releasingWriter{w: w}, r)
	})
}
