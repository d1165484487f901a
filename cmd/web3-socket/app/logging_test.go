package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestLogger(t *testing.T, cfg Config) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	log, closer, err := NewLogger(cfg, &buf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	return log, &buf
}

func TestLoggerRedactsSecrets(t *testing.T) {
	const secret = "s3cr3t-value-that-must-not-leak"
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"
	tests := []struct {
		name string
		attr slog.Attr
	}{
		{"token", slog.String("token", secret)},
		{"access_token", slog.String("access_token", secret)},
		{"Authorization", slog.String("Authorization", secret)},
		{"JWT_SECRET", slog.String("JWT_SECRET", secret)},
		{"jwtSecret", slog.String("jwtSecret", secret)},
		{"password", slog.String("password", secret)},
		{"redis_password", slog.String("redis_password", secret)},
		{"api_key", slog.String("api_key", secret)},
		{"X-API-Key header", slog.String("X-API-Key", secret)},
		{"apiKey", slog.String("apiKey", secret)},
		{"key", slog.String("key", secret)},
		{"non-string value", slog.Any("token", []string{secret})},
		{"inside a secret group", slog.Group("authorization", slog.String("value", secret))},
		{"nested under a secret group", slog.Group("jwt_secret", slog.Group("inner", slog.String("v", secret)))},
		{"bearer value under any key", slog.String("header", "Bearer "+secret)},
		{"JWT value under any key", slog.String("value", jwt)},
	}
	for _, env := range []string{EnvDevelopment, EnvProduction} {
		for _, tt := range tests {
			t.Run(env+"/"+tt.name, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Env = env
				log, buf := newTestLogger(t, cfg)
				log.Info("request", tt.attr)
				log.With(tt.attr).Info("with")
				out := buf.String()
				if strings.Contains(out, secret) || strings.Contains(out, jwt) {
					t.Errorf("secret logged: %s", out)
				}
				if strings.Count(out, redactedValue) != 2 {
					t.Errorf("want [REDACTED] twice: %s", out)
				}
			})
		}
	}
}

func TestLoggerKeepsOrdinaryAttributes(t *testing.T) {
	log, buf := newTestLogger(t, DefaultConfig())
	log.Info("connected", "user", "u1", "monkey", "banana", "keyboard", "qwerty", "room", "lobby", "err", errors.New("boom"))
	out := buf.String()
	for _, want := range []string{"msg=connected", "user=u1", "monkey=banana", "keyboard=qwerty", "room=lobby", "err=boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing from %s", want, out)
		}
	}
	if strings.Contains(out, redactedValue) {
		t.Errorf("ordinary attribute redacted: %s", out)
	}
}

func TestLoggerRedactsAConfigLoggedWhole(t *testing.T) {
	cfg := validProduction()
	cfg.JWTSecret = "config-secret-config-secret-0123"
	cfg.APIKeys = []string{"config-api-key-0123"}
	log, buf := newTestLogger(t, cfg)
	log.Info("starting", "config", cfg)
	out := buf.String()
	if strings.Contains(out, cfg.JWTSecret) || strings.Contains(out, cfg.APIKeys[0]) {
		t.Errorf("secret logged: %s", out)
	}
	if !strings.Contains(out, `"port":"8081"`) {
		t.Errorf("config not logged: %s", out)
	}
}

func TestLoggerIsJSONInProductionAndTextInDevelopment(t *testing.T) {
	prod := DefaultConfig()
	prod.Env = EnvProduction
	log, buf := newTestLogger(t, prod)
	log.Info("hello", "user", "u1")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("production log is not JSON: %v: %s", err, buf)
	}
	if rec["msg"] != "hello" || rec["level"] != "INFO" || rec["user"] != "u1" {
		t.Errorf("unexpected record %v", rec)
	}

	log, buf = newTestLogger(t, DefaultConfig())
	log.Info("hello", "user", "u1")
	out := buf.String()
	if json.Valid(buf.Bytes()) || !strings.Contains(out, "level=INFO msg=hello user=u1") {
		t.Errorf("development log is not text: %s", out)
	}
}

func TestLoggerHonoursLogLevel(t *testing.T) {
	tests := []struct {
		level            string
		debug, info, err bool
	}{
		{"debug", true, true, true},
		{"info", false, true, true},
		{"warn", false, false, true},
		{"error", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.LogLevel = tt.level
			log, buf := newTestLogger(t, cfg)
			log.Debug("d-line")
			log.Info("i-line")
			log.Error("e-line")
			out := buf.String()
			for line, want := range map[string]bool{"d-line": tt.debug, "i-line": tt.info, "e-line": tt.err} {
				if strings.Contains(out, line) != want {
					t.Errorf("%s logged = %v, want %v", line, !want, want)
				}
			}
		})
	}
	cfg := DefaultConfig()
	cfg.LogLevel = "loud"
	if _, _, err := NewLogger(cfg, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Errorf("want a LOG_LEVEL error, got %v", err)
	}
}

func TestLoggerWritesToStdoutAndARotatedFile(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LogToFile = true
	cfg.LogDir = filepath.Join(t.TempDir(), "nested", "logs")
	var stdout bytes.Buffer
	log, closer, err := NewLogger(cfg, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("to both", "token", "file-secret")
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(cfg.LogDir, "web3-socket.log"))
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"stdout": stdout.String(), "file": string(file)} {
		if !strings.Contains(out, "msg=\"to both\"") {
			t.Errorf("%s lacks the record: %q", name, out)
		}
		if strings.Contains(out, "file-secret") {
			t.Errorf("%s has the secret: %q", name, out)
		}
	}
}

func TestLoggerRefusesAnUnusableLogDir(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	writeFile(t, blocker, "")
	cfg := DefaultConfig()
	cfg.LogToFile = true
	cfg.LogDir = filepath.Join(blocker, "logs")
	if _, _, err := NewLogger(cfg, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "LOG_DIR") {
		t.Errorf("want a LOG_DIR error, got %v", err)
	}
}
