package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/web3-socket/web3-socket/router"
)

// discardWriter is a ResponseWriter that keeps only the status, so that a
// benchmark counts what the handler allocates, not what a recorder does.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkMessage measures the server side of one POST /api/message, from
// the mux to the embedded bus (no subscriber) and the 202 answer, without
// the network and HTTP parsing:
//
//	go test -run '^$' -bench Message -benchmem ./handlers
func BenchmarkMessage(b *testing.B) {
	bus, err := router.NewBus(router.BusConfig{Kind: router.KindMemory}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	pub := router.NewPublisher(bus.Publisher(), router.NewMetrics(prometheus.NewRegistry()))
	api, err := NewAPI(APIConfig{Instance: testInstance, Keys: testKeys, OutboundTopic: outTopic, ControlTopic: ctlTopic},
		pub, bus, &fakeEdge{}, nil, NewHTTPMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)

	bodies := make([][]byte, 2000)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"userId":"u%d","event":"bench","data":{"n":%d}}`, i, i)
	}
	r, err := http.NewRequest(http.MethodPost, "/api/message", nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-API-Key", testKeys[0])
	var body bytes.Reader
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// As net/http does, each request has a context of its own.
		ctx, cancel := context.WithCancel(context.Background())
		r := r.WithContext(ctx)
		body.Reset(bodies[i%len(bodies)])
		r.Body, r.ContentLength = io.NopCloser(&body), int64(body.Len())
		clear(w.header)
		mux.ServeHTTP(w, r)
		cancel()
		if w.status != http.StatusAccepted {
			b.Fatalf("status %d, want 202", w.status)
		}
	}
}
