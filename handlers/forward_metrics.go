package handlers

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The paths to the backend, as metric labels.
const (
	pathForward = "forward"
	pathReply   = "request_reply"
)

// BackendMetrics counts what goes to BACKEND_URL.
type BackendMetrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	retries      prometheus.Counter
	breakerState prometheus.Gauge
}

// NewBackendMetrics registers the backend metrics with reg.
func NewBackendMetrics(reg prometheus.Registerer) *BackendMetrics {
	m := &BackendMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backend_requests_total",
			Help: "Requests to BACKEND_URL by path (forward, request_reply) and outcome (ok, rejected, failed, timeout, circuit_open).",
		}, []string{"path", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backend_request_duration_seconds", Help: "Durations of the requests to BACKEND_URL, by path.",
			Buckets: prometheus.DefBuckets,
		}, []string{"path"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backend_forward_retries_total", Help: "Forwarding attempts that failed and were retried or gave up.",
		}),
		breakerState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backend_circuit_state", Help: "The backend circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.retries, m.breakerState)
	return m
}

func (m *BackendMetrics) observe(path string, err error, took time.Duration) {
	outcome := "ok"
	switch {
	case err == nil:
	case breakerRefused(err):
		m.requests.WithLabelValues(path, "circuit_open").Inc()
		return
	case IsRejection(err):
		outcome = "rejected"
	case errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
	default:
		outcome = "failed"
	}
	m.requests.WithLabelValues(path, outcome).Inc()
	m.duration.WithLabelValues(path).Observe(took.Seconds())
}
