package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRESTAcceptance measures how many messages/s the REST API accepts
// onto the bus (embedded bus, router and delivery loop running, recipients
// offline so sockets cost nothing): b.N messages sent one per POST
// /api/message, then b.N messages in POST /api/batch calls of 100, both from
// 8 keep-alive workers over loopback. It reports both rates and their ratio,
// measured in the same run:
//
//	go test -run x -bench RESTAcceptance -benchtime 100000x ./cmd/web3-socket/app
func BenchmarkRESTAcceptance(b *testing.B) {
	cfg := DefaultConfig()
	cfg.JWTSecret = "bench-secret-bench-secret-bench-secret"
	cfg.APIKeys = []string{"bench-key-bench-key-bench-key"}
	cfg.InstanceID = "bench"
	cfg.ShutdownTimeout = 5 * time.Second
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "bench")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + ln.Addr().String()
	const workers, batchSize, users = 8, 100, 2000
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}

	// run sends calls requests (the i-th built by body(i)) to path from the
	// workers and returns how long they took.
	run := func(path string, calls int, body func(i int) []byte) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= calls {
						return
					}
					req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body(i)))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-API-Key", cfg.APIKeys[0])
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("%s: status %d", path, resp.StatusCode)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	message := func(i int) []byte {
		return fmt.Appendf(nil, `{"userId":"u%d","event":"bench","data":{"n":%d}}`, i%users, i)
	}
	batches := (b.N + batchSize - 1) / batchSize
	batch := func(i int) []byte {
		buf := []byte(`{"messages":[`)
		for j := range min(batchSize, b.N-i*batchSize) {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, message(i*batchSize+j)...)
		}
		return append(buf, "]}"...)
	}

	b.ResetTimer()
	single := run("/api/message", b.N, message)
	batched := run("/api/batch", batches, batch)
	b.StopTimer()
	singleRate := float64(b.N) / single.Seconds()
	batchRate := float64(b.N) / batched.Seconds()
	b.ReportMetric(singleRate, "single-msgs/s")
	b.ReportMetric(batchRate, "batch-msgs/s")
	b.ReportMetric(batchRate/singleRate, "batch/single")
}
