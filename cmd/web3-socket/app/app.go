// Package app wires one web3-socket instance together: configuration, the
// bus and its router, the Socket.IO bridge, the REST API and the metrics.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/web3-socket/web3-socket/bridge"
	"github.com/web3-socket/web3-socket/handlers"
	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// App is one running instance.
type App struct {
	cfg      Config
	log      *slog.Logger
	bus      router.Bus
	topics   router.Topics
	router   *router.Router
	bridge   *bridge.Bridge
	api      *handlers.API
	pub      *router.Publisher
	presence *handlers.Presence
	backend  *handlers.Backend // nil without BACKEND_URL
	server   *http.Server
	// audit copies the bus traffic to Kafka (AUDIT_KAFKA_BROKERS); nil
	// when off.
	audit *router.AuditMirror
}

// backendGroup is the consumer group of the BACKEND_URL forwarder, shared by
// every instance so that each client event is forwarded once.
const backendGroup = "backend-forwarder"

// clusterSize counts the live instances, this one included.
func clusterSize(c *router.Cluster, self string) int {
	n := 1
	for _, m := range c.Members() {
		if m.Instance != self {
			n++
		}
	}
	return n
}

// heartbeat announces this instance and its counts on the control topic
// every interval until ctx is done.
func (a *App) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.cfg.ClusterHeartbeat)
	defer t.Stop()
	for {
		st := a.bridge.LocalStats()
		env := schemas.NewControl(schemas.ActionHeartbeat, "", "", a.cfg.InstanceID)
		env.Data = handlers.HeartbeatData(st.Connections, st.Users, st.Rooms)
		pctx, cancel := context.WithTimeout(ctx, a.cfg.ClusterHeartbeat)
		if err := a.pub.Publish(pctx, a.topics.Control, env); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat not published", "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// New builds an instance from cfg; Serve runs it.
func New(cfg Config, log *slog.Logger, version string) (*App, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	socketErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "socket_errors_total", Help: "Errors at the Socket.IO edge, by type.",
	}, []string{"type"})
	cluster := router.NewCluster(3 * cfg.ClusterHeartbeat)
	reg.MustRegister(socketErrors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cluster_instances", Help: "Instances in the cluster as this instance sees it (itself included).",
	}, func() float64 { return float64(clusterSize(cluster, cfg.InstanceID)) }))

	busMetrics := router.NewMetrics(reg)
	bus, err := router.NewBus(router.BusConfig{Kind: cfg.Bus, Redis: router.RedisConfig{
		URL: cfg.RedisURL, Host: cfg.RedisHost, Port: cfg.RedisPort, Password: cfg.RedisPassword, DB: cfg.RedisDB,
		TLS: cfg.RedisTLS, StreamMaxLen: cfg.RedisStreamMaxLen, Instance: cfg.InstanceID, ClaimIdle: cfg.RedisClaimIdle,
		ReadInterval: cfg.RedisReadInterval,
	}, Kafka: cfg.kafkaConfig(cfg.KafkaBrokers), Metrics: busMetrics, LogWindow: cfg.RecoveryWindow}, log)
	if err != nil {
		return nil, err
	}
	topics := router.NewTopics(cfg.TopicPrefix)
	pub := router.NewPublisher(bus.Publisher(), busMetrics)
	var missed bridge.MissedLog
	if busLog, ok := router.LogOf(bus); ok && cfg.RecoveryWindow > 0 {
		missed = handlers.OutboundLog{Log: busLog, Topic: topics.Outbound}
	} else if cfg.RecoveryWindow > 0 {
		log.Warn("connection-state recovery is off: this bus keeps no log", "bus", bus.Kind())
	}

	var backend *handlers.Backend
	var requester bridge.Requester // stays a nil interface without a backend
	if cfg.BackendURL != "" {
		backend, err = handlers.NewBackend(handlers.BackendConfig{
			URL: cfg.BackendURL, Secret: cfg.BackendSecret, Timeout: cfg.BackendTimeout, Retries: cfg.BackendRetries,
			RetryInterval: cfg.BackendRetryInterval, RetryMaxInterval: cfg.BackendRetryMaxInterval,
			BreakerFailures: cfg.BackendBreakerFailures, BreakerTimeout: cfg.BackendBreakerTimeout,
		}, handlers.NewBackendMetrics(reg), log)
		if err != nil {
			_ = bus.Close()
			return nil, err
		}
		requester = backend
	}

	edge, err := bridge.New(bridge.Config{
		Instance:              cfg.InstanceID,
		Auth:                  bridge.AuthConfig{Secret: cfg.JWTSecret, PublicKeyPEM: cfg.JWTPublicKey, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience},
		CORSOrigin:            cfg.CORSOrigin,
		MaxPayloadBytes:       cfg.MaxPayloadBytes,
		PingInterval:          cfg.PingInterval,
		PingTimeout:           cfg.PingTimeout,
		OutboundTopic:         topics.Outbound,
		SocketQueueMaxBytes:   cfg.SocketQueueMaxBytes,
		EventRate:             cfg.EventRateLimit,
		EventBurst:            cfg.EventRateBurst,
		MaxConnectionsPerUser: cfg.MaxConnectionsPerUser,
		InboundTopic:          topics.Inbound,
		RecoveryWindow:        cfg.RecoveryWindow,
		Log:                   missed,
		Sessions:              router.StoreOf(bus),
		SessionPrefix:         cfg.TopicPrefix + "session:",
		Backend:               requester,
	}, pub, bridge.NewMetrics(reg, socketErrors), log)
	if err != nil {
		_ = bus.Close()
		return nil, err
	}

	rt, err := router.New(router.Config{Poison: topics.Poison, CloseTimeout: cfg.ShutdownTimeout / 2}, bus, busMetrics, log)
	if err != nil {
		_ = bus.Close()
		return nil, err
	}
	// replayed catches the copies of this service's own envelopes that the
	// bus adds again after its broker lost data (router/replay_redis.go).
	replayed := router.ReplayDedupe(bus)
	var seen router.Dedupe
	if cfg.IdempotencyWindow > 0 {
		seen = router.NewDedupe(bus, cfg.TopicPrefix, cfg.IdempotencyWindow)
	}
	outbound := handlers.NewOutbound(edge, seen, replayed)
	rt.HandleFanOutBatches("deliver", topics.Outbound, outbound)
	if backend != nil {
		rt.HandleWorkQueue("backend", topics.Inbound, backendGroup, backend.Forward())
	}
	presence := handlers.NewPresence(handlers.PresenceConfig{Instance: cfg.InstanceID, ControlTopic: topics.Control},
		pub, edge, cluster, log)
	rt.HandleFanOut("control", topics.Control, handlers.SkipReplayed(handlers.Control(edge, cluster, presence), replayed))

	api, err := handlers.NewAPI(handlers.APIConfig{
		Version:       version,
		Instance:      cfg.InstanceID,
		Keys:          cfg.APIKeys,
		MaxBodyBytes:  cfg.MaxPayloadBytes,
		RateLimit:     cfg.APIRateLimit,
		RateBurst:     cfg.APIRateBurst,
		OutboundTopic: topics.Outbound,
		ControlTopic:  topics.Control,
	}, pub, bus, edge, presence, handlers.NewHTTPMetrics(reg), log)
	if err != nil {
		_ = bus.Close()
		return nil, err
	}

	var audit *router.AuditMirror
	if len(cfg.AuditKafkaBrokers) > 0 && bus.Kind() != router.KindKafka {
		// A Redis bus is read with a consumer group of its own (each
		// envelope copied once, and the stream holds what Kafka could not
		// take yet); the memory bus as one more fan-out subscriber.
		src, block := bus.FanOut(), false
		if bus.Kind() == router.KindRedis {
			src, block = bus.WorkQueue(router.AuditGroup), true
		}
		audit, err = router.NewAuditMirror(router.AuditConfig{Kafka: cfg.kafkaConfig(cfg.AuditKafkaBrokers),
			Topics: []string{topics.Inbound, topics.Outbound}, Block: block, FlushTimeout: cfg.ShutdownTimeout / 4}, src, reg, log)
		if err != nil {
			_ = bus.Close()
			return nil, err
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", edge.Handler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	api.Register(mux)

	return &App{
		cfg: cfg, log: log, bus: bus, topics: topics, router: rt, bridge: edge, api: api, pub: pub, presence: presence,
		backend: backend, audit: audit,
		server: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}, nil
}

// kafkaConfig is the Kafka client configuration for brokers (the bus's or
// the audit mirror's).
func (c Config) kafkaConfig(brokers []string) router.KafkaConfig {
	return router.KafkaConfig{
		Brokers: brokers, ClientID: c.KafkaClientID, TLS: c.KafkaTLS, SASLMechanism: c.KafkaSASLMechanism,
		SASLUser: c.KafkaSASLUsername, SASLPassword: c.KafkaSASLPassword, Partitions: int32(c.KafkaPartitions),
		FetchMinBytes: int32(c.KafkaFetchMinBytes), FetchMaxWait: c.KafkaFetchMaxWait,
	}
}

// Bus returns the instance's bus (tests publish and subscribe on it directly).
func (a *App) Bus() router.Bus { return a.bus }

// Topics returns the instance's topic names.
func (a *App) Topics() router.Topics { return a.topics }

// Run listens on the configured address and serves until ctx is done.
func Run(ctx context.Context, cfg Config, log *slog.Logger, version string) error {
	a, err := New(cfg, log, version)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		_ = a.bus.Close()
		return fmt.Errorf("listen: %w", err)
	}
	return a.Serve(ctx, ln)
}

// Serve runs the router, the delivery loop and the HTTP server on ln until
// ctx is done, then shuts down gracefully within ShutdownTimeout: it stops
// accepting, lets REST calls in flight answer, drains the router and the
// delivery queue, and closes the sockets.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 2)

	routerCtx, stopRouter := context.WithCancel(context.Background())
	defer stopRouter()
	wg.Go(func() {
		if err := a.router.Run(routerCtx); err != nil {
			errc <- fmt.Errorf("router: %w", err)
		}
	})
	select {
	case <-a.router.Running():
	case err := <-errc:
		_ = ln.Close()
		return err
	case <-ctx.Done():
		_ = ln.Close()
		_ = a.router.Close()
		return a.bus.Close()
	}

	auditCtx, stopAudit := context.WithCancel(context.Background())
	auditDone := make(chan struct{})
	go func() {
		defer close(auditDone)
		if a.audit == nil {
			return
		}
		if err := a.audit.Run(auditCtx); err != nil {
			a.log.Error("audit mirror not running", "error", err)
		}
	}()

	deliveryCtx, stopDelivery := context.WithCancel(context.Background())
	deliveryDone := make(chan struct{})
	go func() {
		defer close(deliveryDone)
		a.bridge.RunDelivery(deliveryCtx)
	}()
	wg.Go(func() {
		if err := a.server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	})
	clusterCtx, stopCluster := context.WithCancel(context.Background())
	wg.Go(func() { a.heartbeat(clusterCtx) })
	wg.Go(func() { a.presence.Run(clusterCtx) })
	wg.Go(func() { a.bridge.RunSessions(clusterCtx) })
	wg.Go(func() { reclaimIdleMemory(clusterCtx, memoryCheckInterval, a.log) })
	a.log.Info("listening", "addr", ln.Addr().String(), "bus", a.bus.Kind(), "instance", a.cfg.InstanceID)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}

	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	a.api.Drain()
	a.bridge.Drain()
	// Shutdown closes the listener at once, then waits for requests; long
	// polls end when the bridge closes the sockets below.
	httpDone := make(chan error, 1)
	go func() { httpDone <- a.server.Shutdown(shutdownCtx) }()
	var errs []error
	if err := a.api.Wait(shutdownCtx); err != nil {
		errs = append(errs, err)
	}
	stopCluster() // after the REST calls, which may be waiting for presence replies
	if a.backend != nil {
		// An event waiting to be retried stays on the bus for the next
		// forwarder, instead of holding up the router's close.
		a.backend.Stop()
	}
	if d, ok := a.bus.(router.Drainer); ok {
		if err := d.Drain(shutdownCtx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.router.Close(); err != nil {
		errs = append(errs, fmt.Errorf("router: %w", err))
	}
	stopDelivery()
	<-deliveryDone
	// After the router: what was published until now is mirrored too.
	stopAudit()
	<-auditDone
	a.bridge.Close()
	if err := <-httpDone; err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
		_ = a.server.Close()
	}
	stopRouter()
	if err := a.bus.Close(); err != nil {
		errs = append(errs, fmt.Errorf("bus: %w", err))
	}
	if runErr != nil {
		return runErr
	}
	if len(errs) > 0 {
		a.log.Warn("shutdown was not clean", "error", errors.Join(errs...))
	}
	a.log.Info("stopped")
	return nil
}
