package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// Deliverer takes deliver envelopes, with their offsets in the bus's log, for
// the sockets of this instance.
type Deliverer interface {
	Enqueue(ctx context.Context, env *schemas.Envelope, offset string) error
}

// loneDeliverer is a Deliverer that may deliver an envelope the bus handed
// over alone (a batch of one) at once, in the handler's goroutine
// (bridge.Bridge.Deliver). The envelopes of a larger batch are queued, so
// that the handler goes on with the batch while they are written.
type loneDeliverer interface {
	Deliver(ctx context.Context, env *schemas.Envelope, offset string) error
}

// localReacher is a Deliverer that knows whether an envelope's target may
// reach one of its sockets (bridge.Bridge.Reaches). The outbound handler
// claims an envelope id in its Dedupe only where the envelope may be
// delivered: in a cluster most envelopes reach no socket of most instances,
// and each claim is work for the shared store.
type localReacher interface {
	Reaches(to *schemas.Target) bool
}

// Outbound returns the handler of the outbound topic: it validates each
// envelope and queues it for local delivery. An invalid envelope is a
// permanent error, so it goes to the poison topic and the stream moves on.
func Outbound(d Deliverer) router.HandlerFunc { return OutboundOnce(d, nil, nil) }

// OutboundOnce is Outbound delivering each envelope id once within the
// window of seen: a second copy of an envelope (a backend that published it
// again, with the same id) is dropped. Envelopes web3-socket published itself
// (schemas.MetaOrigin) have fresh ids and are checked against replayed
// instead: the copies a bus adds again after its broker lost data (Redis
// restarted without persistence), which this instance's memory of recent ids
// catches without a round trip. Either may be nil (no deduplication).
// When a Dedupe cannot be reached the envelope is delivered: a duplicate is
// better than a loss. An instance none of whose sockets an envelope may reach
// does not claim its id (see localReacher): a copy is dropped when an earlier
// copy was delivered somewhere, not merely read.
func OutboundOnce(d Deliverer, seen, replayed router.Dedupe) router.HandlerFunc {
	return NewOutbound(d, seen, replayed).Handle
}

// OutboundHandler is the outbound handler as a router.BatchHandler: the
// claims of a batch's backend envelopes are asked of a shared Dedupe
// (router.BatchDedupe) in one round trip, before each envelope is handled.
type OutboundHandler struct {
	d              Deliverer
	seen, replayed router.Dedupe

	mu sync.Mutex
	// prepared holds what Prepare learnt of the messages of the current
	// batch, for Handle to take.
	prepared map[*message.Message]preparedOutbound
	// rest counts the messages of the current batch of more than one that
	// Handle has not seen yet: while it is above 0, envelopes are queued
	// rather than delivered at once (loneDeliverer).
	rest int
}

type preparedOutbound struct {
	env *schemas.Envelope
	// claimed: Prepare claimed env's id, and first is the answer.
	claimed, first bool
}

// NewOutbound returns the outbound handler; see OutboundOnce.
func NewOutbound(d Deliverer, seen, replayed router.Dedupe) *OutboundHandler {
	return &OutboundHandler{d: d, seen: seen, replayed: replayed, prepared: map[*message.Message]preparedOutbound{}}
}

// Prepare claims the backend envelopes of msgs that may reach a local socket
// together, and keeps the decoded envelope of the others. What it cannot
// claim (a store error, an envelope that does not decode) Handle does alone.
func (h *OutboundHandler) Prepare(msgs []*message.Message) {
	h.mu.Lock()
	clear(h.prepared) // what an interrupted batch left
	h.rest = 0
	if len(msgs) > 1 {
		h.rest = len(msgs)
	}
	h.mu.Unlock()
	batch, ok := h.seen.(router.BatchDedupe)
	if !ok || len(msgs) < 2 {
		return
	}
	claims := make([]router.Claim, 0, len(msgs))
	which := make([]*message.Message, 0, len(msgs))
	envs := make([]*schemas.Envelope, 0, len(msgs))
	var elsewhere map[*message.Message]*schemas.Envelope
	for _, m := range msgs {
		if m.Metadata.Get(schemas.MetaOrigin) == schemas.OriginServer {
			continue
		}
		env, err := decode(m, schemas.KindDeliver)
		if err != nil {
			continue
		}
		if !h.reachesHere(env) {
			if elsewhere == nil {
				elsewhere = make(map[*message.Message]*schemas.Envelope)
			}
			elsewhere[m] = env
			continue
		}
		claims = append(claims, router.Claim{ID: env.ID, Copy: router.OffsetOf(m)})
		which, envs = append(which, m), append(envs, env)
	}
	if len(claims) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := batch.ClaimAll(ctx, claims)
		cancel()
		if err != nil {
			which = nil
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for m, env := range elsewhere {
		h.prepared[m] = preparedOutbound{env: env}
	}
	for i, m := range which {
		h.prepared[m] = preparedOutbound{env: envs[i], claimed: true, first: claims[i].First}
	}
}

// reachesHere reports whether env may reach a socket of this instance; true
// when the Deliverer cannot tell.
func (h *OutboundHandler) reachesHere(env *schemas.Envelope) bool {
	r, ok := h.d.(localReacher)
	return !ok || r.Reaches(env.To)
}

// take returns what Prepare learnt of msg, and whether msg came alone.
func (h *OutboundHandler) take(msg *message.Message) (p preparedOutbound, ok, alone bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok = h.prepared[msg]
	if ok {
		delete(h.prepared, msg)
	}
	alone = h.rest == 0
	if h.rest > 0 {
		h.rest--
	}
	return p, ok, alone
}

// Handle validates msg's envelope and queues it for local delivery, once
// per envelope id.
func (h *OutboundHandler) Handle(msg *message.Message) error {
	p, ok, alone := h.take(msg)
	if ok && p.claimed {
		if !p.first {
			return nil
		}
		return h.deliver(msg, p.env, h.seen, true, alone)
	}
	env := p.env
	if !ok {
		var err error
		if env, err = decode(msg, schemas.KindDeliver); err != nil {
			return err
		}
	}
	check := h.seen
	if msg.Metadata.Get(schemas.MetaOrigin) == schemas.OriginServer {
		check = h.replayed
	} else if check != nil && !h.reachesHere(env) {
		// Asked again (not taken from Prepare): a socket may have connected
		// since.
		check = nil
	}
	if check == nil {
		return h.enqueue(msg.Context(), env, router.OffsetOf(msg), alone)
	}
	first, err := check.Claim(msg.Context(), env.ID, router.OffsetOf(msg))
	if err == nil && !first {
		return nil
	}
	return h.deliver(msg, env, check, first, alone)
}

// enqueue hands env over for local delivery: at once when it came alone
// and the Deliverer can (loneDeliverer).
func (h *OutboundHandler) enqueue(ctx context.Context, env *schemas.Envelope, offset string, alone bool) error {
	if d, ok := h.d.(loneDeliverer); ok && alone {
		return d.Deliver(ctx, env, offset)
	}
	return h.d.Enqueue(ctx, env, offset)
}

// deliver queues env; when that fails, the claim (if it was this copy's) is
// released so that the copy handed over again is delivered.
func (h *OutboundHandler) deliver(msg *message.Message, env *schemas.Envelope, check router.Dedupe, claimed, alone bool) error {
	offset := router.OffsetOf(msg)
	if err := h.enqueue(msg.Context(), env, offset, alone); err != nil {
		if claimed && check != nil {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), 2*time.Second)
			_ = check.Release(ctx, env.ID, offset)
			cancel()
		}
		return err
	}
	return nil
}

// Members applies cluster commands to the sockets of this instance.
type Members interface {
	JoinUser(user, room string)
	LeaveUser(user, room string)
	DisconnectUser(user string)
}

// Observer records the heartbeats of the cluster's instances.
type Observer interface {
	Observe(router.Member)
}

// heartbeatStats is the data of a heartbeat envelope.
type heartbeatStats struct {
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Rooms       int `json:"rooms"`
}

// HeartbeatData returns the data of this instance's heartbeat.
func HeartbeatData(connections, users, rooms int) json.RawMessage {
	b, _ := json.Marshal(heartbeatStats{Connections: connections, Users: users, Rooms: rooms})
	return b
}

// Queries answers the cluster-wide questions of other instances and collects
// the answers to this one's (Presence does it).
type Queries interface {
	HandleQuery(env *schemas.Envelope)
	HandleReply(env *schemas.Envelope) error
}

// Control returns the handler of the control topic: cluster commands applied
// to this instance's sockets, heartbeats recorded in the cluster view, and
// presence queries and replies. queries may be nil.
func Control(m Members, cluster Observer, queries Queries) router.HandlerFunc {
	return func(msg *message.Message) error {
		env, err := decode(msg, schemas.KindControl)
		if err != nil {
			return err
		}
		switch env.Action {
		case schemas.ActionJoin:
			m.JoinUser(env.UserID, env.Room)
		case schemas.ActionLeave:
			m.LeaveUser(env.UserID, env.Room)
		case schemas.ActionDisconnect:
			m.DisconnectUser(env.UserID)
		case schemas.ActionHeartbeat:
			var st heartbeatStats
			if len(env.Data) > 0 {
				if err := json.Unmarshal(env.Data, &st); err != nil {
					return router.Permanent(fmt.Errorf("heartbeat data: %w", err))
				}
			}
			// Seen now, by this instance's clock: instances' clocks may differ.
			cluster.Observe(router.Member{Instance: env.Instance, Connections: st.Connections, Users: st.Users, Rooms: st.Rooms})
		case schemas.ActionQuery:
			if queries != nil {
				queries.HandleQuery(env)
			}
		case schemas.ActionReply:
			if queries != nil {
				if err := queries.HandleReply(env); err != nil {
					return router.Permanent(err)
				}
			}
		}
		return nil
	}
}

func decode(msg *message.Message, kind schemas.Kind) (*schemas.Envelope, error) {
	env, inProcess := router.EnvelopeOf(msg)
	if !inProcess {
		var err error
		if env, err = schemas.Decode(msg.Payload); err != nil {
			return nil, err
		}
	}
	if env.Kind != kind {
		return nil, router.Permanent(fmt.Errorf("envelope kind %q does not belong on this topic (want %q)", env.Kind, kind))
	}
	return env, nil
}

// OutboundLog reads the outbound topic of a bus's log as envelopes, for the
// recovery of clients (bridge.MissedLog). Entries that are not valid
// envelopes are skipped: they were poisoned when they were consumed.
type OutboundLog struct {
	Log   router.Log
	Topic string
}

// Has reports whether offset is still in the log.
func (l OutboundLog) Has(ctx context.Context, offset string) (bool, error) {
	return l.Log.Has(ctx, l.Topic, offset)
}

// ReadAfter calls fn with each valid envelope after offset.
func (l OutboundLog) ReadAfter(ctx context.Context, offset string, fn func(string, *schemas.Envelope) error) error {
	return l.Log.ReadAfter(ctx, l.Topic, offset, func(msg *message.Message) error {
		env, err := decode(msg, schemas.KindDeliver)
		if err != nil {
			return nil
		}
		return fn(router.OffsetOf(msg), env)
	})
}

// Compare orders two offsets.
func (OutboundLog) Compare(a, b string) int { return router.CompareOffsets(a, b) }

// SkipReplayed runs next once per message id: a copy of a message this
// service published that the bus added again (replayed, with another entry
// id) is acked without running next. replayed may be nil.
func SkipReplayed(next router.HandlerFunc, replayed router.Dedupe) router.HandlerFunc {
	if replayed == nil {
		return next
	}
	return func(msg *message.Message) error {
		offset := router.OffsetOf(msg)
		first, err := replayed.Claim(msg.Context(), msg.UUID, offset)
		if err == nil && !first {
			return nil
		}
		if err := next(msg); err != nil {
			if first {
				_ = replayed.Release(msg.Context(), msg.UUID, offset)
			}
			return err
		}
		return nil
	}
}
