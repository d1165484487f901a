// Package router builds the Watermill router and the bus under it: pub/sub
// construction for each bus kind, topic names, middleware (recoverer, retry,
// poison queue) and the envelope publisher the edges use.
package router

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Bus kinds.
const (
	KindMemory = "memory"
	KindRedis  = "redis"
	KindKafka  = "kafka"
)

// Bus is the seam between web3-socket and a message broker. The bridge and the
// handlers only ever see a Bus, so a new broker is a new implementation of
// this interface and nothing else.
type Bus interface {
	// Kind names the implementation: memory, redis or kafka.
	Kind() string
	// Publisher publishes to any topic.
	Publisher() message.Publisher
	// FanOut returns a subscriber on which this instance sees every message of
	// a topic, whatever other instances do (outbound, control).
	FanOut() message.Subscriber
	// WorkQueue returns a subscriber whose messages are shared among all the
	// subscribers of the same group across instances (inbound).
	WorkQueue(group string) message.Subscriber
	// Ping reports whether the broker is reachable.
	Ping(ctx context.Context) error
	// Close releases the broker connections.
	Close() error
}

// BusConfig selects and configures a Bus.
type BusConfig struct {
	Kind  string
	Redis RedisConfig
	// LogWindow is how long the embedded bus keeps each topic's messages as
	// its Log (0: it keeps none). The Redis bus's log is its streams.
	LogWindow time.Duration
	Kafka     KafkaConfig
	// Metrics, when set, receive what only the bus can see (consumer lag).
	Metrics *Metrics
}

// NewBus returns the Bus of the configured kind.
func NewBus(cfg BusConfig, log *slog.Logger) (Bus, error) {
	switch cfg.Kind {
	case "", KindMemory:
		return newMemoryBus(cfg.LogWindow, log), nil
	case KindRedis:
		return newRedisBus(cfg.Redis, cfg.Metrics, log)
	case KindKafka:
		return newKafkaBus(cfg.Kafka, log)
	default:
		return nil, fmt.Errorf("bus %q: unknown kind (want memory, redis or kafka)", cfg.Kind)
	}
}

// Topics holds the topic names, all sharing one prefix.
type Topics struct {
	Outbound string
	Inbound  string
	Control  string
	Poison   string
}

// NewTopics returns the topic names under prefix (for example "socket.").
func NewTopics(prefix string) Topics {
	return Topics{
		Outbound: prefix + "outbound",
		Inbound:  prefix + "inbound",
		Control:  prefix + "control",
		Poison:   prefix + "poison",
	}
}

// watermillLogger adapts slog for Watermill, one level quieter: Watermill logs
// routine events (a message with no subscriber, a handler starting) at info.
// It checks the level before turning fields into attributes: Watermill logs
// several trace lines for every message, and building them cost more than a
// tenth of the CPU of a busy instance.
func watermillLogger(log *slog.Logger) watermill.LoggerAdapter {
	return &levelCheckedLogger{log: log.With("component", "watermill"), slog: watermill.NewSlogLoggerWithLevelMapping(
		log.With("component", "watermill"), map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})}
}

type levelCheckedLogger struct {
	log  *slog.Logger
	slog watermill.LoggerAdapter
}

func (l *levelCheckedLogger) enabled(level slog.Level) bool {
	return l.log.Enabled(context.Background(), level)
}

func (l *levelCheckedLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.slog.Error(msg, err, fields)
}

func (l *levelCheckedLogger) Info(msg string, fields watermill.LogFields) {
	if l.enabled(slog.LevelDebug) { // info is mapped to debug
		l.slog.Info(msg, fields)
	}
}

func (l *levelCheckedLogger) Debug(msg string, fields watermill.LogFields) {
	if l.enabled(slog.LevelDebug) {
		l.slog.Debug(msg, fields)
	}
}

func (l *levelCheckedLogger) Trace(msg string, fields watermill.LogFields) {
	if l.enabled(watermill.LevelTrace) {
		l.slog.Trace(msg, fields)
	}
}

func (l *levelCheckedLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &levelCheckedLogger{log: l.log, slog: l.slog.With(fields)}
}

// Drainer is a Bus that holds what was published in the process for its
// subscribers (the embedded bus's queues): Drain waits until they have
// handled it, or ctx is done. An instance drains its bus before it stops its
// router, so that what it accepted is not dropped on the way out.
type Drainer interface {
	Drain(ctx context.Context) error
}
