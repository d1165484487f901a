package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/dotenv"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Generated holds the secrets LoadConfig made up because none was configured.
// It is only ever filled in development, so that a first run works with
// nothing configured; the start banner prints it.
type Generated struct {
	// JWTSecret is set when JWT_SECRET (and JWT_PUBLIC_KEY) were unset.
	JWTSecret string
	// APIKey is set when API_KEY was unset.
	APIKey string
}

// envFile is read from the working directory when it exists.
const envFile = ".env"

// configFlag names the flag that points at a YAML configuration file.
const configFlag = "config"

// appEnvAlias is the second name of NODE_ENV; the original service read both.
const appEnvAlias = "APP_ENV"

// DefaultConfig returns the built-in defaults: the lowest configuration layer.
// It has no secrets and no instance id; LoadConfig fills those.
func DefaultConfig() Config {
	return Config{
		Env:                EnvDevelopment,
		Port:               8081,
		CORSOrigin:         "*",
		LogLevel:           "info",
		LogDir:             "logs",
		LogMaxSize:         10,
		LogMaxFiles:        5,
		Bus:                "memory",
		RedisHost:          "127.0.0.1",
		RedisPort:          6379,
		RedisStreamMaxLen:  1_000_000,
		RedisClaimIdle:     5 * time.Second,
		RecoveryWindow:     2 * time.Minute,
		KafkaClientID:      "web3-socket",
		KafkaPartitions:    6,
		KafkaFetchMinBytes: 1,
		KafkaFetchMaxWait:  500 * time.Millisecond,
		TopicPrefix:        "socket.",
		MaxPayloadBytes:    1 << 20,
		PingInterval:       25 * time.Second,
		PingTimeout:        30 * time.Second,
		ShutdownTimeout:    10 * time.Second,
		ClusterHeartbeat:   2 * time.Second,

		SocketQueueMaxBytes:   1 << 20,
		EventRateLimit:        50,
		EventRateBurst:        100,
		APIRateBurst:          200,
		MaxConnectionsPerUser: 20,

		BackendTimeout:          5 * time.Second,
		BackendRetryInterval:    200 * time.Millisecond,
		BackendRetryMaxInterval: 10 * time.Second,
		BackendBreakerFailures:  5,
		BackendBreakerTimeout:   5 * time.Second,
		IdempotencyWindow:       2 * time.Minute,
	}
}

// settingUsage is the flag help of each setting.
var settingUsage = map[string]string{
	"node_env":                   "development or production (also APP_ENV; dev and prod accepted)",
	"host":                       "address to bind; empty means every interface",
	"port":                       "TCP port for Socket.IO, the REST API and /metrics",
	"backend_url":                "http(s) URL that receives client events as POSTs",
	"backend_secret":             "HMAC-SHA256 key signing the requests to BACKEND_URL (X-Signature)",
	"backend_timeout":            "bound of one request to BACKEND_URL (Go duration, e.g. 5s)",
	"backend_retries":            "attempts a forwarded event gets before the poison topic (0: until the backend takes it)",
	"backend_retry_interval":     "first wait between forwarding attempts, doubling with jitter (Go duration)",
	"backend_retry_max_interval": "largest wait between forwarding attempts (Go duration)",
	"backend_breaker_failures":   "consecutive backend failures that open the circuit breaker",
	"backend_breaker_timeout":    "how long the open circuit breaker sends nothing before one probe (Go duration)",
	"idempotency_window":         "how long an outbound envelope id is remembered to deliver duplicates once (0: off)",
	"jwt_secret":                 "HMAC secret for HS256/384/512 client tokens",
	"jwt_public_key":             "PEM public key for RS/ES/EdDSA client tokens",
	"jwt_issuer":                 "required iss claim, when set",
	"jwt_audience":               "required aud claim, when set",
	"api_key":                    "comma-separated API keys for /api/*",
	"cors_origin":                `"*" or comma-separated allowed origins`,
	"log_level":                  "debug, info, warn or error",
	"log_to_file":                "also write rotated log files to --log-dir",
	"log_dir":                    "directory of the log files",
	"log_max_size":               "megabytes before a log file is rotated",
	"log_max_files":              "rotated log files kept",
	"bus":                        "memory, redis or kafka (default memory; redis when REDIS_ENABLED=true)",
	"redis_enabled":              "compatibility switch: true means --bus=redis unless BUS is set",
	"redis_host":                 "Redis host",
	"redis_port":                 "Redis port",
	"redis_url":                  "Redis URL (redis:// or rediss://), overrides host and port",
	"redis_password":             "Redis password",
	"redis_db":                   "Redis database number",
	"topic_prefix":               "prefix of every bus topic",
	"instance_id":                "name of this instance on the bus (default hostname-random)",
	"max_payload_bytes":          "largest Socket.IO packet or REST body, in bytes",
	"ping_interval":              "Engine.IO ping interval (Go duration, e.g. 25s)",
	"recovery_window":            "how long a disconnected client may come back and recover its id, rooms and missed messages (Go duration; 0s turns recovery off)",
	"ping_timeout":               "Engine.IO ping timeout, greater than the interval (Go duration, e.g. 30s)",
	"socket_queue_max_bytes":     "bytes that may wait to be written to one socket before it is disconnected as a slow consumer",
	"event_rate_limit":           "client events a second one user may send (0: no limit)",
	"event_rate_burst":           "burst of client events above the rate",
	"max_connections_per_user":   "sockets one user may have on an instance (0: no bound)",
	"shutdown_timeout":           "bound of a graceful shutdown (Go duration, e.g. 10s)",
	"kafka_brokers":              "Kafka bootstrap brokers, comma-separated host:port (BUS=kafka)",
	"kafka_client_id":            "client id web3-socket gives the Kafka brokers",
	"kafka_tls":                  "connect to Kafka (and the audit brokers) with TLS",
	"kafka_sasl_mechanism":       "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)",
	"kafka_sasl_username":        "Kafka SASL user name",
	"kafka_sasl_password":        "Kafka SASL password",
	"kafka_partitions":           "partitions of the Kafka topics web3-socket creates",
	"audit_kafka_brokers":        "with BUS=memory or redis: copy every inbound and outbound envelope to these Kafka brokers",
}

// NewFlagSet returns a flag set holding --config and one flag per setting
// (--port, --jwt-secret, …). A sub-command may add its own flags to it before
// handing it to LoadConfigFlags.
func NewFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String(configFlag, "", "YAML file of settings, keys as the variable names in lower case")
	defaults := reflect.ValueOf(DefaultConfig())
	for _, s := range configSettings {
		usage := settingUsage[s.key] + " (" + s.env
		if d := defaults.Field(s.index); !d.IsZero() && s.key != "bus" {
			usage += ", default " + formatValue(d)
		}
		usage += ")"
		if s.kind.Kind() == reflect.Bool {
			fs.Bool(s.flag, false, usage)
		} else {
			fs.String(s.flag, "", usage)
		}
	}
	return fs
}

// LoadConfig reads the configuration from its layers, each overriding the one
// before: built-in defaults, the YAML file named by --config, a .env file in
// the working directory, the process environment, and the flags in args.
//
// Only the known variables are taken from the environment and from .env; an
// empty variable counts as unset. Durations use Go syntax ("25s"); a bare
// number is refused rather than guessed as seconds or milliseconds.
//
// LoadConfig does not validate: call Config.Validate. In development it
// generates the JWT secret and API key that are missing and reports them in
// Generated.
func LoadConfig(args []string) (Config, Generated, error) {
	return LoadConfigFlags(NewFlagSet("web3-socket"), args)
}

// LoadConfigFlags is LoadConfig with a flag set made by NewFlagSet, possibly
// extended by the caller. It parses args unless the set is already parsed.
func LoadConfigFlags(fs *pflag.FlagSet, args []string) (Config, Generated, error) {
	if !fs.Parsed() {
		if err := fs.Parse(args); err != nil {
			return Config{}, Generated{}, err
		}
	}
	if fs.NArg() > 0 {
		return Config{}, Generated{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaultLayer(), "."), nil); err != nil {
		return Config{}, Generated{}, fmt.Errorf("load defaults: %w", err)
	}
	if path, _ := fs.GetString(configFlag); path != "" {
		if err := loadFile(k, path); err != nil {
			return Config{}, Generated{}, err
		}
	}
	if err := loadDotEnv(k, envFile); err != nil {
		return Config{}, Generated{}, err
	}
	if err := loadEnv(k); err != nil {
		return Config{}, Generated{}, err
	}
	if err := loadFlags(k, fs); err != nil {
		return Config{}, Generated{}, err
	}

	cfg, err := decodeConfig(k)
	if err != nil {
		return Config{}, Generated{}, err
	}
	cfg.normalize()
	gen := cfg.generate()
	return cfg, gen, nil
}

// defaultLayer is DefaultConfig as a koanf map. BUS is left out so that an
// unset BUS can still follow REDIS_ENABLED.
func defaultLayer() map[string]any {
	d := reflect.ValueOf(DefaultConfig())
	m := make(map[string]any)
	for _, s := range configSettings {
		if f := d.Field(s.index); !f.IsZero() && s.key != "bus" {
			m[s.key] = f.Interface()
		}
	}
	return m
}

// loadFile merges the YAML file at path. An unknown key is an error, since it
// is most likely a typo that would otherwise be silently ignored.
func loadFile(k *koanf.Koanf, path string) error {
	layer := koanf.New(".")
	if err := layer.Load(file.Provider(path), yaml.Parser()); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	m := make(map[string]any)
	var errs []error
	for key, v := range layer.All() {
		name := strings.ToUpper(key)
		if !knownEnv(name) {
			errs = append(errs, fmt.Errorf("config file %s: unknown setting %q", path, key))
			continue
		}
		m[name] = v
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return k.Load(confmap.Provider(fromEnvNames(m), "."), nil)
}

// loadDotEnv merges the known variables of a .env file, if there is one.
func loadDotEnv(k *koanf.Koanf, path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	raw, err := file.Provider(path).ReadBytes()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	vars, err := dotenv.Parser().Unmarshal(raw)
	if err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return k.Load(confmap.Provider(fromEnvNames(vars), "."), nil)
}

// loadEnv merges the known variables of the process environment.
func loadEnv(k *koanf.Koanf) error {
	vars, err := env.Provider("", env.Opt{
		TransformFunc: func(name, value string) (string, any) {
			if !knownEnv(name) {
				return "", nil
			}
			return name, value
		},
	}).Read()
	if err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	return k.Load(confmap.Provider(fromEnvNames(vars), "."), nil)
}

// loadFlags merges the flags given on the command line; flags left alone do
// not override the layers below.
func loadFlags(k *koanf.Koanf, fs *pflag.FlagSet) error {
	keys := make(map[string]string, len(configSettings))
	for _, s := range configSettings {
		keys[s.flag] = s.key
	}
	p := posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
		key, ok := keys[f.Name]
		if !ok {
			return "", nil
		}
		return key, posflag.FlagVal(fs, f)
	})
	return k.Load(p, nil)
}

// knownEnv reports whether name is the variable of a setting.
func knownEnv(name string) bool {
	if name == appEnvAlias {
		return true
	}
	for _, s := range configSettings {
		if s.env == name {
			return true
		}
	}
	return false
}

// fromEnvNames turns variables into koanf keys, keeping only the known ones
// that are not empty. NODE_ENV wins over APP_ENV when a layer sets both.
func fromEnvNames(vars map[string]any) map[string]any {
	m := make(map[string]any)
	for name, v := range vars {
		if s, ok := v.(string); ok && strings.TrimSpace(s) == "" {
			continue
		}
		for _, st := range configSettings {
			if st.env == name {
				m[st.key] = v
			}
		}
	}
	if v, ok := vars[appEnvAlias]; ok {
		if _, set := m["node_env"]; !set {
			if s, isString := v.(string); !isString || strings.TrimSpace(s) != "" {
				m["node_env"] = v
			}
		}
	}
	return m
}

// decodeConfig converts the merged layers into a Config, naming the variable
// of every value that does not convert.
func decodeConfig(k *koanf.Koanf) (Config, error) {
	var cfg Config
	v := reflect.ValueOf(&cfg).Elem()
	var errs []error
	for _, s := range configSettings {
		raw := k.Get(s.key)
		if raw == nil {
			continue
		}
		if err := setField(v.Field(s.index), raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.env, err))
		}
	}
	return cfg, errors.Join(errs...)
}

var durationType = reflect.TypeFor[time.Duration]()

// setField stores raw, as read from any layer, into one Config field.
func setField(f reflect.Value, raw any) error {
	switch {
	case f.Type() == durationType:
		d, err := toDuration(raw)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		s, err := toString(raw)
		if err != nil {
			return err
		}
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := toBool(raw)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := toInt(raw)
		if err != nil {
			return err
		}
		if f.OverflowInt(n) {
			return fmt.Errorf("%d is out of range", n)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Float64:
		x, err := toFloat(raw)
		if err != nil {
			return err
		}
		f.SetFloat(x)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		list, err := toStringList(raw)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

func toString(raw any) (string, error) {
	switch v := raw.(type) {
	case string:
		return v, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(v), nil
	case []any, []string:
		// A YAML list for a comma-separated setting such as cors_origin.
		list, err := toStringList(v)
		return strings.Join(list, ","), err
	default:
		return "", fmt.Errorf("want a single value, got %T", raw)
	}
}

func toBool(raw any) (bool, error) {
	switch v := raw.(type) {
	case bool:
		return v, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "t", "true", "yes", "on":
			return true, nil
		case "0", "f", "false", "no", "off":
			return false, nil
		}
		return false, fmt.Errorf("%q is not a boolean (want true or false)", v)
	default:
		return false, fmt.Errorf("%v is not a boolean (want true or false)", raw)
	}
}

func toInt(raw any) (int64, error) {
	switch v := raw.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case uint64:
		if v > 1<<63-1 {
			return 0, fmt.Errorf("%d is out of range", v)
		}
		return int64(v), nil
	case float64:
		if v != float64(int64(v)) {
			return 0, fmt.Errorf("%v is not a whole number", v)
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", v)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%v is not a whole number", raw)
	}
}

func toFloat(raw any) (float64, error) {
	switch v := raw.(type) {
	case float64:
		return v, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	case string:
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		return x, nil
	default:
		return 0, fmt.Errorf("%v is not a number", raw)
	}
}

// toDuration reads Go duration syntax. A bare number is refused: the original
// service counted some intervals in milliseconds, and guessing the unit would
// silently turn 25000 into almost seven hours or 25 into 25ms.
func toDuration(raw any) (time.Duration, error) {
	switch v := raw.(type) {
	case time.Duration:
		return v, nil
	case int, int64, uint64, float64:
		return 0, fmt.Errorf("%v has no unit: write a Go duration such as \"25s\" or \"500ms\"", v)
	case string:
		s := strings.TrimSpace(v)
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return 0, fmt.Errorf("%q has no unit: write a Go duration such as \"25s\" or \"500ms\"", v)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: write a Go duration such as \"25s\" or \"1m30s\"", v)
		}
		return d, nil
	default:
		return 0, fmt.Errorf("%v is not a duration", raw)
	}
}

// toStringList reads a comma-separated string or a list, trimming spaces and
// dropping empty entries.
func toStringList(raw any) ([]string, error) {
	var parts []string
	switch v := raw.(type) {
	case string:
		parts = strings.Split(v, ",")
	case []string:
		parts = v
	case []any:
		for _, item := range v {
			s, err := toString(item)
			if err != nil {
				return nil, err
			}
			parts = append(parts, strings.Split(s, ",")...)
		}
	default:
		return nil, fmt.Errorf("%v is not a list", raw)
	}
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// normalize puts values written in several ways into one spelling, and
// derives BUS from REDIS_ENABLED when BUS was not given.
func (c *Config) normalize() {
	c.Env = strings.ToLower(strings.TrimSpace(c.Env))
	switch c.Env {
	case "dev":
		c.Env = EnvDevelopment
	case "prod":
		c.Env = EnvProduction
	}
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	if c.LogLevel == "warning" {
		c.LogLevel = "warn"
	}
	c.Bus = strings.ToLower(strings.TrimSpace(c.Bus))
	if c.Bus == "" {
		c.Bus = "memory"
		if c.RedisEnabled {
			c.Bus = "redis"
		}
	}
	c.CORSOrigin = strings.TrimSpace(c.CORSOrigin)
	c.BackendURL = strings.TrimSpace(c.BackendURL)
	// A PEM in one environment variable is usually written with \n escapes.
	if !strings.Contains(c.JWTPublicKey, "\n") {
		c.JWTPublicKey = strings.ReplaceAll(c.JWTPublicKey, `\n`, "\n")
	}
}

// generate fills what may be made up: the instance id always, and in
// development the missing JWT secret and API key, which it returns. No secret
// is generated when JWT_PUBLIC_KEY is set, since tokens then come from the
// holder of the private key.
func (c *Config) generate() Generated {
	if c.InstanceID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "web3-socket"
		}
		c.InstanceID = host + "-" + randomHex(3)
	}
	var gen Generated
	if c.Production() {
		return gen
	}
	if c.JWTSecret == "" && c.JWTPublicKey == "" {
		gen.JWTSecret = randomHex(32)
		c.JWTSecret = gen.JWTSecret
	}
	if len(c.APIKeys) == 0 {
		gen.APIKey = randomHex(32)
		c.APIKeys = []string{gen.APIKey}
	}
	return gen
}

// randomHex returns n random bytes from crypto/rand, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand aborts the program instead
	return hex.EncodeToString(b)
}
