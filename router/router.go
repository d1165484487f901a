package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/web3-socket/web3-socket/schemas"
)

// Config configures the Router.
type Config struct {
	// Poison is the topic that receives messages no handler could take.
	Poison string
	// CloseTimeout bounds how long Close waits for running handlers.
	CloseTimeout time.Duration
	// MaxRetries is how often a handler is retried on a transient error.
	MaxRetries int
	// RetryInterval is the first wait between retries; it doubles each time.
	RetryInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 10 * time.Second
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 50 * time.Millisecond
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Poison == "" {
		return errors.New("router: poison topic is required")
	}
	return nil
}

// HandlerFunc handles one message; an error retries it (unless Permanent) and,
// after the last attempt, sends it to the poison topic.
type HandlerFunc func(msg *message.Message) error

// Router runs the bus handlers of one instance.
type Router struct {
	wm      *message.Router
	bus     Bus
	metrics *Metrics
}

// New returns a Router over bus with the recoverer, retry and poison queue
// middleware installed.
func New(cfg Config, bus Bus, metrics *Metrics, log *slog.Logger) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wm, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, watermillLogger(log))
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	poison, err := middleware.PoisonQueue(bus.Publisher(), cfg.Poison)
	if err != nil {
		return nil, fmt.Errorf("router: poison queue: %w", err)
	}
	retry := middleware.Retry{
		// retryOnFailure makes the first attempt itself.
		MaxRetries:      cfg.MaxRetries - 1,
		InitialInterval: cfg.RetryInterval,
		MaxInterval:     cfg.RetryInterval * 16,
		Multiplier:      2,
		ShouldRetry:     func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) },
	}
	// Outermost first: count, poison what survives the retries (and count it),
	// retry, and turn panics into errors so they take the same road.
	wm.AddMiddleware(countConsumed(metrics), poison, countPoisoned(metrics), retryOnFailure(retry), middleware.Recoverer)
	return &Router{wm: wm, bus: bus, metrics: metrics}, nil
}

// HandleFanOut registers fn for every message of topic, as every instance sees it.
func (r *Router) HandleFanOut(name, topic string, fn HandlerFunc) {
	r.wm.AddConsumerHandler(name, topic, r.bus.FanOut(), r.wrap(topic, fn))
}

// HandleWorkQueue registers fn for the messages of topic shared by group.
func (r *Router) HandleWorkQueue(name, topic, group string, fn HandlerFunc) {
	r.wm.AddConsumerHandler(name, topic, r.bus.WorkQueue(group), r.wrap(topic, fn))
}

func (r *Router) wrap(topic string, fn HandlerFunc) message.NoPublishHandlerFunc {
	// Export the topic's series at zero before its first message.
	r.metrics.consumed.WithLabelValues(topic)
	r.metrics.poisoned.WithLabelValues(topic)
	r.metrics.handlerErrors.WithLabelValues(topic)
	return func(msg *message.Message) error {
		err := fn(msg)
		if err != nil {
			r.metrics.handlerErrors.WithLabelValues(topic).Inc()
		}
		return err
	}
}

// Run runs the handlers until ctx is done or Close is called.
func (r *Router) Run(ctx context.Context) error { return r.wm.Run(ctx) }

// Running is closed once every handler is subscribed.
func (r *Router) Running() chan struct{} { return r.wm.Running() }

// Close stops the handlers, waiting up to the close timeout for running ones.
func (r *Router) Close() error { return r.wm.Close() }

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err cannot be fixed by retrying: it is marked
// Permanent or it is an invalid envelope.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p) || errors.Is(err, schemas.ErrInvalid)
}

// retryOnFailure runs the handler once and hands it to Watermill's retry
// middleware only when that attempt failed with an error worth retrying: the
// retry middleware sets up its backoff for every message, which costs more
// than handling a message that succeeds at once (nearly all of them).
func retryOnFailure(retry middleware.Retry) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		retried := retry.Middleware(h)
		return func(msg *message.Message) ([]*message.Message, error) {
			msgs, err := h(msg)
			if err == nil || IsPermanent(err) {
				return msgs, err
			}
			return retried(msg)
		}
	}
}

func countPoisoned(m *Metrics) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			msgs, err := h(msg)
			if err != nil {
				m.poisoned.WithLabelValues(message.SubscribeTopicFromCtx(msg.Context())).Inc()
			}
			return msgs, err
		}
	}
}

func countConsumed(m *Metrics) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			m.consumed.WithLabelValues(message.SubscribeTopicFromCtx(msg.Context())).Inc()
			return h(msg)
		}
	}
}
