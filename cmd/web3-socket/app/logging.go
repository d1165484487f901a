package app

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/natefinch/lumberjack.v2"
)

// logFileName is the active log file inside LOG_DIR; lumberjack renames it
// with a timestamp when it rotates.
const logFileName = "web3-socket.log"

// NewLogger returns the process logger: JSON in production, text in
// development, at LOG_LEVEL, written to stdout and, with LOG_TO_FILE, also to
// a file in LOG_DIR rotated at LOG_MAX_SIZE megabytes keeping LOG_MAX_FILES
// old files. Every attribute that may hold a secret is redacted (see
// redactAttr). Close the returned Closer on exit to close the file.
func NewLogger(cfg Config, stdout io.Writer) (*slog.Logger, io.Closer, error) {
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		return nil, nil, err
	}
	out := stdout
	var closer io.Closer = nopCloser{}
	if cfg.LogToFile {
		// Lumberjack creates the directory lazily, on the first write; doing it
		// now turns a bad LOG_DIR into a start-up error instead of lost logs.
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("LOG_DIR: %w", err)
		}
		rotated := &lumberjack.Logger{
			Filename:   filepath.Join(cfg.LogDir, logFileName),
			MaxSize:    cfg.LogMaxSize,
			MaxBackups: cfg.LogMaxFiles,
		}
		out = io.MultiWriter(stdout, rotated)
		closer = rotated
	}

	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler
	if cfg.Production() {
		h = slog.NewJSONHandler(out, opts)
	} else {
		h = slog.NewTextHandler(out, opts)
	}
	return slog.New(h), closer, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("LOG_LEVEL: %q is not a level: want debug, info, warn or error", s)
}

// secretKeyParts are the fragments of an attribute key (lower case, dashes
// as underscores) that mark its value as secret.
var secretKeyParts = []string{"token", "secret", "password", "api_key", "apikey", "authorization"}

// redactAttr is a slog ReplaceAttr that replaces the value of every attribute
// whose key, or the name of an enclosing group, looks like it holds a secret,
// and every string value that is a bearer credential or a JWT, whatever its key.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey:
			return a
		}
	}
	if isSecretKey(a.Key) {
		return slog.String(a.Key, redactedValue)
	}
	for _, g := range groups {
		if isSecretKey(g) {
			return slog.String(a.Key, redactedValue)
		}
	}
	if a.Value.Kind() == slog.KindString && looksLikeCredential(a.Value.String()) {
		return slog.String(a.Key, redactedValue)
	}
	return a
}

func isSecretKey(key string) bool {
	k := strings.ReplaceAll(strings.ToLower(key), "-", "_")
	if k == "key" {
		return true
	}
	for _, part := range secretKeyParts {
		if strings.Contains(k, part) {
			return true
		}
	}
	return false
}

// looksLikeCredential catches a secret logged under an innocent key: an
// Authorization header value or a compact JWT (base64url JSON header "eyJ").
func looksLikeCredential(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		return true
	}
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
