package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/web3-socket/web3-socket/bridge"
	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// Publisher validates envelopes and puts them on the bus: when one is
// invalid it publishes none and returns a router.InvalidError (wrapping
// schemas.ErrInvalid); a nil error means the bus has them all.
type Publisher interface {
	Publish(ctx context.Context, topic string, envs ...*schemas.Envelope) error
}

// Pinger reports whether the bus is reachable.
type Pinger interface {
	Kind() string
	Ping(ctx context.Context) error
}

// Edge is what the API reads of the Socket.IO side of this instance.
type Edge interface {
	LocalStats() bridge.Stats
	LocalUser(user string) bridge.Presence
	LocalRooms() map[string]int
}

// ClusterView lists the live instances of the cluster, as heartbeats tell.
type ClusterView interface {
	Members() []router.Member
}

// Cluster is what the API asks of the whole cluster (Presence does it).
type Cluster interface {
	ClusterView
	User(ctx context.Context, user string) (UserPresence, error)
	Rooms(ctx context.Context) (map[string]int, error)
}

// APIConfig configures the REST API.
type APIConfig struct {
	Version  string
	Instance string
	// Keys are the accepted API keys (several, for rotation).
	Keys []string
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// OutboundTopic and ControlTopic are where the API publishes.
	OutboundTopic string
	ControlTopic  string
	// PublishTimeout bounds one publish; past it the call answers 503.
	PublishTimeout time.Duration
	// MaxBatch bounds the messages of one /api/batch call.
	MaxBatch int
	// RateLimit is how many /api calls a second each API key may make, with
	// bursts of RateBurst; 0 turns the limit off.
	RateLimit float64
	RateBurst int
}

func (c *APIConfig) setDefaults() {
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
}

// API is the REST API of one instance, plus /health and /ready.
type API struct {
	cfg      APIConfig
	keys     [][sha256.Size]byte
	limiters []*rate.Limiter // per key, in the order of keys; nil without a limit
	pub      Publisher
	bus      Pinger
	edge     Edge
	cluster  Cluster
	metrics  *HTTPMetrics
	log      *slog.Logger
	started  time.Time
	mux      *http.ServeMux
	inflight sync.WaitGroup
	draining atomic.Bool
	// bodies holds the buffers request bodies are read into (*bytes.Buffer).
	bodies sync.Pool
}

// NewAPI returns the REST API. cluster may be nil: the instance is then the
// whole cluster.
func NewAPI(cfg APIConfig, pub Publisher, bus Pinger, edge Edge, cluster Cluster, metrics *HTTPMetrics, log *slog.Logger) (*API, error) {
	cfg.setDefaults()
	if len(cfg.Keys) == 0 {
		return nil, errors.New("api: at least one API key is required")
	}
	a := &API{cfg: cfg, pub: pub, bus: bus, edge: edge, cluster: cluster, metrics: metrics,
		log: log.With("component", "api"), started: time.Now(), mux: http.NewServeMux()}
	for _, k := range cfg.Keys {
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
		if cfg.RateLimit > 0 {
			a.limiters = append(a.limiters, rate.NewLimiter(rate.Limit(cfg.RateLimit), max(1, cfg.RateBurst)))
		}
	}
	a.routes()
	return a, nil
}

// Register mounts the API on mux: /health, /ready and /api/.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("/health", a.mux)
	mux.Handle("/ready", a.mux)
	mux.Handle("/api/", a.mux)
}

// Drain makes /ready answer 503 so load balancers stop sending traffic.
func (a *API) Drain() { a.draining.Store(true) }

// Wait waits until the REST calls in flight have answered, or ctx is done.
func (a *API) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { a.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("api: calls still in flight: %w", ctx.Err())
	}
}

// apiRoutes lists the /api routes; the fallback uses it to tell 405 from 404.
var apiRoutes = []string{
	"GET /api/status",
	"GET /api/stats/connections",
	"POST /api/message",
	"POST /api/broadcast",
	"POST /api/batch",
	"GET /api/users/{userId}",
	"POST /api/users/{userId}/rooms",
	"DELETE /api/users/{userId}/rooms/{room}",
	"POST /api/users/{userId}/disconnect",
	"GET /api/rooms",
}

func (a *API) routes() {
	a.mux.Handle("GET /health", a.observe(a.health))
	a.mux.Handle("GET /ready", a.observe(a.ready))
	handlers := map[string]func(*http.Request) (int, any, error){
		"GET /api/status":                         a.status,
		"GET /api/stats/connections":              a.connections,
		"POST /api/message":                       a.message,
		"POST /api/broadcast":                     a.broadcast,
		"POST /api/batch":                         a.batch,
		"GET /api/users/{userId}":                 a.user,
		"POST /api/users/{userId}/rooms":          a.joinRoom,
		"DELETE /api/users/{userId}/rooms/{room}": a.leaveRoom,
		"POST /api/users/{userId}/disconnect":     a.disconnect,
		"GET /api/rooms":                          a.rooms,
	}
	for _, pattern := range apiRoutes {
		a.mux.Handle(pattern, a.observe(a.authorized(handlers[pattern])))
	}
	a.mux.Handle("/api/", a.observe(a.authorized(a.fallback)))
}

// observe counts the request, measures it and tracks it as in flight.
func (a *API) observe(h http.HandlerFunc) http.Handler {
	// The metrics of the labels the route was last counted with: resolving
	// labels hashes each of them, and a route answers mostly one method
	// with one status.
	var last atomic.Pointer[observed]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.inflight.Add(1)
		defer a.inflight.Done()
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		m := last.Load()
		if m == nil || m.method != r.Method || m.route != r.Pattern || m.status != rec.status {
			m = &observed{method: r.Method, route: r.Pattern, status: rec.status,
				requests: a.metrics.requests.WithLabelValues(r.Method, r.Pattern, strconv.Itoa(rec.status)),
				duration: a.metrics.duration.WithLabelValues(r.Method, r.Pattern)}
			last.Store(m)
		}
		m.requests.Inc()
		m.duration.Observe(time.Since(start).Seconds())
	})
}

// observed is the request counter and duration histogram of one method,
// route and status.
type observed struct {
	method, route string
	status        int
	requests      prometheus.Counter
	duration      prometheus.Observer
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// authorized checks the API key, then runs h and writes its answer.
func (a *API) authorized(h func(*http.Request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := a.keyIndex(r)
		if key < 0 {
			a.metrics.authFailures.Inc()
			writeError(w, errUnauthorized)
			return
		}
		if a.limiters != nil && !a.limiters[key].Allow() {
			w.Header().Set("Retry-After", "1")
			writeError(w, errRateLimited)
			return
		}
		status, body, err := h(r)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// keyIndex returns which configured key the request carries, or -1.
func (a *API) keyIndex(r *http.Request) int {
	// X-API-Key spelt canonically: Get then has no canonical copy to make.
	key := r.Header.Get("X-Api-Key")
	if bearer, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); key == "" && found {
		key = bearer
	}
	if key == "" {
		return -1
	}
	// Hashing first makes every comparison the same length, so neither the
	// content nor the length of a key leaks through timing; every key is
	// compared, whichever matches.
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i][:]) == 1 {
			found = i
		}
	}
	return found
}

func (a *API) fallback(r *http.Request) (int, any, error) {
	var allowed []string
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := a.mux.Handler(probe); pattern != "/api/" && pattern != "" {
			allowed = append(allowed, method)
		}
	}
	if len(allowed) > 0 {
		return 0, nil, &apiError{http.StatusMethodNotAllowed, "method_not_allowed",
			r.Method + " is not allowed here; allowed: " + strings.Join(allowed, ", "), strings.Join(allowed, ", ")}
	}
	return 0, nil, errNotFound
}

func (a *API) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	switch err := a.bus.Ping(ctx); {
	case a.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "bus": a.bus.Kind(), "reason": "shutting down"})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "bus": a.bus.Kind(), "reason": err.Error()})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "bus": a.bus.Kind()})
	}
}

func (a *API) status(r *http.Request) (int, any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	return http.StatusOK, map[string]any{
		"status":        "ok",
		"version":       a.cfg.Version,
		"instanceId":    a.cfg.Instance,
		"uptimeSeconds": time.Since(a.started).Seconds(),
		"bus":           map[string]any{"kind": a.bus.Kind(), "healthy": a.bus.Ping(ctx) == nil},
		"connections":   map[string]int{"local": a.edge.LocalStats().Connections},
	}, nil
}

func (a *API) connections(*http.Request) (int, any, error) {
	local := a.edge.LocalStats()
	self := router.Member{Instance: a.cfg.Instance, Connections: local.Connections, Users: local.Users,
		Rooms: local.Rooms, LastSeen: time.Now().UTC()}
	members := []router.Member{self}
	if a.cluster != nil {
		for _, m := range a.cluster.Members() {
			if m.Instance != self.Instance { // this instance counts with its live figures
				members = append(members, m)
			}
		}
	}
	// Users and rooms are summed over instances: a user or a room present on
	// two instances counts twice, so the cluster figures are upper bounds.
	cluster := map[string]int{"instances": len(members)}
	instances := make([]map[string]any, 0, len(members))
	for _, m := range members {
		cluster["connections"] += m.Connections
		cluster["users"] += m.Users
		cluster["rooms"] += m.Rooms
		instances = append(instances, map[string]any{"id": m.Instance, "connections": m.Connections,
			"users": m.Users, "rooms": m.Rooms, "lastSeen": m.LastSeen.UTC()})
	}
	return http.StatusOK, map[string]any{
		"local":     map[string]int{"connections": local.Connections, "users": local.Users, "rooms": local.Rooms},
		"cluster":   cluster,
		"instances": instances,
	}, nil
}

func (a *API) user(r *http.Request) (int, any, error) {
	id := r.PathValue("userId")
	var p UserPresence
	if a.cluster != nil {
		var err error
		if p, err = a.cluster.User(r.Context(), id); err != nil {
			return 0, nil, err
		}
	} else {
		local := a.edge.LocalUser(id)
		p = UserPresence{Sockets: local.Sockets, Instances: []string{}, Rooms: local.Rooms}
		if local.Sockets > 0 {
			p.Instances = append(p.Instances, a.cfg.Instance)
		}
	}
	if p.Rooms == nil {
		p.Rooms = []string{}
	}
	return http.StatusOK, map[string]any{
		"userId": id, "online": p.Sockets > 0, "sockets": p.Sockets, "instances": p.Instances, "rooms": p.Rooms,
	}, nil
}

func (a *API) rooms(r *http.Request) (int, any, error) {
	local := a.edge.LocalRooms()
	if a.cluster != nil {
		var err error
		if local, err = a.cluster.Rooms(r.Context()); err != nil {
			return 0, nil, err
		}
	}
	rooms := make([]map[string]any, 0, len(local))
	for name, members := range local {
		rooms = append(rooms, map[string]any{"name": name, "members": members})
	}
	sort.Slice(rooms, func(i, j int) bool { return rooms[i]["name"].(string) < rooms[j]["name"].(string) })
	return http.StatusOK, map[string]any{"rooms": rooms}, nil
}

// outgoing is the body of /api/message and /api/broadcast, and an item of
// /api/batch: with userId it goes to that user, with room to that room,
// with neither to everyone.
type outgoing struct {
	UserID *string         `json:"userId"`
	Room   *string         `json:"room"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
}

func (o outgoing) envelope() (*schemas.Envelope, error) {
	var to schemas.Target
	switch {
	case o.UserID != nil && o.Room != nil:
		return nil, errors.New("give userId or room, not both")
	case o.UserID != nil:
		if *o.UserID == "" {
			return nil, errors.New("userId must not be empty")
		}
		to.Users = []string{*o.UserID}
	case o.Room != nil:
		if *o.Room == "" {
			return nil, errors.New("room must not be empty")
		}
		to.Rooms = []string{*o.Room}
	default:
		to.All = true
	}
	if o.Event == "" {
		return nil, errors.New("event is required")
	}
	// The envelope is validated once, as it is encoded for the bus
	// (router.Publisher): an invalid one is refused there, before anything
	// is published.
	return schemas.NewDeliver(to, o.Event, o.Data), nil
}

func (a *API) message(r *http.Request) (int, any, error) {
	var body outgoing
	if err := a.decode(r, &body); err != nil {
		return 0, nil, err
	}
	if body.UserID == nil {
		return 0, nil, badRequest("userId is required")
	}
	if body.Room != nil {
		return 0, nil, badRequest("room is not accepted here; use /api/broadcast")
	}
	return a.publishOne(r.Context(), a.cfg.OutboundTopic, body)
}

func (a *API) broadcast(r *http.Request) (int, any, error) {
	var body outgoing
	if err := a.decode(r, &body); err != nil {
		return 0, nil, err
	}
	if body.UserID != nil {
		return 0, nil, badRequest("userId is not accepted here; use /api/message")
	}
	return a.publishOne(r.Context(), a.cfg.OutboundTopic, body)
}

func (a *API) publishOne(ctx context.Context, topic string, body outgoing) (int, any, error) {
	env, err := body.envelope()
	if err != nil {
		return 0, nil, badRequest(err.Error())
	}
	if err := a.publish(ctx, topic, env); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, accepted{ID: env.ID}, nil
}

// accepted is the answer to a call that published one envelope. A struct
// encodes with less work than a map: it answers every message.
type accepted struct {
	ID string `json:"id"`
}

func (a *API) batch(r *http.Request) (int, any, error) {
	var body struct {
		Messages []outgoing `json:"messages"`
	}
	if err := a.decode(r, &body); err != nil {
		return 0, nil, err
	}
	switch n := len(body.Messages); {
	case n == 0:
		return 0, nil, badRequest("messages must hold at least one message")
	case n > a.cfg.MaxBatch:
		return 0, nil, badRequest(fmt.Sprintf("messages holds %d messages; at most %d are accepted", n, a.cfg.MaxBatch))
	}
	// Every item is checked before any is published: a bad item rejects the
	// whole call and nothing reaches the bus.
	envs := make([]*schemas.Envelope, len(body.Messages))
	ids := make([]string, len(body.Messages))
	for i, m := range body.Messages {
		env, err := m.envelope()
		if err != nil {
			return 0, nil, badRequest(fmt.Sprintf("messages[%d]: %v", i, err))
		}
		envs[i], ids[i] = env, env.ID
	}
	if err := a.publish(r.Context(), a.cfg.OutboundTopic, envs...); err != nil {
		if invalid, ok := errors.AsType[*router.InvalidError](err); ok {
			return 0, nil, badRequest(fmt.Sprintf("messages[%d]: %v", invalid.Index, invalid.Err))
		}
		return 0, nil, err
	}
	return http.StatusAccepted, map[string]any{"ids": ids}, nil
}

func (a *API) joinRoom(r *http.Request) (int, any, error) {
	var body struct {
		Room string `json:"room"`
	}
	if err := a.decode(r, &body); err != nil {
		return 0, nil, err
	}
	return a.control(r, schemas.ActionJoin, body.Room)
}

func (a *API) leaveRoom(r *http.Request) (int, any, error) {
	return a.control(r, schemas.ActionLeave, r.PathValue("room"))
}

func (a *API) disconnect(r *http.Request) (int, any, error) {
	return a.control(r, schemas.ActionDisconnect, "")
}

func (a *API) control(r *http.Request, action, room string) (int, any, error) {
	user := r.PathValue("userId")
	if action != schemas.ActionDisconnect && room == "" {
		return 0, nil, badRequest("room is required")
	}
	env := schemas.NewControl(action, user, room, a.cfg.Instance)
	if err := env.Validate(); err != nil {
		return 0, nil, badRequest(err.Error())
	}
	if err := a.publish(r.Context(), a.cfg.ControlTopic, env); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, accepted{ID: env.ID}, nil
}

func (a *API) publish(ctx context.Context, topic string, envs ...*schemas.Envelope) error {
	// The accepting instance is recorded, for the audit trail.
	for _, env := range envs {
		if env.Instance == "" {
			env.Instance = a.cfg.Instance
		}
	}
	// A publish, once started, ends when the bus answers or PublishTimeout
	// passes, not when the caller goes away: that way it is not left half
	// done, and its context need not be linked to the request's, which cost
	// a cancellation channel and a map of children for every call.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.PublishTimeout)
	defer cancel()
	return a.pub.Publish(ctx, topic, envs...)
}

// decode reads a JSON body into v: 415 unless it is JSON, 413 past the size
// limit, 400 when it does not parse or names an unknown field.
func (a *API) decode(r *http.Request, v any) error {
	// The usual Content-Type is taken as it is; any other is parsed.
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil || mediaType != "application/json" {
			return errMediaType
		}
	}
	if r.ContentLength > a.cfg.MaxBodyBytes {
		return errTooLarge(a.cfg.MaxBodyBytes)
	}
	buf, _ := a.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer a.putBody(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, a.cfg.MaxBodyBytes+1)); err != nil {
		return badRequest("cannot read body: " + err.Error())
	}
	body := buf.Bytes()
	if int64(len(body)) > a.cfg.MaxBodyBytes {
		return errTooLarge(a.cfg.MaxBodyBytes)
	}
	// What decode returns holds no byte of buf: encoding/json and scan copy
	// what they keep.
	if o, ok := v.(*outgoing); ok && o.scan(body) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body is not valid JSON for this route: " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("body holds more than one JSON value")
	}
	return nil
}

// putBody returns buf to the pool unless it grew large: a large body must
// not keep its memory for good.
func (a *API) putBody(buf *bytes.Buffer) {
	if buf.Cap() > 64<<10 {
		return
	}
	buf.Reset()
	a.bodies.Put(buf)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
