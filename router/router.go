package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
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
	retry   middleware.Retry
	poison  message.HandlerMiddleware
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
	// A deferred message stays on the bus instead: it is nacked, and the
	// subscriber hands it over again.
	poison, err := middleware.PoisonQueueWithFilter(bus.Publisher(), cfg.Poison, func(err error) bool { return !IsDeferred(err) })
	if err != nil {
		return nil, fmt.Errorf("router: poison queue: %w", err)
	}
	retry := middleware.Retry{
		// retryOnFailure makes the first attempt itself.
		MaxRetries:      cfg.MaxRetries - 1,
		InitialInterval: cfg.RetryInterval,
		MaxInterval:     cfg.RetryInterval * 16,
		Multiplier:      2,
		ShouldRetry:     func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) && !IsDeferred(p.Err) },
	}
	// Counting, panic recovery, retries and the poison queue apply to each
	// message, in the router's handler (see wrap): the router gets batches
	// of messages (batch.go).
	return &Router{wm: wm, bus: bus, metrics: metrics, retry: retry, poison: poison}, nil
}

// HandleFanOut registers fn for every message of topic, as every instance sees it.
func (r *Router) HandleFanOut(name, topic string, fn HandlerFunc) {
	r.wm.AddConsumerHandler(name, topic, batchesOf(r.bus.FanOut()), r.wrap(topic, fn))
}

// BatchHandler is a handler that can prepare the messages of a batch
// together before it handles each of them (to ask a store about all of them
// in one round trip, say). Prepare must not fail: what it could not prepare,
// Handle does alone.
type BatchHandler interface {
	Prepare(msgs []*message.Message)
	Handle(msg *message.Message) error
}

// HandleFanOutBatches is HandleFanOut for a BatchHandler.
func (r *Router) HandleFanOutBatches(name, topic string, h BatchHandler) {
	r.wm.AddConsumerHandler(name, topic, batchesOf(r.bus.FanOut()), r.wrapPrepared(topic, h.Handle, h.Prepare))
}

// HandleWorkQueue registers fn for the messages of topic shared by group.
func (r *Router) HandleWorkQueue(name, topic, group string, fn HandlerFunc) {
	r.wm.AddConsumerHandler(name, topic, batchesOf(r.bus.WorkQueue(group)), r.wrap(topic, fn))
}

// wrap counts, recovers, retries and poisons for one handler: a panic becomes
// an error, a transient error is retried with backoff, and a message still
// failing after the last attempt goes to the poison topic (and is counted). A
// deferred error is returned at once, for the message to be nacked. The
// router's handler runs it on each message of a batch in turn; an error (a
// deferred message, or the poison topic refused one) nacks the batch from that
// message on.
func (r *Router) wrap(topic string, fn HandlerFunc) message.NoPublishHandlerFunc {
	return r.wrapPrepared(topic, fn, nil)
}

// wrapPrepared is wrap with prepare, when not nil, called on the messages of
// each batch still to handle before they are.
func (r *Router) wrapPrepared(topic string, fn HandlerFunc, prepare func([]*message.Message)) message.NoPublishHandlerFunc {
	consumed := r.metrics.consumed.WithLabelValues(topic)
	poisoned := r.metrics.poisoned.WithLabelValues(topic)
	failed := r.metrics.handlerErrors.WithLabelValues(topic)
	attempt := func(msg *message.Message) (_ []*message.Message, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = middleware.RecoveredPanicError{V: p, Stacktrace: string(debug.Stack())}
			}
		}()
		if err = fn(msg); err != nil {
			failed.Inc()
		}
		return nil, err
	}
	// Watermill's retry sets up its backoff for every message it sees, which
	// costs more than a message that succeeds at once: it only sees those
	// that failed once.
	retried := r.retry.Middleware(attempt)
	// handle handles msg, which the router got as routed (itself, or the
	// batch carrying it), whose context names the handler and topic for the
	// poison queue.
	handle := func(msg, routed *message.Message) error {
		consumed.Inc()
		_, err := attempt(msg)
		if IsDeferred(err) {
			return err
		}
		if err != nil && !IsPermanent(err) {
			_, err = retried(msg)
		}
		if err == nil || IsDeferred(err) {
			return err
		}
		poisoned.Inc()
		// The poison queue marks the message it publishes: a copy, as the
		// subscriptions of the embedded bus share the messages of a batch.
		p := msg.Copy()
		p.SetContext(routed.Context())
		_, err = r.poison(func(*message.Message) ([]*message.Message, error) { return nil, err })(p)
		return err
	}
	return func(msg *message.Message) error {
		b, ok := batchOf(msg)
		if !ok {
			return handle(msg, msg)
		}
		if prepare != nil {
			prepare(b.msgs[b.done:])
		}
		for _, m := range b.msgs[b.done:] {
			if err := handle(m, msg); err != nil {
				return err
			}
			b.done++
		}
		return nil
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

// DeferredError marks a message the handler cannot take now and that must
// stay on the bus: it is nacked (the subscriber hands it over again, or
// another consumer takes it), neither retried at once nor poisoned. A handler
// returns it when its instance stops in the middle of a message.
type DeferredError struct{ Err error }

func (e *DeferredError) Error() string { return e.Err.Error() }
func (e *DeferredError) Unwrap() error { return e.Err }

// Defer marks err as a reason to leave the message on the bus.
func Defer(err error) error { return &DeferredError{Err: err} }

// IsDeferred reports whether err was marked by Defer.
func IsDeferred(err error) bool {
	var d *DeferredError
	return errors.As(err, &d)
}

// IsPermanent reports whether err cannot be fixed by retrying: it is marked
// Permanent or it is an invalid envelope.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p) || errors.Is(err, schemas.ErrInvalid)
}
