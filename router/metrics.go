package router

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what goes through the bus.
type Metrics struct {
	published     *prometheus.CounterVec
	publishErrors *prometheus.CounterVec
	consumed      *prometheus.CounterVec
	poisoned      *prometheus.CounterVec
	handlerErrors *prometheus.CounterVec
	lagSeconds    *prometheus.GaugeVec
	trimmedUnread *prometheus.CounterVec
	replayed      prometheus.Counter
}

// NewMetrics registers the bus metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bus_messages_published_total", Help: "Messages published on the bus, by topic.",
		}, []string{"topic"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bus_publish_errors_total", Help: "Publish calls the bus refused, by topic.",
		}, []string{"topic"}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bus_messages_consumed_total", Help: "Messages consumed from the bus, by topic.",
		}, []string{"topic"}),
		poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bus_messages_poisoned_total", Help: "Messages sent to the poison topic, by the topic they came from.",
		}, []string{"topic"}),
		handlerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bus_handler_errors_total", Help: "Handler attempts that failed, by topic.",
		}, []string{"topic"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bus_consumer_lag_seconds", Help: "How far this instance's reader is behind the newest entry of a stream, in seconds of entry ids.",
		}, []string{"topic"}),
		trimmedUnread: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bus_trimmed_unread_total", Help: "Times stream trimming removed entries this instance had not read yet.",
		}, []string{"topic"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bus_replayed_total", Help: "Entries this instance added again after Redis restarted as a new server (they may be seen twice).",
		}),
	}
	reg.MustRegister(m.published, m.publishErrors, m.consumed, m.poisoned, m.handlerErrors, m.lagSeconds, m.trimmedUnread, m.replayed)
	return m
}
