package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// Deliverer takes deliver envelopes for the sockets of this instance.
type Deliverer interface {
	Enqueue(ctx context.Context, env *schemas.Envelope) error
}

// Outbound returns the handler of the outbound topic: it validates each
// envelope and queues it for local delivery. An invalid envelope is a
// permanent error, so it goes to the poison topic and the stream moves on.
func Outbound(d Deliverer) router.HandlerFunc { return OutboundOnce(d, nil) }

// OutboundOnce is Outbound delivering each envelope id once within the
// window of seen: a second copy of an envelope (a backend that published it
// again, with the same id) is dropped. Envelopes web3-socket published itself
// (schemas.MetaOrigin) have fresh ids published once and skip the check,
// which costs a Redis round trip with the Redis bus. seen may be nil (no
// deduplication).
// When seen cannot be reached the envelope is delivered: a duplicate is
// better than a loss.
func OutboundOnce(d Deliverer, seen router.Dedupe) router.HandlerFunc {
	return func(msg *message.Message) error {
		env, err := decode(msg, schemas.KindDeliver)
		if err != nil {
			return err
		}
		if seen == nil || msg.Metadata.Get(schemas.MetaOrigin) == schemas.OriginServer {
			return d.Enqueue(msg.Context(), env)
		}
		copyID := msg.Metadata.Get(router.MetaEntryID)
		first, err := seen.Claim(msg.Context(), env.ID, copyID)
		if err == nil && !first {
			return nil
		}
		if err := d.Enqueue(msg.Context(), env); err != nil {
			if first {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), 2*time.Second)
				_ = seen.Release(ctx, env.ID, copyID)
				cancel()
			}
			return err
		}
		return nil
	}
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
