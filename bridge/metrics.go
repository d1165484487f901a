package bridge

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Types of socket_errors_total.
const (
	errAuth            = "auth"             // a refused connection
	errClientEvent     = "client_event"     // a client event answered {ok: false}
	errPublish         = "publish"          // the bus refused a client event
	errSlowConsumer    = "slow_consumer"    // a socket disconnected for its write queue
	errRateLimited     = "rate_limited"     // a client event over the user's budget
	errConnectionLimit = "connection_limit" // a connection past the per-user bound
	errRecovery        = "recovery"         // missed messages of a recovered client not read
)

// Metrics are the Socket.IO edge's Prometheus metrics.
type Metrics struct {
	connectionsTotal  prometheus.Counter
	connectionsActive prometheus.Gauge
	messagesSent      prometheus.Counter
	messagesReceived  prometheus.Counter
	authFailures      *prometheus.CounterVec
	deliveryLatency   prometheus.Histogram
	batchSize         prometheus.Histogram
	slowConsumers     prometheus.Counter
	recovered         prometheus.Counter
	recoveredMessages prometheus.Counter
	errors            *prometheus.CounterVec
}

// NewMetrics registers the edge's metrics with reg. errors is the shared
// socket_errors_total counter, labelled by type.
func NewMetrics(reg prometheus.Registerer, errors *prometheus.CounterVec) *Metrics {
	m := &Metrics{
		connectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "socket_connections_total", Help: "Socket.IO connections accepted.",
		}),
		connectionsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "socket_connections_active", Help: "Socket.IO connections open now.",
		}),
		messagesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "socket_messages_sent_total", Help: "Events written to sockets (one per recipient socket).",
		}),
		messagesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "socket_messages_received_total", Help: "Events received from clients.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "socket_auth_failures_total", Help: "Refused connections, by reason.",
		}, []string{"reason"}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "socket_delivery_latency_seconds", Help: "Time from an envelope's ts to its local delivery.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "socket_delivery_batch_size", Help: "Envelopes delivered per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "socket_slow_consumers_total", Help: "Sockets disconnected because their write queue passed SOCKET_QUEUE_MAX_BYTES.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "socket_recovered_total", Help: "Reconnected clients whose connection state (id, rooms, missed messages) was recovered.",
		}),
		recoveredMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "socket_recovered_messages_total", Help: "Missed messages sent to recovered clients.",
		}),
		errors: errors,
	}
	// Every type is exported from the start, at zero, so that dashboards and
	// alerts see the series before the first error.
	for _, t := range []string{errAuth, errClientEvent, errPublish, errSlowConsumer, errRateLimited, errConnectionLimit, errRecovery} {
		errors.WithLabelValues(t)
	}
	for _, r := range []error{ErrMissingToken, ErrInvalidToken, ErrTokenExpired} {
		m.authFailures.WithLabelValues(authReason(r))
	}
	reg.MustRegister(m.connectionsTotal, m.connectionsActive, m.messagesSent, m.messagesReceived,
		m.authFailures, m.deliveryLatency, m.batchSize, m.slowConsumers, m.recovered, m.recoveredMessages)
	return m
}

// authReason is the auth failure label of a refusal: "missing token", …
func authReason(err error) string { return strings.TrimPrefix(err.Error(), "unauthorized: ") }
