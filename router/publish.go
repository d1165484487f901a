package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/web3-socket/web3-socket/schemas"
)

// ErrBusUnavailable reports that the bus did not accept a message; nothing of
// the failed call was accepted.
var ErrBusUnavailable = errors.New("bus unavailable")

// Publisher turns envelopes into Watermill messages and publishes them.
type Publisher struct {
	pub     message.Publisher
	metrics *Metrics
	// published holds each topic's counter of published messages
	// (prometheus.Counter by topic name), resolved once: resolving a label
	// hashes it, for every call.
	published sync.Map
}

// NewPublisher returns a Publisher over pub.
func NewPublisher(pub message.Publisher, metrics *Metrics) *Publisher {
	return &Publisher{pub: pub, metrics: metrics}
}

// Publish validates envs and publishes them, in order, on topic. It returns an
// error wrapping schemas.ErrInvalid for an invalid envelope (nothing is
// published then) and one wrapping ErrBusUnavailable when the bus refused them.
func (p *Publisher) Publish(ctx context.Context, topic string, envs ...*schemas.Envelope) error {
	msgs := make([]*message.Message, len(envs))
	for i, env := range envs {
		msg, err := NewMessage(env)
		if err != nil {
			return &InvalidError{Index: i, Err: err}
		}
		msgs[i] = msg
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish %s: %w: %w", topic, ErrBusUnavailable, err)
	}
	if err := p.pub.Publish(topic, msgs...); err != nil {
		p.metrics.publishErrors.WithLabelValues(topic).Inc()
		return fmt.Errorf("publish %s: %w: %w", topic, ErrBusUnavailable, err)
	}
	p.publishedOn(topic).Add(float64(len(msgs)))
	return nil
}

// publishedOn returns the counter of messages published on topic.
func (p *Publisher) publishedOn(topic string) prometheus.Counter {
	if c, ok := p.published.Load(topic); ok {
		return c.(prometheus.Counter)
	}
	c, _ := p.published.LoadOrStore(topic, p.metrics.published.WithLabelValues(topic))
	return c.(prometheus.Counter)
}

// InvalidError says which envelope of a Publish call is invalid (none of
// them was published). It wraps the validation error (schemas.ErrInvalid).
type InvalidError struct {
	Index int
	Err   error
}

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// NewMessage validates env and wraps it in a Watermill message whose UUID is
// the envelope id and whose metadata mirrors the routing fields.
func NewMessage(env *schemas.Envelope) (*message.Message, error) {
	payload, err := schemas.Encode(env)
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(env.ID, payload)
	msg.SetContext(context.WithValue(msg.Context(), envelopeKey{}, env))
	// The metadata map message.NewMessage made holds these fields, and the
	// offset a bus adds, without growing: a map of up to 8 entries is one
	// group (one allocation); asking for more at make time would allocate a
	// table of 16 slots for every message.
	md := msg.Metadata
	md.Set(schemas.MetaKind, string(env.Kind))
	md.Set(schemas.MetaOrigin, schemas.OriginServer)
	setIf(md, schemas.MetaEvent, env.Event)
	setIf(md, schemas.MetaSocket, env.SocketID)
	setIf(md, schemas.MetaInstance, env.Instance)
	md.Set(schemas.MetaTS, env.TS.UTC().Format(time.RFC3339Nano))
	if env.RequestReply {
		md.Set(schemas.MetaRequestReply, "true")
	}
	var users, rooms []string
	if env.To != nil {
		users, rooms = env.To.Users, env.To.Rooms
		if env.To.All {
			md.Set("all", "true")
		}
	}
	setIf(md, schemas.MetaUser, joinIDs(env.UserID, users))
	setIf(md, schemas.MetaRoom, joinIDs(env.Room, rooms))
	return msg, nil
}

// joinIDs returns first (when not empty) and then the items of rest, joined
// by commas. It allocates only to join two ids or more.
func joinIDs(first string, rest []string) string {
	switch {
	case first == "":
		return strings.Join(rest, ",")
	case len(rest) == 0:
		return first
	}
	return first + "," + strings.Join(rest, ",")
}

type envelopeKey struct{}

// EnvelopeOf returns the envelope a message was built from, when the message
// never left this process (the memory bus keeps message contexts). A handler
// uses it to skip decoding bytes that were validated when published; a message
// that came over the network has no such envelope and must be decoded.
func EnvelopeOf(msg *message.Message) (*schemas.Envelope, bool) {
	env, ok := msg.Context().Value(envelopeKey{}).(*schemas.Envelope)
	return env, ok
}

func setIf(md message.Metadata, key, value string) {
	if value != "" {
		md.Set(key, value)
	}
}
