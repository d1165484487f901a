package app

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// isolate runs the test in an empty directory (no .env) with every setting's
// variable cleared; an empty variable counts as unset.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	for _, s := range configSettings {
		t.Setenv(s.env, "")
	}
	t.Setenv(appEnvAlias, "")
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// layers describes one configuration set-up, lowest layer first.
type layers struct {
	file   string // YAML, passed with --config when not empty
	dotenv string // .env content, written when not empty
	env    map[string]string
	args   []string
}

func (l layers) load(t *testing.T) (Config, Generated, error) {
	t.Helper()
	dir := isolate(t)
	args := slices.Clone(l.args)
	if l.file != "" {
		path := filepath.Join(dir, "config.yaml")
		writeFile(t, path, l.file)
		args = append([]string{"--config", path}, args...)
	}
	if l.dotenv != "" {
		writeFile(t, filepath.Join(dir, ".env"), l.dotenv)
	}
	for k, v := range l.env {
		t.Setenv(k, v)
	}
	return LoadConfig(args)
}

func TestLoadConfigWithNothingConfiguredUsesDefaults(t *testing.T) {
	cfg, gen, err := layers{}.load(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InstanceID == "" {
		t.Error("InstanceID not generated")
	}
	if gen.JWTSecret == "" || gen.APIKey == "" {
		t.Errorf("development secrets not generated: %+v", gen)
	}
	cfg.InstanceID, cfg.JWTSecret, cfg.APIKeys = "", "", nil
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig is not valid: %v", err)
	}
}

func TestLoadConfigEachLayerOverridesTheOneBelow(t *testing.T) {
	const (
		fileYAML = "port: 1001\njwt_secret: from-file\nping_interval: 1s\napi_key: [file-a, file-b]\nlog_to_file: true\nnode_env: production\n"
		dotenv   = "PORT=1002\nJWT_SECRET=from-dotenv\nPING_INTERVAL=2s\nAPI_KEY=dotenv-a\nLOG_TO_FILE=false\nNODE_ENV=development\n"
	)
	env := map[string]string{"PORT": "1003", "JWT_SECRET": "from-env", "PING_INTERVAL": "3s", "API_KEY": "env-a,env-b", "LOG_TO_FILE": "true", "NODE_ENV": "production"}
	flags := []string{"--port", "1004", "--jwt-secret", "from-flag", "--ping-interval", "4s", "--api-key", "flag-a", "--log-to-file=false", "--node-env", "development"}

	type want struct {
		port      int
		secret    string
		ping      time.Duration
		keys      []string
		logToFile bool
		env       string
	}
	tests := []struct {
		name   string
		layers layers
		want   want
	}{
		{"file over defaults", layers{file: fileYAML},
			want{1001, "from-file", time.Second, []string{"file-a", "file-b"}, true, EnvProduction}},
		{".env over file", layers{file: fileYAML, dotenv: dotenv},
			want{1002, "from-dotenv", 2 * time.Second, []string{"dotenv-a"}, false, EnvDevelopment}},
		{"environment over .env", layers{file: fileYAML, dotenv: dotenv, env: env},
			want{1003, "from-env", 3 * time.Second, []string{"env-a", "env-b"}, true, EnvProduction}},
		{"flags over environment", layers{file: fileYAML, dotenv: dotenv, env: env, args: flags},
			want{1004, "from-flag", 4 * time.Second, []string{"flag-a"}, false, EnvDevelopment}},
		{"flags left alone do not override", layers{env: env, args: []string{"--log-level", "debug"}},
			want{1003, "from-env", 3 * time.Second, []string{"env-a", "env-b"}, true, EnvProduction}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := tt.layers.load(t)
			if err != nil {
				t.Fatal(err)
			}
			got := want{cfg.Port, cfg.JWTSecret, cfg.PingInterval, cfg.APIKeys, cfg.LogToFile, cfg.Env}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoadConfigReadsEverySettingFromItsVariable(t *testing.T) {
	env := map[string]string{
		"NODE_ENV": "production", "HOST": "127.0.0.1", "PORT": "9000", "BACKEND_URL": "http://backend:3000/events",
		"JWT_SECRET": "s", "JWT_PUBLIC_KEY": "", "JWT_ISSUER": "iss", "JWT_AUDIENCE": "aud", "API_KEY": "k",
		"CORS_ORIGIN": "https://a.example", "LOG_LEVEL": "debug", "LOG_TO_FILE": "true", "LOG_DIR": "/var/log/ws",
		"LOG_MAX_SIZE": "20", "LOG_MAX_FILES": "7", "BUS": "kafka", "REDIS_ENABLED": "true", "REDIS_HOST": "redis",
		"REDIS_PORT": "6380", "REDIS_URL": "redis://r:6379/0", "REDIS_PASSWORD": "pw", "REDIS_DB": "2",
		"TOPIC_PREFIX": "ws.", "INSTANCE_ID": "i-1", "MAX_PAYLOAD_BYTES": "2048", "PING_INTERVAL": "30s",
		"PING_TIMEOUT": "45s", "SHUTDOWN_TIMEOUT": "1m", "SOCKET_QUEUE_MAX_BYTES": "65536",
		"EVENT_RATE_LIMIT": "2.5", "EVENT_RATE_BURST": "7", "MAX_CONNECTIONS_PER_USER": "3",
		"REDIS_TLS": "true", "REDIS_STREAM_MAXLEN": "5000", "CLUSTER_HEARTBEAT": "750ms", "REDIS_CLAIM_IDLE": "3s",
		"REDIS_READ_INTERVAL": "5ms",
		"API_RATE_LIMIT":      "100", "API_RATE_BURST": "5", "RECOVERY_WINDOW": "45s",
		"BACKEND_SECRET": "bs", "BACKEND_TIMEOUT": "2s", "BACKEND_RETRIES": "4", "BACKEND_RETRY_INTERVAL": "50ms",
		"BACKEND_RETRY_MAX_INTERVAL": "3s", "BACKEND_BREAKER_FAILURES": "9", "BACKEND_BREAKER_TIMEOUT": "7s",
		"IDEMPOTENCY_WINDOW": "90s",
		"KAFKA_BROKERS":      "k1:9092,k2:9092", "KAFKA_CLIENT_ID": "ws-1", "KAFKA_TLS": "true",
		"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "ku", "KAFKA_SASL_PASSWORD": "kp",
		"KAFKA_PARTITIONS": "12", "AUDIT_KAFKA_BROKERS": "a1:9092",
		"KAFKA_FETCH_MIN_BYTES": "65536", "KAFKA_FETCH_MAX_WAIT": "5ms",
	}
	cfg, _, err := layers{env: env}.load(t)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Env: EnvProduction, Host: "127.0.0.1", Port: 9000, BackendURL: "http://backend:3000/events",
		JWTSecret: "s", JWTIssuer: "iss", JWTAudience: "aud", APIKeys: []string{"k"},
		CORSOrigin: "https://a.example", LogLevel: "debug", LogToFile: true, LogDir: "/var/log/ws",
		LogMaxSize: 20, LogMaxFiles: 7, Bus: "kafka", RedisEnabled: true, RedisHost: "redis",
		RedisPort: 6380, RedisURL: "redis://r:6379/0", RedisPassword: "pw", RedisDB: 2,
		TopicPrefix: "ws.", InstanceID: "i-1", MaxPayloadBytes: 2048, PingInterval: 30 * time.Second,
		PingTimeout: 45 * time.Second, ShutdownTimeout: time.Minute, SocketQueueMaxBytes: 65536,
		EventRateLimit: 2.5, EventRateBurst: 7, MaxConnectionsPerUser: 3,
		RedisTLS: true, RedisStreamMaxLen: 5000, ClusterHeartbeat: 750 * time.Millisecond, RedisClaimIdle: 3 * time.Second,
		RedisReadInterval: 5 * time.Millisecond,
		APIRateLimit:      100, APIRateBurst: 5, RecoveryWindow: 45 * time.Second,
		BackendSecret: "bs", BackendTimeout: 2 * time.Second, BackendRetries: 4, BackendRetryInterval: 50 * time.Millisecond,
		BackendRetryMaxInterval: 3 * time.Second, BackendBreakerFailures: 9, BackendBreakerTimeout: 7 * time.Second,
		IdempotencyWindow: 90 * time.Second,
		KafkaBrokers:      []string{"k1:9092", "k2:9092"}, KafkaClientID: "ws-1", KafkaTLS: true,
		KafkaSASLMechanism: "SCRAM-SHA-512", KafkaSASLUsername: "ku", KafkaSASLPassword: "kp",
		KafkaPartitions: 12, AuditKafkaBrokers: []string{"a1:9092"},
		KafkaFetchMinBytes: 65536, KafkaFetchMaxWait: 5 * time.Millisecond,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadConfigValues(t *testing.T) {
	tests := []struct {
		name   string
		layers layers
		check  func(t *testing.T, cfg Config)
	}{
		{"API_KEY list is trimmed and empties dropped", layers{env: map[string]string{"API_KEY": " a , ,b,,c "}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.APIKeys, []string{"a", "b", "c"}) }},
		{"API_KEY single key", layers{env: map[string]string{"API_KEY": "only"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.APIKeys, []string{"only"}) }},
		{"api_key as a YAML string", layers{file: "api_key: 'x, y'\n"},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.APIKeys, []string{"x", "y"}) }},
		{"--api-key flag list", layers{args: []string{"--api-key=f1,f2"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.APIKeys, []string{"f1", "f2"}) }},
		{"REDIS_ENABLED without BUS means redis", layers{env: map[string]string{"REDIS_ENABLED": "true"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Bus, "redis") }},
		{"REDIS_ENABLED in .env without BUS means redis", layers{dotenv: "REDIS_ENABLED=true\n"},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Bus, "redis") }},
		{"explicit BUS wins over REDIS_ENABLED", layers{env: map[string]string{"REDIS_ENABLED": "true", "BUS": "memory"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Bus, "memory") }},
		{"REDIS_ENABLED=false keeps memory", layers{env: map[string]string{"REDIS_ENABLED": "false"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Bus, "memory") }},
		{"BUS is case-insensitive", layers{env: map[string]string{"BUS": "Kafka"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Bus, "kafka") }},
		{"APP_ENV is NODE_ENV", layers{env: map[string]string{"APP_ENV": "production"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Env, EnvProduction) }},
		{"NODE_ENV wins over APP_ENV in one layer", layers{env: map[string]string{"APP_ENV": "production", "NODE_ENV": "development"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Env, EnvDevelopment) }},
		{"APP_ENV in the environment wins over NODE_ENV in .env", layers{dotenv: "NODE_ENV=development\n", env: map[string]string{"APP_ENV": "production"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Env, EnvProduction) }},
		{"prod and dev are accepted", layers{env: map[string]string{"NODE_ENV": "PROD"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Env, EnvProduction) }},
		{"dev is development", layers{args: []string{"--node-env", "dev"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Env, EnvDevelopment) }},
		{"an empty variable counts as unset", layers{dotenv: "PORT=1002\n", env: map[string]string{"PORT": ""}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Port, 1002) }},
		{"unknown .env variables are ignored", layers{dotenv: "DATABASE_URL=postgres://x\nPORT=1002\n"},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Port, 1002) }},
		{"unknown environment variables are ignored", layers{env: map[string]string{"PORTX": "1", "port": "2"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.Port, 8081) }},
		{"booleans accept yes and 1", layers{env: map[string]string{"LOG_TO_FILE": "yes", "REDIS_ENABLED": "1", "BUS": "memory"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.LogToFile && cfg.RedisEnabled, true) }},
		{"bare --log-to-file flag means true", layers{args: []string{"--log-to-file"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.LogToFile, true) }},
		{"LOG_LEVEL warning is warn", layers{env: map[string]string{"LOG_LEVEL": "WARNING"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.LogLevel, "warn") }},
		{"durations in Go syntax", layers{env: map[string]string{"SHUTDOWN_TIMEOUT": "1m30s", "PING_TIMEOUT": "500ms"}},
			func(t *testing.T, cfg Config) {
				wantEqual(t, cfg.ShutdownTimeout, 90*time.Second)
				wantEqual(t, cfg.PingTimeout, 500*time.Millisecond)
			}},
		{"JWT_PUBLIC_KEY with \\n escapes becomes PEM", layers{env: map[string]string{"JWT_PUBLIC_KEY": strings.ReplaceAll(ed25519PEM(t), "\n", `\n`)}},
			func(t *testing.T, cfg Config) {
				wantEqual(t, cfg.JWTPublicKey, ed25519PEM(t))
				if err := cfg.Validate(); err != nil {
					t.Error(err)
				}
			}},
		{"INSTANCE_ID is kept when set", layers{env: map[string]string{"INSTANCE_ID": "edge-1"}},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.InstanceID, "edge-1") }},
		{"cors_origin as a YAML list", layers{file: "cors_origin: [https://a.example, https://b.example]\n"},
			func(t *testing.T, cfg Config) { wantEqual(t, cfg.CORSOrigin, "https://a.example,https://b.example") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := tt.layers.load(t)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestLoadConfigRejectsBadValuesNamingTheVariable(t *testing.T) {
	tests := []struct {
		name   string
		layers layers
		want   []string
	}{
		{"bare number duration", layers{env: map[string]string{"PING_INTERVAL": "25000"}},
			[]string{`PING_INTERVAL: "25000" has no unit`}},
		{"bare number duration in YAML", layers{file: "ping_timeout: 20\n"},
			[]string{"PING_TIMEOUT: 20 has no unit"}},
		{"garbage duration", layers{env: map[string]string{"SHUTDOWN_TIMEOUT": "soon"}},
			[]string{`SHUTDOWN_TIMEOUT: "soon" is not a duration`}},
		{"non-numeric port", layers{env: map[string]string{"PORT": "http"}},
			[]string{`PORT: "http" is not a whole number`}},
		{"bad boolean", layers{dotenv: "LOG_TO_FILE=maybe\n"},
			[]string{`LOG_TO_FILE: "maybe" is not a boolean`}},
		{"every bad value at once", layers{env: map[string]string{"PORT": "x", "REDIS_DB": "y"}},
			[]string{"PORT:", "REDIS_DB:"}},
		{"unknown key in the config file", layers{file: "prot: 80\n"},
			[]string{`unknown setting "prot"`}},
		{"nested key in the config file", layers{file: "redis:\n  host: x\n"},
			[]string{`unknown setting "redis.host"`}},
		{"unknown flag", layers{args: []string{"--prot", "80"}},
			[]string{"unknown flag: --prot"}},
		{"positional argument", layers{args: []string{"extra"}},
			[]string{`unexpected argument "extra"`}},
		{"missing config file", layers{args: []string{"--config", "nope.yaml"}},
			[]string{"config file nope.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.layers.load(t)
			if err == nil {
				t.Fatal("LoadConfig succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigGeneratesDevelopmentSecretsOnlyWhenUnset(t *testing.T) {
	isHex64 := func(s string) bool {
		b, err := hex.DecodeString(s)
		return err == nil && len(b) == 32
	}

	t.Run("unset", func(t *testing.T) {
		cfg, gen, err := layers{}.load(t)
		if err != nil {
			t.Fatal(err)
		}
		if !isHex64(gen.JWTSecret) || !isHex64(gen.APIKey) {
			t.Fatalf("want 32 random bytes in hex, got %+v", gen)
		}
		wantEqual(t, cfg.JWTSecret, gen.JWTSecret)
		wantEqual(t, cfg.APIKeys, []string{gen.APIKey})
		_, again, err := LoadConfig(nil)
		if err != nil {
			t.Fatal(err)
		}
		if again.JWTSecret == gen.JWTSecret || again.APIKey == gen.APIKey {
			t.Error("secrets repeat between loads")
		}
	})
	t.Run("set", func(t *testing.T) {
		cfg, gen, err := layers{env: map[string]string{"JWT_SECRET": "mine", "API_KEY": "key1"}}.load(t)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, gen, Generated{})
		wantEqual(t, cfg.JWTSecret, "mine")
		wantEqual(t, cfg.APIKeys, []string{"key1"})
	})
	t.Run("public key set", func(t *testing.T) {
		cfg, gen, err := layers{env: map[string]string{"JWT_PUBLIC_KEY": ed25519PEM(t)}}.load(t)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, gen.JWTSecret, "")
		wantEqual(t, cfg.JWTSecret, "")
		if gen.APIKey == "" {
			t.Error("API key not generated")
		}
	})
	t.Run("production", func(t *testing.T) {
		cfg, gen, err := layers{env: map[string]string{"NODE_ENV": "production"}}.load(t)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, gen, Generated{})
		wantEqual(t, cfg.JWTSecret, "")
		if cfg.APIKeys != nil {
			t.Errorf("API keys %v in production with none configured", cfg.APIKeys)
		}
		if cfg.InstanceID == "" {
			t.Error("InstanceID not generated")
		}
	})
}

func TestProductionRefusesMissingOrShortSecrets(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing configured", map[string]string{},
			[]string{"JWT_SECRET: required in production", "API_KEY: required in production"}},
		{"short secret and key", map[string]string{"JWT_SECRET": "tooshort", "API_KEY": strings.Repeat("k", 16) + ",short"},
			[]string{"JWT_SECRET: too short for production: 8 bytes", "API_KEY: key #2 is too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["NODE_ENV"] = "production"
			cfg, _, err := layers{env: tt.env}.load(t)
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil {
				t.Fatal("production start-up allowed")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "tooshort") || strings.Contains(err.Error(), ",short") {
				t.Errorf("error reveals a secret: %q", err)
			}
		})
	}
}

// validProduction is a production configuration that passes Validate.
func validProduction() Config {
	c := DefaultConfig()
	c.Env = EnvProduction
	c.JWTSecret = strings.Repeat("s", 32)
	c.APIKeys = []string{strings.Repeat("k", 16)}
	c.InstanceID = "i-1"
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // substring of the error; empty means valid
	}{
		{"valid production", func(c *Config) {}, ""},
		{"valid development without secrets", func(c *Config) { *c = DefaultConfig() }, ""},
		{"unknown env", func(c *Config) { c.Env = "staging" }, `NODE_ENV: "staging" is not an environment`},
		{"port 0", func(c *Config) { c.Port = 0 }, "PORT: 0 is not a TCP port"},
		{"port too large", func(c *Config) { c.Port = 65536 }, "PORT: 65536 is not a TCP port"},
		{"port 65535", func(c *Config) { c.Port = 65535 }, ""},
		{"backend URL not http", func(c *Config) { c.BackendURL = "ftp://backend" }, "BACKEND_URL:"},
		{"backend URL without host", func(c *Config) { c.BackendURL = "http://" }, "BACKEND_URL:"},
		{"backend URL relative", func(c *Config) { c.BackendURL = "backend/events" }, "BACKEND_URL:"},
		{"backend URL https", func(c *Config) {
			c.BackendURL, c.BackendSecret = "https://backend.internal/events", strings.Repeat("b", 32)
		}, ""},
		{"production backend without secret", func(c *Config) { c.BackendURL = "https://backend.internal/events" }, "BACKEND_SECRET: required in production"},
		{"development backend without secret", func(c *Config) { c.Env, c.BackendURL = EnvDevelopment, "http://127.0.0.1:3000/events" }, ""},
		{"backend timeout 0", func(c *Config) { c.BackendTimeout = 0 }, "BACKEND_TIMEOUT: 0s: want more than 0"},
		{"backend retries negative", func(c *Config) { c.BackendRetries = -1 }, "BACKEND_RETRIES: -1"},
		{"backend retry interval above its max", func(c *Config) { c.BackendRetryInterval = time.Minute }, "BACKEND_RETRY_MAX_INTERVAL: 10s: want at least"},
		{"backend breaker failures 0", func(c *Config) { c.BackendBreakerFailures = 0 }, "BACKEND_BREAKER_FAILURES: 0"},
		{"backend breaker timeout 0", func(c *Config) { c.BackendBreakerTimeout = 0 }, "BACKEND_BREAKER_TIMEOUT: 0s"},
		{"idempotency window negative", func(c *Config) { c.IdempotencyWindow = -time.Second }, "IDEMPOTENCY_WINDOW: -1s"},
		{"idempotency off", func(c *Config) { c.IdempotencyWindow = 0 }, ""},
		{"production without secret", func(c *Config) { c.JWTSecret = "" }, "JWT_SECRET: required in production"},
		{"production with a 31-byte secret", func(c *Config) { c.JWTSecret = strings.Repeat("s", 31) }, "JWT_SECRET: too short for production: 31 bytes"},
		{"production with a public key and no secret", func(c *Config) { c.JWTSecret, c.JWTPublicKey = "", rsaPEM(t) }, ""},
		{"production with a public key and a short secret", func(c *Config) { c.JWTSecret, c.JWTPublicKey = "short", rsaPEM(t) }, "JWT_SECRET: too short"},
		{"production without API key", func(c *Config) { c.APIKeys = nil }, "API_KEY: required in production"},
		{"production with a short API key", func(c *Config) { c.APIKeys = append(c.APIKeys, "15-characters!!") }, "API_KEY: key #2 is too short for production: 15 characters"},
		{"development with short secrets", func(c *Config) { c.Env, c.JWTSecret, c.APIKeys = EnvDevelopment, "x", []string{"y"} }, ""},
		{"public key not PEM", func(c *Config) { c.JWTPublicKey = "not a key" }, "JWT_PUBLIC_KEY: not a PEM block"},
		{"public key is a private key", func(c *Config) { c.JWTPublicKey = privatePEM(t) }, "never the private one"},
		{"public key PEM corrupt", func(c *Config) {
			c.JWTPublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))
		}, "JWT_PUBLIC_KEY: parse PUBLIC KEY"},
		{"RSA public key", func(c *Config) { c.JWTPublicKey = rsaPEM(t) }, ""},
		{"PKCS1 RSA public key", func(c *Config) { c.JWTPublicKey = rsaPKCS1PEM(t) }, ""},
		{"ECDSA public key", func(c *Config) { c.JWTPublicKey = ecdsaPEM(t) }, ""},
		{"Ed25519 public key", func(c *Config) { c.JWTPublicKey = ed25519PEM(t) }, ""},
		{"empty CORS origin", func(c *Config) { c.CORSOrigin = "" }, "CORS_ORIGIN: must not be empty"},
		{"unknown log level", func(c *Config) { c.LogLevel = "trace" }, `LOG_LEVEL: "trace" is not a level`},
		{"log file without size", func(c *Config) { c.LogToFile, c.LogMaxSize = true, 0 }, "LOG_MAX_SIZE: 0 megabytes"},
		{"log file without backups", func(c *Config) { c.LogToFile, c.LogMaxFiles = true, 0 }, "LOG_MAX_FILES: 0 files"},
		{"log file without dir", func(c *Config) { c.LogToFile, c.LogDir = true, "" }, "LOG_DIR: must not be empty"},
		{"log sizes ignored without LOG_TO_FILE", func(c *Config) { c.LogMaxSize, c.LogMaxFiles = 0, 0 }, ""},
		{"unknown bus", func(c *Config) { c.Bus = "nats" }, `BUS: "nats" is not a bus`},
		{"redis bus", func(c *Config) { c.Bus = "redis" }, ""},
		{"kafka bus", func(c *Config) { c.Bus, c.KafkaBrokers = "kafka", []string{"k:9092", "[::1]:9092"} }, ""},
		{"kafka bus without brokers", func(c *Config) { c.Bus = "kafka" }, "KAFKA_BROKERS: required with BUS=kafka"},
		{"kafka broker without port", func(c *Config) { c.Bus, c.KafkaBrokers = "kafka", []string{"k"} }, `KAFKA_BROKERS: "k" is not host:port`},
		{"audit mirror with the kafka bus", func(c *Config) {
			c.Bus, c.KafkaBrokers, c.AuditKafkaBrokers = "kafka", []string{"k:9092"}, []string{"k:9092"}
		}, "AUDIT_KAFKA_BROKERS: not with BUS=kafka"},
		{"audit mirror with redis", func(c *Config) { c.Bus, c.AuditKafkaBrokers = "redis", []string{"k:9092"} }, ""},
		{"audit broker without port", func(c *Config) { c.AuditKafkaBrokers = []string{"k:"} }, `AUDIT_KAFKA_BROKERS: "k:" is not host:port`},
		{"unknown SASL mechanism", func(c *Config) { c.KafkaSASLMechanism = "GSSAPI" }, `KAFKA_SASL_MECHANISM: "GSSAPI"`},
		{"SASL without user", func(c *Config) { c.KafkaSASLMechanism = "PLAIN" }, "KAFKA_SASL_USERNAME: required"},
		{"SASL SCRAM", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLUsername = "SCRAM-SHA-256", "u" }, ""},
		{"no partitions", func(c *Config) { c.KafkaPartitions = 0 }, "KAFKA_PARTITIONS: 0"},
		{"redis bus with a bad port", func(c *Config) { c.Bus, c.RedisPort = "redis", 0 }, "REDIS_PORT: 0 is not a TCP port"},
		{"redis URL not redis", func(c *Config) { c.RedisURL = "http://redis:6379" }, "REDIS_URL:"},
		{"negative redis db", func(c *Config) { c.RedisDB = -1 }, "REDIS_DB: -1"},
		{"zero payload", func(c *Config) { c.MaxPayloadBytes = 0 }, "MAX_PAYLOAD_BYTES: 0"},
		{"zero ping interval", func(c *Config) { c.PingInterval = 0 }, "PING_INTERVAL: 0s"},
		{"negative ping timeout", func(c *Config) { c.PingTimeout = -time.Second }, "PING_TIMEOUT: -1s"},
		{"ping timeout equal to the interval", func(c *Config) { c.PingInterval, c.PingTimeout = 25*time.Second, 25*time.Second }, "PING_TIMEOUT: 25s: must be greater than PING_INTERVAL (25s)"},
		{"Socket.IO default heartbeat refused", func(c *Config) { c.PingInterval, c.PingTimeout = 25*time.Second, 20*time.Second }, "must be greater than PING_INTERVAL"},
		{"ping timeout above the interval", func(c *Config) { c.PingInterval, c.PingTimeout = 25*time.Second, 26*time.Second }, ""},
		{"socket queue bound 0", func(c *Config) { c.SocketQueueMaxBytes = 0 }, "SOCKET_QUEUE_MAX_BYTES: 0"},
		{"negative event rate", func(c *Config) { c.EventRateLimit = -1 }, "EVENT_RATE_LIMIT: -1"},
		{"event rate without burst", func(c *Config) { c.EventRateLimit, c.EventRateBurst = 10, 0 }, "EVENT_RATE_BURST: 0"},
		{"event rate off", func(c *Config) { c.EventRateLimit, c.EventRateBurst = 0, 0 }, ""},
		{"negative connection bound", func(c *Config) { c.MaxConnectionsPerUser = -1 }, "MAX_CONNECTIONS_PER_USER: -1"},
		{"negative stream length", func(c *Config) { c.RedisStreamMaxLen = -1 }, "REDIS_STREAM_MAXLEN: -1"},
		{"no heartbeat", func(c *Config) { c.ClusterHeartbeat = 0 }, "CLUSTER_HEARTBEAT: 0s"},
		{"no claim time", func(c *Config) { c.RedisClaimIdle = 0 }, "REDIS_CLAIM_IDLE: 0s"},
		{"negative read interval", func(c *Config) { c.RedisReadInterval = -time.Millisecond }, "REDIS_READ_INTERVAL: -1ms"},
		{"read interval over a second", func(c *Config) { c.RedisReadInterval = 2 * time.Second }, "REDIS_READ_INTERVAL: 2s"},
		{"read interval of a second", func(c *Config) { c.RedisReadInterval = time.Second }, ""},
		{"no fetch minimum", func(c *Config) { c.KafkaFetchMinBytes = 0 }, "KAFKA_FETCH_MIN_BYTES: 0"},
		{"fetch minimum over 1 MiB", func(c *Config) { c.KafkaFetchMinBytes = 1<<20 + 1 }, "KAFKA_FETCH_MIN_BYTES: 1048577"},
		{"no fetch wait", func(c *Config) { c.KafkaFetchMaxWait = 0 }, "KAFKA_FETCH_MAX_WAIT: 0s"},
		{"fetch wait below a millisecond", func(c *Config) { c.KafkaFetchMaxWait = 1500 * time.Microsecond }, "KAFKA_FETCH_MAX_WAIT: 1.5ms"},
		{"fetch wait over 5s", func(c *Config) { c.KafkaFetchMaxWait = 6 * time.Second }, "KAFKA_FETCH_MAX_WAIT: 6s"},
		{"negative API rate", func(c *Config) { c.APIRateLimit = -1 }, "API_RATE_LIMIT: -1"},
		{"API rate without burst", func(c *Config) { c.APIRateLimit, c.APIRateBurst = 5, 0 }, "API_RATE_BURST: 0"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "SHUTDOWN_TIMEOUT: 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validProduction()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("want valid, got %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("want an error containing %q, got none", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := validProduction()
	c.Port = 0
	c.Bus = "nats"
	c.LogLevel = "loud"
	c.APIKeys = nil
	err := c.Validate()
	if err == nil {
		t.Fatal("valid")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Errorf("want 4 problems, one per line, got %d: %q", len(lines), err)
	}
	for _, w := range []string{"PORT:", "BUS:", "LOG_LEVEL:", "API_KEY:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

func TestRedactedHidesEverySecret(t *testing.T) {
	c := validProduction()
	c.JWTSecret = "jwt-secret-value-jwt-secret-value"
	c.APIKeys = []string{"api-key-one-123456", "api-key-two-123456"}
	c.RedisPassword = "redis-pass-value"
	c.BackendSecret = "backend-secret-value"
	c.RedisURL = "redis://user:url-pass-value@redis:6379/0"
	c.KafkaSASLPassword = "kafka-pass-value"

	dump := strings.Join(c.Redacted().EnvLines(), "\n")
	for _, secret := range []string{c.JWTSecret, c.APIKeys[0], c.APIKeys[1], c.RedisPassword, "url-pass-value", c.BackendSecret, c.KafkaSASLPassword} {
		if strings.Contains(dump, secret) {
			t.Errorf("redacted dump contains %q:\n%s", secret, dump)
		}
	}
	for _, line := range []string{"JWT_SECRET=[REDACTED]", "API_KEY=[REDACTED],[REDACTED]", "REDIS_PASSWORD=[REDACTED]", "REDIS_URL=redis://user:xxxxx@redis:6379/0"} {
		if !strings.Contains(dump, line) {
			t.Errorf("dump lacks %q:\n%s", line, dump)
		}
	}
	if c.JWTSecret != "jwt-secret-value-jwt-secret-value" || c.APIKeys[0] != "api-key-one-123456" {
		t.Error("Redacted changed the original")
	}
	if got := DefaultConfig().Redacted(); got.JWTSecret != "" || got.APIKeys != nil {
		t.Errorf("unset secrets shown as set: %+v", got)
	}
}

func TestEnvLinesLoadBackAsTheSameConfig(t *testing.T) {
	c := validProduction()
	c.JWTPublicKey = ecdsaPEM(t)
	c.CORSOrigin = "https://a.example, https://b.example"
	c.APIKeys = []string{strings.Repeat("a", 16), strings.Repeat("b", 16)}
	c.BackendURL = "http://backend:3000/events?x=1#frag"
	isolate(t)
	writeFile(t, ".env", strings.Join(c.EnvLines(), "\n")+"\n")
	got, _, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("\n got %+v\nwant %+v", got, c)
	}
}

func wantEqual[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaPEM(t *testing.T) string { return pemOf(t, &rsaKey(t).PublicKey) }

func rsaPKCS1PEM(t *testing.T) string {
	der := x509.MarshalPKCS1PublicKey(&rsaKey(t).PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: der}))
}

func privatePEM(t *testing.T) string {
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func ecdsaPEM(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, &k.PublicKey)
}

// ed25519PEM is deterministic so that tests can compare it.
func ed25519PEM(t *testing.T) string {
	return pemOf(t, ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
}

func TestEnvExampleDocumentsEverySettingAndLoads(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "..", ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range configSettings {
		if !strings.Contains(string(example), s.env+"=") {
			t.Errorf(".env.example does not document %s", s.env)
		}
	}
	isolate(t)
	writeFile(t, ".env", string(example))
	cfg, _, err := LoadConfig(nil)
	if err != nil {
		t.Fatalf(".env.example does not load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf(".env.example is not valid: %v", err)
	}
	cfg.InstanceID, cfg.JWTSecret, cfg.APIKeys = "", "", nil
	if !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Errorf(".env.example values differ from the defaults:\n got %+v\nwant %+v", cfg, DefaultConfig())
	}
}
