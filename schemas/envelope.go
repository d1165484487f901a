// Package schemas is the wire contract of web3-socket: the bus envelope, its
// JSON Schema, and the OpenAPI description of the REST API. A backend written
// in Go imports this package to publish envelopes.
package schemas

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Version is the envelope format version carried in the "v" field.
const Version = 1

// Kind says what an envelope asks for.
type Kind string

// Envelope kinds.
const (
	// KindDeliver carries an event to sockets; it travels on the outbound topic.
	KindDeliver Kind = "deliver"
	// KindClientEvent carries an event a client emitted; it travels on the inbound topic.
	KindClientEvent Kind = "client_event"
	// KindControl carries a cluster command or heartbeat; it travels on the control topic.
	KindControl Kind = "control"
)

// Control actions carried by KindControl envelopes.
const (
	ActionJoin       = "join"
	ActionLeave      = "leave"
	ActionDisconnect = "disconnect"
	ActionHeartbeat  = "heartbeat"
	// ActionQuery asks every instance about its sockets (data says what);
	// each answers with ActionReply, data naming the query's id.
	ActionQuery = "query"
	ActionReply = "reply"
)

// Metadata keys that mirror routing fields of the envelope on the bus message,
// so that auditors can filter without parsing the payload.
const (
	MetaKind     = "kind"
	MetaEvent    = "event"
	MetaUser     = "user"
	MetaRoom     = "room"
	MetaSocket   = "socket"
	MetaInstance = "instance"
	MetaTS       = "ts"
	// MetaRequestReply ("true") marks a client event whose client asked for
	// an acknowledgement while a backend URL was set: the backend answered
	// it over HTTP (request/reply), so the BACKEND_URL forwarder skips it.
	MetaRequestReply = "request_reply"
	// MetaOrigin is OriginServer on every message a web3-socket instance
	// publishes (REST calls, client events, cluster commands). Its envelope
	// ids are fresh and published once, so only envelopes without it (from
	// backends) are checked for duplicates.
	MetaOrigin = "origin"
)

// OriginServer is the MetaOrigin of messages web3-socket publishes itself.
const OriginServer = "web3-socket"

// Envelope is the payload of every message on the bus.
type Envelope struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`

	// To addresses a deliver envelope.
	To *Target `json:"to,omitempty"`

	Event string          `json:"event,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`

	// UserID and SocketID name the sender of a client event, or the subject
	// of a control command.
	UserID   string `json:"userId,omitempty"`
	SocketID string `json:"socketId,omitempty"`
	// Instance is the instance that produced the envelope.
	Instance string `json:"instance,omitempty"`

	// Action and Room describe a control command.
	Action string `json:"action,omitempty"`
	Room   string `json:"room,omitempty"`

	TS time.Time `json:"ts"`

	// RequestReply marks a client event sent to the backend by request/reply.
	// It is not part of the payload: it travels as the MetaRequestReply
	// metadata of the bus message.
	RequestReply bool `json:"-"`
}

// Target says which sockets a deliver envelope reaches. The union of Users,
// Rooms and Sockets is addressed (or every socket when All is set), minus
// whatever Except names.
type Target struct {
	Users   []string `json:"users,omitempty"`
	Rooms   []string `json:"rooms,omitempty"`
	Sockets []string `json:"sockets,omitempty"`
	All     bool     `json:"all,omitempty"`
	Except  *Exclude `json:"except,omitempty"`
}

// Exclude names the recipients a Target leaves out.
type Exclude struct {
	Users   []string `json:"users,omitempty"`
	Rooms   []string `json:"rooms,omitempty"`
	Sockets []string `json:"sockets,omitempty"`
}

// NewID returns a fresh envelope id (a UUID v7, so ids sort by creation time).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// NewDeliver returns a deliver envelope with a fresh id and the current time.
func NewDeliver(to Target, event string, data json.RawMessage) *Envelope {
	// The envelope and its target live as long as each other: one
	// allocation holds both (REST calls make one envelope per message).
	d := &struct {
		env Envelope
		to  Target
	}{Envelope{V: Version, ID: NewID(), Kind: KindDeliver, Event: event, Data: data, TS: time.Now().UTC()}, to}
	d.env.To = &d.to
	return &d.env
}

// NewClientEvent returns a client_event envelope with a fresh id and the current time.
func NewClientEvent(userID, socketID, instance, event string, data json.RawMessage) *Envelope {
	return &Envelope{V: Version, ID: NewID(), Kind: KindClientEvent, UserID: userID, SocketID: socketID,
		Instance: instance, Event: event, Data: data, TS: time.Now().UTC()}
}

// NewControl returns a control envelope with a fresh id and the current time.
func NewControl(action, userID, room, instance string) *Envelope {
	return &Envelope{V: Version, ID: NewID(), Kind: KindControl, Action: action, UserID: userID, Room: room,
		Instance: instance, TS: time.Now().UTC()}
}
