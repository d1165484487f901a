// Package bridge is the Socket.IO edge: the server, JWT authentication, the
// connection registry, rooms, client events and batched local delivery.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/time/rate"

	"github.com/web3-socket/web3-socket/schemas"
)

// Publisher puts envelopes on the bus. A nil error means the bus has them.
type Publisher interface {
	Publish(ctx context.Context, topic string, envs ...*schemas.Envelope) error
}

// Requester sends a client event to the backend and returns its answer,
// which becomes the client's acknowledgement (request/reply). Its errors are
// worded for the client.
type Requester interface {
	Request(ctx context.Context, env *schemas.Envelope) (any, error)
}

// Config configures the Bridge.
type Config struct {
	// Instance names this instance in the envelopes it produces.
	Instance string
	Auth     AuthConfig
	// CORSOrigin is "*" or a comma-separated list of allowed origins.
	CORSOrigin string
	// MaxPayloadBytes bounds one packet from a client.
	MaxPayloadBytes int64
	PingInterval    time.Duration
	PingTimeout     time.Duration
	// OutboundTopic receives send_message deliveries; InboundTopic receives
	// every other client event.
	OutboundTopic string
	InboundTopic  string
	// PublishTimeout bounds one publish made for a client event.
	PublishTimeout time.Duration
	// QueueSize is how many envelopes may wait for local delivery before the
	// bus consumer is held back (1,024: a deeper queue only adds latency
	// once delivery is the bottleneck); MaxBatch is how many are delivered
	// at once.
	QueueSize int
	MaxBatch  int
	// SocketQueueMaxBytes bounds what may wait to be written to one
	// WebSocket; a socket over it is disconnected as a slow consumer.
	SocketQueueMaxBytes int
	// WriteTimeout bounds one write to a WebSocket.
	WriteTimeout time.Duration
	// EventRate and EventBurst are each user's token bucket for client
	// events, shared by all of its sockets; EventRate 0 turns it off.
	EventRate  float64
	EventBurst int
	// MaxConnectionsPerUser bounds one user's sockets on this instance; 0 is
	// no bound.
	MaxConnectionsPerUser int
	// RecoveryWindow is how long a disconnected client may come back (here or
	// to another instance) and get its id, rooms and what it missed; it needs
	// Log and Sessions. 0 turns connection-state recovery off.
	RecoveryWindow time.Duration
	// Log reads the outbound topic's log; Sessions keeps the sessions, under
	// keys starting with SessionPrefix.
	Log           MissedLog
	Sessions      SessionStore
	SessionPrefix string
	// Backend, when set, answers the client events whose client asked for an
	// acknowledgement (request/reply); nil acknowledges them {ok, id} once
	// the bus has them.
	Backend Requester
}

func (c *Config) setDefaults() {
	if c.CORSOrigin == "" {
		c.CORSOrigin = "*"
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = 1 << 20
	}
	if c.PingInterval == 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 20 * time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.QueueSize == 0 {
		c.QueueSize = 1024
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.SocketQueueMaxBytes == 0 {
		c.SocketQueueMaxBytes = 1 << 20
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.EventRate > 0 && c.EventBurst == 0 {
		c.EventBurst = int(max(1, 2*c.EventRate))
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.OutboundTopic == "" || c.InboundTopic == "" {
		return errors.New("bridge: outbound and inbound topics are required")
	}
	return nil
}

// Bridge is the Socket.IO server of one instance.
type Bridge struct {
	cfg      Config
	io       *socket.Server
	handler  http.Handler
	verifier *Verifier
	pub      Publisher
	log      *slog.Logger
	metrics  *Metrics
	registry *registry
	queue    chan queued
	draining atomic.Bool
	// poller watches the idle WebSockets; nil without epoll.
	poller *wsPoller
	// inflight counts the envelopes queued or being delivered; delivering
	// is held by whoever delivers, so that deliveries keep their order.
	inflight   atomic.Int64
	delivering sync.Mutex

	// sessions is nil when clients cannot recover; gates holds the sockets
	// being recovered (*socket.Socket → *recoveryGate), recovering counts
	// them; recoveries tracks the goroutines that recover them.
	sessions   *sessions
	gates      sync.Map
	recovering atomic.Int32
	recoveries sync.WaitGroup
	ctx        context.Context
	stop       context.CancelFunc
	// requests are the request/reply calls in flight; Close ends them.
	requestsMu     sync.Mutex
	requestsClosed bool
	requests       sync.WaitGroup
	stopRequests   context.CancelFunc
	requestsScope  context.Context
}

// New returns a Bridge that publishes client events with pub.
func New(cfg Config, pub Publisher, metrics *Metrics, log *slog.Logger) (*Bridge, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	verifier, err := NewVerifier(cfg.Auth)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		cfg:      cfg,
		verifier: verifier,
		pub:      pub,
		log:      log.With("component", "bridge"),
		metrics:  metrics,
		registry: newRegistry(limiterFactory(cfg.EventRate, cfg.EventBurst)),
		queue:    make(chan queued, cfg.QueueSize),
	}
	b.ctx, b.stop = context.WithCancel(context.Background())
	b.requestsScope, b.stopRequests = context.WithCancel(context.Background())

	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetPingInterval(cfg.PingInterval)
	opts.SetPingTimeout(cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(cfg.MaxPayloadBytes)
	opts.SetCors(&types.Cors{Origin: corsOrigin(cfg.CORSOrigin), Credentials: cfg.CORSOrigin != "*"})
	// Without a poller (no epoll) each WebSocket keeps a reader waiting.
	poller, err := newWSPoller()
	if err != nil {
		b.log.Info("idle WebSockets keep a reader goroutine each", "reason", err)
	}
	b.poller = poller
	opts.SetTransports(types.NewSet[transports.TransportCtor](&transports.PollingBuilder{}, &wsTransportCtor{limits: &wsLimits{
		maxQueueBytes:  cfg.SocketQueueMaxBytes,
		writeTimeout:   cfg.WriteTimeout,
		onSlowConsumer: b.onSlowConsumer,
		maxPayload:     cfg.MaxPayloadBytes,
		heartbeat:      cfg.PingInterval + cfg.PingTimeout,
		poller:         poller,
	}}))
	if cfg.RecoveryWindow > 0 && cfg.Log != nil && cfg.Sessions != nil {
		b.sessions = newSessions(cfg.Sessions, cfg.SessionPrefix, cfg.RecoveryWindow, b.log)
		recovery := socket.DefaultConnectionStateRecovery()
		recovery.SetMaxDisconnectionDuration(cfg.RecoveryWindow.Milliseconds())
		recovery.SetSkipMiddlewares(false) // a recovered client shows a valid token too
		opts.SetConnectionStateRecovery(recovery)
		opts.SetAdapter(&recoveryAdapterBuilder{b: b})
	}
	b.io = socket.NewServer(nil, opts)
	b.io.Use(b.authenticate)
	if err := b.io.On("connection", b.onConnection); err != nil {
		if poller != nil {
			poller.close()
		}
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b.handler = b.io.ServeHandler(opts)
	return b, nil
}

func corsOrigin(origin string) any {
	if origin == "*" {
		return "*"
	}
	var origins []string
	for _, o := range strings.Split(origin, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	return origins
}

func limiterFactory(perSecond float64, burst int) func() *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return func() *rate.Limiter { return rate.NewLimiter(rate.Limit(perSecond), burst) }
}

// ErrTooManyConnections refuses a connection past MaxConnectionsPerUser.
var ErrTooManyConnections = errors.New("forbidden: too many connections for this user")

// Handler serves /socket.io/.
func (b *Bridge) Handler() http.Handler { return b.handler }

// Drain makes the bridge refuse new client events while the instance shuts
// down; connected clients stay until Close.
func (b *Bridge) Drain() { b.draining.Store(true) }

// Close disconnects every client. Clients see a transport close and, being
// free to, reconnect to another instance (which recovers them).
// Request/reply calls in flight are ended first; their clients get an
// error acknowledgement.
func (b *Bridge) Close() {
	b.requestsMu.Lock()
	b.requestsClosed = true
	b.requestsMu.Unlock()
	b.stopRequests()
	b.requests.Wait()
	done := make(chan struct{})
	b.io.Close(func(error) { close(done) })
	<-done
	if b.poller != nil {
		b.poller.close() // after the sockets it watched
	}
	b.stop()
	b.recoveries.Wait()
}

// RunSessions keeps the sessions of connected clients in the session store
// until ctx is done; without connection-state recovery it returns at once.
func (b *Bridge) RunSessions(ctx context.Context) {
	if b.sessions != nil {
		b.sessions.run(ctx)
	}
}

func (b *Bridge) onSlowConsumer(sid string, queued int) {
	b.metrics.slowConsumers.Inc()
	b.metrics.errors.WithLabelValues(errSlowConsumer).Inc()
	b.log.Warn("slow consumer disconnected", "engine_sid", sid, "queued_bytes", queued, "limit", b.cfg.SocketQueueMaxBytes)
}

func (b *Bridge) authenticate(s *socket.Socket, next func(*socket.ExtendedError)) {
	token := tokenFrom(s.Handshake().Auth, s.Request().Headers().Peek("Authorization"))
	claims, err := b.verifier.Verify(token)
	if err != nil {
		reason := ErrInvalidToken
		switch {
		case errors.Is(err, ErrMissingToken):
			reason = ErrMissingToken
		case errors.Is(err, ErrTokenExpired):
			reason = ErrTokenExpired
		}
		b.metrics.authFailures.WithLabelValues(authReason(reason)).Inc()
		b.metrics.errors.WithLabelValues(errAuth).Inc()
		b.log.Debug("connection refused", "reason", reason.Error(), "address", s.Handshake().Address)
		next(socket.NewExtendedError(reason.Error(), nil))
		return
	}
	if limit := b.cfg.MaxConnectionsPerUser; limit > 0 && b.registry.connections(claims.Subject) >= limit {
		// Checked before the socket is added, so two connections racing for
		// the last place may both get it: the bound is exact to within the
		// connections made at the same instant.
		b.metrics.errors.WithLabelValues(errConnectionLimit).Inc()
		next(socket.NewExtendedError(ErrTooManyConnections.Error(), nil))
		return
	}
	if restored, recovered := s.Data().(restoredUser); s.Recovered() && (!recovered || string(restored) != claims.Subject) {
		// A private session id is the client's secret, but a session goes
		// only to the user it belongs to.
		b.metrics.errors.WithLabelValues(errAuth).Inc()
		next(socket.NewExtendedError(ErrSessionNotYours.Error(), nil))
		return
	}
	// What the bridge reads of the token: its subject and rooms.
	kept := &Claims{Rooms: claims.Rooms}
	kept.Subject = claims.Subject
	s.SetData(kept)
	// The handshake is kept for the socket's life. The token is not needed
	// once verified (and is a credential better not held), nor is the map
	// that held only it. Its copies of the request's headers and query are
	// a second copy of what s.Request() keeps, which this service reads
	// instead: about 1 KiB per connection with a browser's headers.
	if h := s.Handshake(); h != nil {
		if delete(h.Auth, "token"); len(h.Auth) == 0 {
			h.Auth = nil
		}
		h.Headers, h.Query = nil, nil
	}
	// The library sends the client its CONNECT packet before it runs the
	// "connection" handlers, so a client may act (and a backend push to it)
	// before onConnection. The socket is therefore registered here, before
	// CONNECT: whatever is published once the client knows it is connected
	// finds it. A connection that closes before it connects never reaches
	// "disconnect"; its engine socket's close removes it instead.
	user := claims.Subject
	if s.Recovered() {
		// Live deliveries wait until what it missed is read (onConnection).
		b.gate(s)
	}
	s.Join(userRoom(user))
	b.registry.add(user, s)
	_ = s.Conn().Once("close", func(...any) {
		if !s.Connected() {
			b.registry.remove(user, s.Id())
			b.ungate(s)
		}
	})
	next(nil)
}

// ErrSessionNotYours refuses a recovered session whose user is not the token's.
var ErrSessionNotYours = errors.New("forbidden: this session belongs to another user")

func (b *Bridge) onConnection(args ...any) {
	s, ok := args[0].(*socket.Socket)
	if !ok {
		return
	}
	claims, _ := s.Data().(*Claims)
	if claims == nil {
		s.Disconnect(true)
		return
	}
	user := claims.Subject
	b.metrics.connectionsTotal.Inc()
	b.metrics.connectionsActive.Inc()
	b.log.Debug("connected", "user", user, "socket", string(s.Id()), "transport", s.Conn().Transport().Name())

	s.OnAny(func(args ...any) { b.onEvent(s, claims, args) })
	if b.sessions != nil {
		b.sessions.connected(s, user)
		if s.Recovered() {
			offset, _ := s.Handshake().Auth["offset"].(string)
			b.recoveries.Add(1)
			go func() {
				defer b.recoveries.Done()
				b.recover(b.ctx, s, user, offset)
			}()
		}
	}
	_ = s.On("disconnect", func(args ...any) {
		b.registry.remove(user, s.Id())
		b.ungate(s)
		b.metrics.connectionsActive.Dec()
		var reason string
		if len(args) > 0 {
			reason, _ = args[0].(string)
		}
		if b.sessions != nil && !socket.RECOVERABLE_DISCONNECT_REASONS.Has(reason) {
			// The client left for good (or was sent away): its session goes.
			// A recoverable close has already kept it (PersistSession).
			b.sessions.disconnected(socketPid(s), s.Id(), nil, false)
		}
		level := slog.LevelDebug
		if reason == "ping timeout" || reason == "transport error" {
			// The server gave up on the client: worth seeing at info.
			level = slog.LevelInfo
		}
		b.log.Log(context.Background(), level, "disconnected", "user", user, "socket", string(s.Id()), "reason", reason)
	})
}

// Rooms are kept apart in the adapter by prefix, so that a room a client names
// can never be a user's private room or another socket's id.
const (
	userRoomPrefix = "user:"
	roomPrefix     = "room:"
)

func userRoom(user string) socket.Room  { return socket.Room(userRoomPrefix + user) }
func namedRoom(name string) socket.Room { return socket.Room(roomPrefix + name) }
