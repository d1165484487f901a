package handlers

import "github.com/prometheus/client_golang/prometheus"

// HTTPMetrics are the REST API's Prometheus metrics.
type HTTPMetrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures prometheus.Counter
}

// NewHTTPMetrics registers the REST API's metrics with reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests answered, by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request durations, by method and route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "http_auth_failures_total", Help: "REST calls refused for a missing or wrong API key.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.authFailures)
	return m
}
