package app

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Minimum lengths enforced in production.
const (
	minJWTSecretBytes = 32
	minAPIKeyChars    = 16
)

// Validate reports every problem of c at once, each naming the variable to
// fix, joined with errors.Join. Env must already be normalized ("dev" and
// "prod" are accepted by LoadConfig, not here).
//
// In production it refuses a JWT_SECRET shorter than 32 bytes (a missing one
// only when JWT_PUBLIC_KEY is not set either), a missing API_KEY, any API
// key shorter than 16 characters, and a BACKEND_URL without a BACKEND_SECRET
// of 32 bytes.
func (c Config) Validate() error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	switch c.Env {
	case EnvDevelopment, EnvProduction:
	default:
		fail("NODE_ENV: %q is not an environment: want development or production", c.Env)
	}
	if c.Port < 1 || c.Port > 65535 {
		fail("PORT: %d is not a TCP port: want 1 to 65535", c.Port)
	}
	if c.BackendURL != "" {
		if err := checkHTTPURL(c.BackendURL); err != nil {
			fail("BACKEND_URL: %v", err)
		}
	}
	if c.BackendTimeout <= 0 {
		fail("BACKEND_TIMEOUT: %s: want more than 0", c.BackendTimeout)
	}
	if c.BackendRetries < 0 {
		fail("BACKEND_RETRIES: %d: want 0 (until the backend takes the event) or more", c.BackendRetries)
	}
	if c.BackendRetryInterval <= 0 {
		fail("BACKEND_RETRY_INTERVAL: %s: want more than 0", c.BackendRetryInterval)
	}
	if c.BackendRetryMaxInterval < c.BackendRetryInterval {
		fail("BACKEND_RETRY_MAX_INTERVAL: %s: want at least BACKEND_RETRY_INTERVAL (%s)", c.BackendRetryMaxInterval, c.BackendRetryInterval)
	}
	if c.BackendBreakerFailures < 1 {
		fail("BACKEND_BREAKER_FAILURES: %d: want 1 or more", c.BackendBreakerFailures)
	}
	if c.BackendBreakerTimeout <= 0 {
		fail("BACKEND_BREAKER_TIMEOUT: %s: want more than 0", c.BackendBreakerTimeout)
	}
	if c.IdempotencyWindow < 0 {
		fail("IDEMPOTENCY_WINDOW: %s: want 0 (off) or more", c.IdempotencyWindow)
	}

	if c.Production() {
		switch {
		case c.JWTSecret == "" && c.JWTPublicKey == "":
			fail("JWT_SECRET: required in production (at least %d bytes, e.g. `openssl rand -hex 32`) unless JWT_PUBLIC_KEY is set", minJWTSecretBytes)
		case c.JWTSecret != "" && len(c.JWTSecret) < minJWTSecretBytes:
			fail("JWT_SECRET: too short for production: %d bytes, want at least %d", len(c.JWTSecret), minJWTSecretBytes)
		}
		if len(c.APIKeys) == 0 {
			fail("API_KEY: required in production (at least %d characters each, comma-separated for rotation)", minAPIKeyChars)
		}
		if c.BackendURL != "" && len(c.BackendSecret) < minJWTSecretBytes {
			fail("BACKEND_SECRET: required in production when BACKEND_URL is set (at least %d bytes, e.g. `openssl rand -hex 32`): backends verify the X-Signature it makes", minJWTSecretBytes)
		}
		for i, key := range c.APIKeys {
			if len(key) < minAPIKeyChars {
				fail("API_KEY: key #%d is too short for production: %d characters, want at least %d", i+1, len(key), minAPIKeyChars)
			}
		}
	}
	if c.JWTPublicKey != "" {
		if err := checkPublicKeyPEM(c.JWTPublicKey); err != nil {
			fail("JWT_PUBLIC_KEY: %v", err)
		}
	}

	if c.CORSOrigin == "" {
		fail(`CORS_ORIGIN: must not be empty: want "*" or a comma-separated list of origins`)
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		fail("LOG_LEVEL: %q is not a level: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogToFile {
		if c.LogDir == "" {
			fail("LOG_DIR: must not be empty when LOG_TO_FILE is true")
		}
		if c.LogMaxSize <= 0 {
			fail("LOG_MAX_SIZE: %d megabytes: want more than 0 when LOG_TO_FILE is true", c.LogMaxSize)
		}
		if c.LogMaxFiles <= 0 {
			fail("LOG_MAX_FILES: %d files: want more than 0 when LOG_TO_FILE is true", c.LogMaxFiles)
		}
	}

	switch c.Bus {
	case "memory":
	case "kafka":
		if len(c.KafkaBrokers) == 0 {
			fail("KAFKA_BROKERS: required with BUS=kafka (comma-separated host:port)")
		}
		if len(c.AuditKafkaBrokers) > 0 {
			fail("AUDIT_KAFKA_BROKERS: not with BUS=kafka: the bus topics are the audit trail")
		}
	case "redis":
		if c.RedisURL == "" && (c.RedisPort < 1 || c.RedisPort > 65535) {
			fail("REDIS_PORT: %d is not a TCP port: want 1 to 65535", c.RedisPort)
		}
	default:
		fail("BUS: %q is not a bus: want memory, redis or kafka", c.Bus)
	}
	for _, list := range []struct {
		name    string
		brokers []string
	}{{"KAFKA_BROKERS", c.KafkaBrokers}, {"AUDIT_KAFKA_BROKERS", c.AuditKafkaBrokers}} {
		for _, b := range list.brokers {
			if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
				fail("%s: %q is not host:port", list.name, b)
			}
		}
	}
	switch c.KafkaSASLMechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.KafkaSASLUsername == "" {
			fail("KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM=%s", c.KafkaSASLMechanism)
		}
	default:
		fail("KAFKA_SASL_MECHANISM: %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.KafkaSASLMechanism)
	}
	if c.KafkaPartitions < 1 {
		fail("KAFKA_PARTITIONS: %d: want 1 or more", c.KafkaPartitions)
	}
	if c.KafkaFetchMinBytes < 1 || c.KafkaFetchMinBytes > 1<<20 {
		fail("KAFKA_FETCH_MIN_BYTES: %d: want 1 to 1048576", c.KafkaFetchMinBytes)
	}
	if c.KafkaFetchMaxWait < time.Millisecond || c.KafkaFetchMaxWait > 5*time.Second || c.KafkaFetchMaxWait%time.Millisecond != 0 {
		fail("KAFKA_FETCH_MAX_WAIT: %s: want whole milliseconds, 1ms to 5s", c.KafkaFetchMaxWait)
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			fail("REDIS_URL: not a redis://, rediss:// or unix:// URL")
		}
	}
	if c.RecoveryWindow < 0 {
		fail("RECOVERY_WINDOW: %s: want 0 (off) or more", c.RecoveryWindow)
	}
	if c.RedisClaimIdle <= 0 {
		fail("REDIS_CLAIM_IDLE: %s: want more than 0", c.RedisClaimIdle)
	}
	if c.RedisReadInterval < 0 || c.RedisReadInterval > time.Second {
		fail("REDIS_READ_INTERVAL: %s: want 0 (off) to 1s", c.RedisReadInterval)
	}
	if c.RedisStreamMaxLen < 0 {
		fail("REDIS_STREAM_MAXLEN: %d: want 0 (no trimming) or more", c.RedisStreamMaxLen)
	}
	if c.RedisDB < 0 {
		fail("REDIS_DB: %d: want 0 or more", c.RedisDB)
	}

	if c.MaxPayloadBytes <= 0 {
		fail("MAX_PAYLOAD_BYTES: %d: want more than 0", c.MaxPayloadBytes)
	}
	if c.PingInterval <= 0 {
		fail("PING_INTERVAL: %s: want more than 0", c.PingInterval)
	}
	if c.PingTimeout <= 0 {
		fail("PING_TIMEOUT: %s: want more than 0", c.PingTimeout)
	}
	// The Engine.IO library starts the pong timer after writing the ping; a
	// pong handled in between leaves a timer that only the next ping clears.
	// With PING_TIMEOUT > PING_INTERVAL the next ping always comes first;
	// otherwise healthy clients are dropped under load.
	if c.PingInterval > 0 && c.PingTimeout > 0 && c.PingTimeout <= c.PingInterval {
		fail("PING_TIMEOUT: %s: must be greater than PING_INTERVAL (%s), or busy servers drop healthy connections "+
			"(an Engine.IO heartbeat race); for example PING_INTERVAL=25s PING_TIMEOUT=30s", c.PingTimeout, c.PingInterval)
	}
	if c.SocketQueueMaxBytes <= 0 {
		fail("SOCKET_QUEUE_MAX_BYTES: %d: want more than 0", c.SocketQueueMaxBytes)
	}
	if c.APIRateLimit < 0 {
		fail("API_RATE_LIMIT: %v: want 0 (no limit) or more", c.APIRateLimit)
	}
	if c.APIRateLimit > 0 && c.APIRateBurst < 1 {
		fail("API_RATE_BURST: %d: want at least 1 when API_RATE_LIMIT is set", c.APIRateBurst)
	}
	if c.EventRateLimit < 0 {
		fail("EVENT_RATE_LIMIT: %v: want 0 (no limit) or more", c.EventRateLimit)
	}
	if c.EventRateLimit > 0 && c.EventRateBurst < 1 {
		fail("EVENT_RATE_BURST: %d: want at least 1 when EVENT_RATE_LIMIT is set", c.EventRateBurst)
	}
	if c.MaxConnectionsPerUser < 0 {
		fail("MAX_CONNECTIONS_PER_USER: %d: want 0 (no bound) or more", c.MaxConnectionsPerUser)
	}
	if c.ClusterHeartbeat <= 0 {
		fail("CLUSTER_HEARTBEAT: %s: want more than 0", c.ClusterHeartbeat)
	}
	if c.ShutdownTimeout <= 0 {
		fail("SHUTDOWN_TIMEOUT: %s: want more than 0", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// checkHTTPURL accepts an absolute http or https URL with a host.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// checkPublicKeyPEM accepts a PEM "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY"
// (PKCS #1) or "CERTIFICATE" holding an RSA, ECDSA or Ed25519 key.
func checkPublicKeyPEM(data string) error {
	block, _ := pem.Decode([]byte(strings.TrimSpace(data)))
	if block == nil {
		return errors.New("not a PEM block (want -----BEGIN PUBLIC KEY-----)")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return fmt.Errorf("PEM block is a %s: give the public key, never the private one", block.Type)
		}
		return fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("%T is not an RSA, ECDSA or Ed25519 key", key)
	}
}
