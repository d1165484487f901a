package handlers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// Headers of the requests made to BACKEND_URL.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with
	// BACKEND_SECRET, of the timestamp header's value, a dot and the body.
	HeaderSignature = "X-Signature"
	// HeaderTimestamp is when the request was signed, in Unix seconds; a
	// backend refuses an old one so that a recorded request cannot be
	// replayed.
	HeaderTimestamp = "X-Signature-Timestamp"
	// HeaderEventID is the envelope id: a backend that must not handle an
	// event twice (delivery is at least once) remembers it.
	HeaderEventID = "X-Event-Id"
	// HeaderReplyExpected is "true" on a request/reply request: the client
	// waits for the backend's JSON answer as its acknowledgement.
	HeaderReplyExpected = "X-Reply-Expected"
)

// maxBackendAnswer bounds what is read of a backend's answer.
const maxBackendAnswer = 1 << 20

// Sign returns the value of HeaderSignature for body signed at timestamp
// (Unix seconds) with secret.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks a request signed by Sign: the signature must match
// (compared in constant time) and the timestamp be within maxAge of now.
func VerifySignature(secret []byte, timestamp, signature string, body []byte, maxAge time.Duration, now time.Time) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("signature timestamp %q is not Unix seconds", timestamp)
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("signature timestamp is %s away from now (more than %s)", age.Round(time.Second), maxAge)
	}
	if !hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature)) {
		return errors.New("signature does not match")
	}
	return nil
}

// BackendConfig configures the client of BACKEND_URL.
type BackendConfig struct {
	// URL receives every client event as a POST of its JSON envelope.
	URL string
	// Secret signs the requests (HeaderSignature); empty sends them unsigned.
	Secret string
	// Timeout bounds one request.
	Timeout time.Duration
	// Retries is how many attempts a forwarded event gets when they fail
	// transiently (no answer, a timeout, 5xx, 408, 429) before it goes to
	// the poison topic; 0 retries until the backend takes it, so that
	// nothing is lost while the backend is down. Attempts the open breaker
	// refused are not counted: the event was not sent.
	Retries int
	// RetryInterval is the first wait between attempts; it doubles, with
	// jitter, up to RetryMaxInterval.
	RetryInterval    time.Duration
	RetryMaxInterval time.Duration
	// BreakerFailures consecutive failures open the circuit breaker: no
	// request is sent for BreakerTimeout, then one probe decides.
	BreakerFailures int
	BreakerTimeout  time.Duration
	// Client makes the requests; nil means a client of its own.
	Client *http.Client
}

func (c *BackendConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 200 * time.Millisecond
	}
	if c.RetryMaxInterval == 0 {
		c.RetryMaxInterval = 10 * time.Second
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerTimeout == 0 {
		c.BreakerTimeout = 5 * time.Second
	}
}

// Validate reports a configuration that cannot work.
func (c BackendConfig) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("backend: URL is required")
	case c.Retries < 0:
		return errors.New("backend: retries must not be negative")
	case c.RetryMaxInterval < c.RetryInterval:
		return errors.New("backend: the largest retry interval must not be below the first")
	}
	return nil
}

// Backend is the client of BACKEND_URL: it forwards the inbound topic's
// client events (Forward) and answers request/reply client events
// (Request), both through one circuit breaker.
type Backend struct {
	cfg     BackendConfig
	client  *http.Client
	breaker *gobreaker.CircuitBreaker[[]byte]
	metrics *BackendMetrics
	log     *slog.Logger
	stop    context.Context
	cancel  context.CancelFunc
}

// NewBackend returns the client of cfg.URL.
func NewBackend(cfg BackendConfig, metrics *BackendMetrics, log *slog.Logger) (*Backend, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	log = log.With("component", "backend")
	stop, cancel := context.WithCancel(context.Background())
	b := &Backend{cfg: cfg, client: client, metrics: metrics, log: log, stop: stop, cancel: cancel}
	b.breaker = gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
		Name:        "backend",
		MaxRequests: 1,
		Timeout:     cfg.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(cfg.BreakerFailures) },
		// A rejected event is the event's fault, not the backend's.
		IsSuccessful: func(err error) bool { return err == nil || IsRejection(err) },
		// Nor is an instance stopping.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			metrics.breakerState.Set(float64(to))
			level := slog.LevelWarn
			if to == gobreaker.StateClosed {
				level = slog.LevelInfo
			}
			log.Log(context.Background(), level, "backend circuit breaker", "from", from.String(), "to", to.String())
		},
	})
	return b, nil
}

// Stop makes forwarding give up its waits between attempts: the event in
// hand stays on the bus (Forward defers it). A request in flight finishes.
func (b *Backend) Stop() { b.cancel() }

// StatusError is a backend answer outside 2xx.
type StatusError struct {
	Status int
	// Body is the start of the answer, for the logs and the poison reason.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("backend answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// IsRejection reports whether err is the backend refusing the event itself
// (a 4xx other than 408 Request Timeout and 429 Too Many Requests): sending
// it again cannot help.
func IsRejection(err error) bool {
	var s *StatusError
	return errors.As(err, &s) && s.Status >= 400 && s.Status < 500 &&
		s.Status != http.StatusRequestTimeout && s.Status != http.StatusTooManyRequests
}

// errBreakerOpen reports that the breaker refused to send.
func breakerRefused(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}

// post sends body to the backend through the breaker and returns the
// answer's body.
func (b *Backend) post(ctx context.Context, path string, id string, body []byte, replyExpected bool) ([]byte, error) {
	start := time.Now()
	answer, err := b.breaker.Execute(func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		defer cancel()
		return b.send(ctx, id, body, replyExpected)
	})
	b.metrics.observe(path, err, time.Since(start))
	return answer, err
}

func (b *Backend) send(ctx context.Context, id string, body []byte, replyExpected bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("backend request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "web3-socket")
	req.Header.Set(HeaderEventID, id)
	if replyExpected {
		req.Header.Set(HeaderReplyExpected, "true")
	}
	if b.cfg.Secret != "" {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign([]byte(b.cfg.Secret), ts, body))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("backend answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &StatusError{Status: resp.StatusCode, Body: truncate(string(answer), 256)}
	}
	if len(answer) > maxBackendAnswer {
		return nil, fmt.Errorf("backend answer is larger than %d bytes", maxBackendAnswer)
	}
	return answer, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Forward returns the handler of the inbound topic's work queue. It POSTs
// each client event to the backend and returns once the backend took it
// (2xx), retrying failed attempts with exponential backoff and jitter and
// holding the event while the breaker is open: the events behind it wait on
// the bus, in order. An event the backend rejects (IsRejection), or one that
// failed Retries attempts (when Retries is set), goes to the poison topic
// with the reason. Events answered by request/reply are skipped.
func (b *Backend) Forward() router.HandlerFunc {
	return func(msg *message.Message) error {
		if msg.Metadata.Get(schemas.MetaRequestReply) == "true" {
			return nil
		}
		env, err := decode(msg, schemas.KindClientEvent)
		if err != nil {
			return err
		}
		if b.stop.Err() != nil {
			return router.Defer(fmt.Errorf("forward %s: instance stopping: %w", env.ID, context.Canceled))
		}
		body := msg.Payload
		retry := backoff.ExponentialBackOff{
			InitialInterval:     b.cfg.RetryInterval,
			RandomizationFactor: 0.5,
			Multiplier:          2,
			MaxInterval:         b.cfg.RetryMaxInterval,
		}
		retry.Reset()
		attempts := 0
		for {
			// The request is not tied to b.stop: one in flight when the
			// instance stops finishes, rather than leave the backend guessing.
			_, err := b.post(context.WithoutCancel(msg.Context()), pathForward, env.ID, body, false)
			switch {
			case err == nil:
				return nil
			case IsRejection(err):
				b.log.Warn("backend rejected an event; poisoned", "id", env.ID, "event", env.Event, "error", err)
				return router.Permanent(fmt.Errorf("forward %s to backend: %w", env.ID, err))
			case breakerRefused(err):
				// Not an attempt: the event was not sent.
			default:
				attempts++
				b.metrics.retries.Inc()
				if b.cfg.Retries > 0 && attempts >= b.cfg.Retries {
					b.log.Warn("event failed its last attempt; poisoned", "id", env.ID, "event", env.Event, "attempts", attempts, "error", err)
					return router.Permanent(fmt.Errorf("forward %s to backend: %d attempts failed, the last: %w", env.ID, attempts, err))
				}
				b.log.Debug("forward failed; will retry", "id", env.ID, "attempt", attempts, "error", err)
			}
			wait := time.NewTimer(retry.NextBackOff())
			select {
			case <-wait.C:
			case <-b.stop.Done():
				wait.Stop()
				return router.Defer(fmt.Errorf("forward %s: instance stopping: %w", env.ID, context.Canceled))
			}
		}
	}
}

// Request sends a client event to the backend as a request/reply request
// and returns the backend's JSON answer, which becomes the client's
// acknowledgement. Its errors are worded for the client.
func (b *Backend) Request(ctx context.Context, env *schemas.Envelope) (any, error) {
	body, err := schemas.Encode(env)
	if err != nil {
		return nil, err
	}
	answer, err := b.post(ctx, pathReply, env.ID, body, true)
	switch {
	case err == nil:
	case breakerRefused(err):
		return nil, errors.New("backend unavailable (circuit open), try again later")
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("backend timeout: no answer within %s", b.cfg.Timeout)
	case errors.As(err, new(*StatusError)):
		return nil, err
	default:
		b.log.Debug("request/reply failed", "id", env.ID, "error", err)
		return nil, errors.New("backend unreachable")
	}
	var v any
	if err := json.Unmarshal(answer, &v); err != nil {
		return nil, errors.New("backend answer is not JSON")
	}
	return v, nil
}
