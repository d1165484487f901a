package app

import (
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of one web3-socket instance. Each field's
// koanf tag is its key in a config file; the environment variable is the same
// key in upper case (PORT, JWT_SECRET, …) and the flag is the key with dashes
// (--port, --jwt-secret). LoadConfig fills it; Validate checks it.
type Config struct {
	// Env is "development" or "production" (NODE_ENV, or APP_ENV).
	Env string `koanf:"node_env"`
	// Host is the address to bind; empty means every interface.
	Host string `koanf:"host"`
	// Port is the TCP port for Socket.IO, the REST API and the metrics.
	Port int `koanf:"port"`
	// BackendURL, when set, receives every client event as an HTTP POST.
	BackendURL string `koanf:"backend_url"`
	// BackendSecret signs the requests to BackendURL (HMAC-SHA256).
	BackendSecret string `koanf:"backend_secret"`
	// BackendTimeout bounds one request to the backend.
	BackendTimeout time.Duration `koanf:"backend_timeout"`
	// BackendRetries is how many attempts a forwarded event gets when they
	// fail transiently before it goes to the poison topic; 0 retries until
	// the backend takes it.
	BackendRetries int `koanf:"backend_retries"`
	// BackendRetryInterval is the first wait between attempts, doubling with
	// jitter up to BackendRetryMaxInterval.
	BackendRetryInterval    time.Duration `koanf:"backend_retry_interval"`
	BackendRetryMaxInterval time.Duration `koanf:"backend_retry_max_interval"`
	// BackendBreakerFailures consecutive failures open the circuit breaker
	// for BackendBreakerTimeout.
	BackendBreakerFailures int           `koanf:"backend_breaker_failures"`
	BackendBreakerTimeout  time.Duration `koanf:"backend_breaker_timeout"`
	// IdempotencyWindow is how long an outbound envelope id is remembered so
	// that a duplicate is delivered once; 0 turns deduplication off.
	IdempotencyWindow time.Duration `koanf:"idempotency_window"`

	// JWTSecret verifies HS256/384/512 tokens.
	JWTSecret string `koanf:"jwt_secret"`
	// JWTPublicKey (PEM) verifies RS/ES/EdDSA tokens.
	JWTPublicKey string `koanf:"jwt_public_key"`
	// JWTIssuer and JWTAudience are checked when set.
	JWTIssuer   string `koanf:"jwt_issuer"`
	JWTAudience string `koanf:"jwt_audience"`

	// APIKeys protect /api/*; API_KEY takes a comma-separated list.
	APIKeys []string `koanf:"api_key"`
	// APIRateLimit is how many /api calls a second each API key may make,
	// with bursts of APIRateBurst; 0 turns the limit off.
	APIRateLimit float64 `koanf:"api_rate_limit"`
	APIRateBurst int     `koanf:"api_rate_burst"`
	// CORSOrigin is "*" or a comma-separated list of origins.
	CORSOrigin string `koanf:"cors_origin"`

	LogLevel    string `koanf:"log_level"`
	LogToFile   bool   `koanf:"log_to_file"`
	LogDir      string `koanf:"log_dir"`
	LogMaxSize  int    `koanf:"log_max_size"`  // megabytes
	LogMaxFiles int    `koanf:"log_max_files"` // rotated files kept

	// Bus is memory, redis or kafka. REDIS_ENABLED=true means redis.
	Bus           string `koanf:"bus"`
	RedisEnabled  bool   `koanf:"redis_enabled"`
	RedisHost     string `koanf:"redis_host"`
	RedisPort     int    `koanf:"redis_port"`
	RedisURL      string `koanf:"redis_url"`
	RedisPassword string `koanf:"redis_password"`
	RedisDB       int    `koanf:"redis_db"`
	// RedisTLS connects to Redis with TLS (a rediss:// URL does too).
	RedisTLS bool `koanf:"redis_tls"`
	// RedisStreamMaxLen trims each stream to about this many entries.
	RedisStreamMaxLen int64 `koanf:"redis_stream_maxlen"`
	// RedisClaimIdle is how long a consumer-group entry stays pending before
	// another instance takes it over.
	RedisClaimIdle time.Duration `koanf:"redis_claim_idle"`
	// RedisReadInterval is the least time between two reads of a fan-out
	// stream that got entries (unless the reader is behind): up to that much
	// latency for fewer XREADs on Redis. 0 (the default) is off.
	RedisReadInterval time.Duration `koanf:"redis_read_interval"`

	// RecoveryWindow is how long a disconnected client may come back, to
	// this instance or another, and get its id, rooms and missed messages
	// (Socket.IO connection-state recovery); 0 turns it off.
	RecoveryWindow time.Duration `koanf:"recovery_window"`
	// KafkaBrokers are the bootstrap brokers (host:port, comma-separated) of
	// BUS=kafka.
	KafkaBrokers  []string `koanf:"kafka_brokers"`
	KafkaClientID string   `koanf:"kafka_client_id"`
	// KafkaTLS connects to the brokers with TLS (system roots).
	KafkaTLS bool `koanf:"kafka_tls"`
	// KafkaSASLMechanism is empty (no SASL), PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512.
	KafkaSASLMechanism string `koanf:"kafka_sasl_mechanism"`
	KafkaSASLUsername  string `koanf:"kafka_sasl_username"`
	KafkaSASLPassword  string `koanf:"kafka_sasl_password"`
	// KafkaPartitions is the partition count of the topics web3-socket
	// creates.
	KafkaPartitions int `koanf:"kafka_partitions"`
	// KafkaFetchMinBytes and KafkaFetchMaxWait: a consumer's fetch waits
	// for this many bytes, or this long, before the broker answers (1 byte
	// and 500ms, sarama's, by default: it answers as soon as there is one
	// message).
	KafkaFetchMinBytes int           `koanf:"kafka_fetch_min_bytes"`
	KafkaFetchMaxWait  time.Duration `koanf:"kafka_fetch_max_wait"`
	// AuditKafkaBrokers, with BUS=memory or redis, turns on the audit
	// mirror: every inbound and outbound envelope is copied to the topics
	// of the same names on these brokers (the KAFKA_CLIENT_ID, KAFKA_TLS and
	// KAFKA_SASL_* settings apply to them).
	AuditKafkaBrokers []string `koanf:"audit_kafka_brokers"`

	TopicPrefix string `koanf:"topic_prefix"`
	// InstanceID names this instance on the bus; generated when empty.
	InstanceID string `koanf:"instance_id"`

	// MaxPayloadBytes bounds a Socket.IO packet and a REST body.
	MaxPayloadBytes int64 `koanf:"max_payload_bytes"`

	// PingInterval and PingTimeout are the Engine.IO heartbeat. PingTimeout
	// must exceed PingInterval: see config_validate.go.
	PingInterval time.Duration `koanf:"ping_interval"`
	PingTimeout  time.Duration `koanf:"ping_timeout"`
	// SocketQueueMaxBytes bounds what may wait to be written to one socket;
	// a socket over it is disconnected as a slow consumer.
	SocketQueueMaxBytes int `koanf:"socket_queue_max_bytes"`
	// EventRateLimit is how many client events a second one user may send
	// (all of its sockets together), with bursts of EventRateBurst; 0 turns
	// the limit off.
	EventRateLimit float64 `koanf:"event_rate_limit"`
	EventRateBurst int     `koanf:"event_rate_burst"`
	// MaxConnectionsPerUser bounds one user's sockets on an instance; 0 is no
	// bound.
	MaxConnectionsPerUser int `koanf:"max_connections_per_user"`
	// ClusterHeartbeat is how often the instance announces itself on the
	// control topic; an instance silent for three of them leaves the cluster
	// statistics.
	ClusterHeartbeat time.Duration `koanf:"cluster_heartbeat"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
}

// The values of Config.Env.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// redactedValue replaces a secret wherever configuration or logs are shown.
const redactedValue = "[REDACTED]"

// Production reports whether the instance runs with production rules.
func (c Config) Production() bool { return c.Env == EnvProduction }

// Redacted returns a copy of c whose secrets (JWT secret, API keys, Redis
// password, the password inside REDIS_URL, backend secret, Kafka SASL password) are replaced by "[REDACTED]". An
// unset secret stays empty so that a dump still shows it is missing.
func (c Config) Redacted() Config {
	if c.JWTSecret != "" {
		c.JWTSecret = redactedValue
	}
	if len(c.APIKeys) > 0 {
		keys := make([]string, len(c.APIKeys))
		for i := range keys {
			keys[i] = redactedValue
		}
		c.APIKeys = keys
	}
	if c.RedisPassword != "" {
		c.RedisPassword = redactedValue
	}
	if c.BackendSecret != "" {
		c.BackendSecret = redactedValue
	}
	if c.RedisURL != "" {
		c.RedisURL = redactURL(c.RedisURL)
	}
	if c.KafkaSASLPassword != "" {
		c.KafkaSASLPassword = redactedValue
	}
	return c
}

// redactURL hides the password of a URL's user info; a URL that does not
// parse is hidden whole, since it may still carry one.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactedValue
	}
	return u.Redacted()
}

// EnvLines returns c as KEY=value lines in the order of the struct, in the
// syntax of a .env file. It does not redact: call Redacted first to show it.
func (c Config) EnvLines() []string {
	var lines []string
	for _, s := range configSettings {
		lines = append(lines, s.env+"="+formatValue(reflect.ValueOf(c).Field(s.index)))
	}
	return lines
}

// LogValue logs c with its secrets redacted, so that a Config handed to a
// logger never leaks them.
func (c Config) LogValue() slog.Value {
	r := reflect.ValueOf(c.Redacted())
	attrs := make([]slog.Attr, 0, len(configSettings))
	for _, s := range configSettings {
		attrs = append(attrs, slog.String(s.key, formatValue(r.Field(s.index))))
	}
	return slog.GroupValue(attrs...)
}

// formatValue writes one setting the way LoadConfig reads it back.
func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case string:
		if strings.ContainsAny(x, "\n\"' #") {
			return strconv.Quote(x)
		}
		return x
	case []string:
		return strings.Join(x, ",")
	case time.Duration:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// setting describes one Config field: its koanf key, environment variable
// and flag name, all derived from the koanf tag.
type setting struct {
	index int
	key   string
	env   string
	flag  string
	kind  reflect.Type
}

// configSettings lists every field of Config with a koanf tag, in order.
var configSettings = func() []setting {
	t := reflect.TypeFor[Config]()
	var out []setting
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("koanf")
		if key == "" {
			continue
		}
		out = append(out, setting{
			index: i,
			key:   key,
			env:   strings.ToUpper(key),
			flag:  strings.ReplaceAll(key, "_", "-"),
			kind:  f.Type,
		})
	}
	return out
}()
