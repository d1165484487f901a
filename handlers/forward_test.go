package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// fakeBackend answers with the statuses of answers in turn (the last one
// repeats) and records the bodies it got with a valid signature.
type fakeBackend struct {
	mu       sync.Mutex
	answers  []int
	bodies   []string
	unsigned int
	replies  int
}

func (f *fakeBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if VerifySignature([]byte(testSecret), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Minute, time.Now()) != nil {
		f.unsigned++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	status := f.answers[min(len(f.bodies), len(f.answers)-1)]
	f.bodies = append(f.bodies, string(body))
	if r.Header.Get(HeaderReplyExpected) == "true" {
		f.replies++
	}
	w.WriteHeader(status)
	if status == http.StatusOK {
		_, _ = w.Write([]byte(`{"ok":true,"answer":42}`))
	}
}

func (f *fakeBackend) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

func newTestBackend(t *testing.T, cfg BackendConfig, answers ...int) (*Backend, *fakeBackend) {
	t.Helper()
	fake := &fakeBackend{answers: answers}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg.URL, cfg.Secret = srv.URL, testSecret
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval, cfg.RetryMaxInterval = time.Millisecond, 4*time.Millisecond
	}
	b, err := NewBackend(cfg, NewBackendMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b, fake
}

func clientEventMessage(t *testing.T, requestReply bool) *message.Message {
	t.Helper()
	env := schemas.NewClientEvent("u1", "s1", "i1", "chat", json.RawMessage(`{"text":"hi"}`))
	env.RequestReply = requestReply
	msg, err := router.NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestSignatureVerifiesAndRefusesTamperingAndOldTimestamps(t *testing.T) {
	body := []byte(`{"v":1}`)
	now := time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	sig := Sign([]byte(testSecret), ts, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q is not sha256=<64 hex>", sig)
	}
	tests := []struct {
		name           string
		ts, sig        string
		body           []byte
		now            time.Time
		wantErrContain string
	}{
		{"valid", ts, sig, body, now, ""},
		{"body changed", ts, sig, []byte(`{"v":2}`), now, "does not match"},
		{"timestamp changed", "1800000001", sig, body, now.Add(time.Second), "does not match"},
		{"too old", ts, sig, body, now.Add(6 * time.Minute), "away from now"},
		{"not a number", "soon", sig, body, now, "not Unix seconds"},
		{"other key", ts, Sign([]byte("other"), ts, body), body, now, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature([]byte(testSecret), tt.ts, tt.sig, tt.body, 5*time.Minute, tt.now)
			if tt.wantErrContain == "" && err != nil {
				t.Fatalf("want valid, got %v", err)
			}
			if tt.wantErrContain != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrContain)) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErrContain)
			}
		})
	}
}

func TestForwardRetriesTransientFailuresUntilTheBackendTakesTheEvent(t *testing.T) {
	b, fake := newTestBackend(t, BackendConfig{BreakerFailures: 100}, 500, 503, 429, 408, 204)
	msg := clientEventMessage(t, false)
	if err := b.Forward()(msg); err != nil {
		t.Fatalf("Forward = %v, want the event delivered on the 5th attempt", err)
	}
	if got := fake.count(); got != 5 {
		t.Fatalf("backend got %d requests, want 5", got)
	}
	if fake.unsigned != 0 {
		t.Fatalf("%d requests without a valid signature", fake.unsigned)
	}
	if fake.bodies[4] != string(msg.Payload) {
		t.Fatalf("body %s, want the envelope %s", fake.bodies[4], msg.Payload)
	}
}

func TestForwardPoisonsARejectedEventAtOnce(t *testing.T) {
	b, fake := newTestBackend(t, BackendConfig{}, 422)
	err := b.Forward()(clientEventMessage(t, false))
	if !router.IsPermanent(err) || !strings.Contains(err.Error(), "422") {
		t.Fatalf("Forward = %v, want a permanent error naming the 422", err)
	}
	if fake.count() != 1 {
		t.Fatalf("a rejected event was sent %d times", fake.count())
	}
}

func TestForwardPoisonsAfterRetriesAttempts(t *testing.T) {
	b, fake := newTestBackend(t, BackendConfig{Retries: 3, BreakerFailures: 100}, 500)
	err := b.Forward()(clientEventMessage(t, false))
	if !router.IsPermanent(err) || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("Forward = %v, want a permanent error after 3 attempts", err)
	}
	if fake.count() != 3 {
		t.Fatalf("backend got %d attempts, want 3", fake.count())
	}
}

func TestForwardWaitsWhileTheBreakerIsOpenWithoutCountingAttempts(t *testing.T) {
	// Two failures open the breaker for 50ms; Retries 3 would poison the
	// event if the refused tries counted.
	b, fake := newTestBackend(t, BackendConfig{Retries: 3, BreakerFailures: 2, BreakerTimeout: 50 * time.Millisecond,
		RetryInterval: 5 * time.Millisecond, RetryMaxInterval: 5 * time.Millisecond}, 500, 500, 204)
	if err := b.Forward()(clientEventMessage(t, false)); err != nil {
		t.Fatalf("Forward = %v, want delivered by the half-open probe", err)
	}
	if fake.count() != 3 {
		t.Fatalf("backend got %d requests, want 2 failures and the probe", fake.count())
	}
}

func TestForwardDefersTheEventWhenStopped(t *testing.T) {
	b, _ := newTestBackend(t, BackendConfig{RetryInterval: time.Hour, RetryMaxInterval: time.Hour}, 500)
	errc := make(chan error, 1)
	go func() { errc <- b.Forward()(clientEventMessage(t, false)) }()
	time.Sleep(50 * time.Millisecond) // the first attempt failed; waiting an hour
	b.Stop()
	select {
	case err := <-errc:
		if !router.IsDeferred(err) || router.IsPermanent(err) {
			t.Fatalf("Forward = %v, want deferred (left on the bus), not poisoned", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Forward did not return after Stop")
	}
}

func TestForwardSkipsRequestReplyEvents(t *testing.T) {
	b, fake := newTestBackend(t, BackendConfig{}, 204)
	if err := b.Forward()(clientEventMessage(t, true)); err != nil {
		t.Fatal(err)
	}
	if fake.count() != 0 {
		t.Fatal("a request/reply event was forwarded again")
	}
}

func TestRequestReturnsTheBackendsAnswerOrAClearError(t *testing.T) {
	env := schemas.NewClientEvent("u1", "s1", "i1", "quote", json.RawMessage(`1`))
	tests := []struct {
		name    string
		status  int
		want    string // error substring; empty: the answer
		timeout time.Duration
	}{
		{"answer", 200, "", 0},
		{"500", 500, "backend answered 500", 0},
		{"rejected", 403, "backend answered 403", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, fake := newTestBackend(t, BackendConfig{}, tt.status)
			v, err := b.Request(context.Background(), env)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m, _ := v.(map[string]any); m["answer"] != float64(42) {
					t.Fatalf("answer %v, want the backend's JSON", v)
				}
				if fake.replies != 1 {
					t.Fatalf("%s was not set", HeaderReplyExpected)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Request error %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		defer close(release)
		b, err := NewBackend(BackendConfig{URL: srv.URL, Timeout: 20 * time.Millisecond},
			NewBackendMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Request(context.Background(), env)
		if err == nil || err.Error() != "backend timeout: no answer within 20ms" {
			t.Fatalf("Request error %v, want the timeout", err)
		}
	})
	t.Run("breaker open", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(502)
		}))
		defer srv.Close()
		b, _ := NewBackend(BackendConfig{URL: srv.URL, BreakerFailures: 2, BreakerTimeout: time.Hour},
			NewBackendMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
		for range 2 {
			_, _ = b.Request(context.Background(), env)
		}
		_, err := b.Request(context.Background(), env)
		if err == nil || !strings.Contains(err.Error(), "circuit open") || calls.Load() != 2 {
			t.Fatalf("third Request: %v after %d calls, want circuit open after 2", err, calls.Load())
		}
	})
}

func TestIsRejection(t *testing.T) {
	for status, want := range map[int]bool{400: true, 401: true, 404: true, 413: true, 422: true, 408: false, 429: false, 500: false, 503: false} {
		if got := IsRejection(&StatusError{Status: status}); got != want {
			t.Errorf("IsRejection(%d) = %v, want %v", status, got, want)
		}
	}
	if IsRejection(errors.New("connection refused")) {
		t.Error("a network error is not a rejection")
	}
}
