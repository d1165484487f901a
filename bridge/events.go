package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/web3-socket/web3-socket/schemas"
)

// Built-in client events; any other event name goes to the backends.
const (
	EventSendMessage = "send_message"
	EventJoin        = "join"
	EventLeave       = "leave"
	// EventMessage is what recipients of send_message receive.
	EventMessage = "message"
)

const maxRoomName = 256

// reply is an acknowledgement: {ok: true, …} or {ok: false, error}.
type reply map[string]any

func ok(fields ...any) reply {
	r := reply{"ok": true}
	for i := 0; i+1 < len(fields); i += 2 {
		r[fields[i].(string)] = fields[i+1]
	}
	return r
}

func fail(err string) reply { return reply{"ok": false, "error": err} }

// onEvent handles one event from a client: args is the event name, its
// arguments and, when the client asked for one, the ack callback.
func (b *Bridge) onEvent(s *socket.Socket, claims *Claims, args []any) {
	event, _ := args[0].(string)
	args = args[1:]
	var ack socket.Ack
	if n := len(args); n > 0 {
		if fn, isAck := args[n-1].(socket.Ack); isAck {
			ack, args = fn, args[:n-1]
		}
	}
	b.metrics.messagesReceived.Inc()
	answer := func(r reply) {
		if r["ok"] != true {
			b.metrics.errors.WithLabelValues(errClientEvent).Inc()
		}
		if ack != nil {
			ack([]any{r}, nil)
		}
	}
	if b.draining.Load() {
		answer(fail("server is shutting down"))
		return
	}
	if !b.registry.allow(claims.Subject) {
		b.metrics.errors.WithLabelValues(errRateLimited).Inc()
		if ack != nil {
			ack([]any{fail("rate limited: too many events, slow down")}, nil)
		}
		return
	}
	switch event {
	case EventJoin:
		answer(b.join(s, claims, args))
	case EventLeave:
		answer(b.leave(s, args))
	case EventSendMessage:
		answer(b.sendMessage(s, claims, args))
	default:
		if ack != nil && b.cfg.Backend != nil {
			b.requestReply(s, claims, event, args, ack, answer)
			return
		}
		answer(b.clientEvent(s, claims, event, args))
	}
}

func roomArg(args []any) (string, string) {
	m, _ := firstArg(args).(map[string]any)
	room, _ := m["room"].(string)
	switch {
	case room == "":
		return "", "room is required"
	case len(room) > maxRoomName:
		return "", "room name is too long"
	}
	return room, ""
}

func firstArg(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}

func (b *Bridge) join(s *socket.Socket, claims *Claims, args []any) reply {
	room, problem := roomArg(args)
	if problem != "" {
		return fail(problem)
	}
	if !RoomAllowed(claims.Rooms, room) {
		return fail("not allowed to join room " + room)
	}
	s.Join(namedRoom(room))
	return ok()
}

func (b *Bridge) leave(s *socket.Socket, args []any) reply {
	room, problem := roomArg(args)
	if problem != "" {
		return fail(problem)
	}
	s.Leave(namedRoom(room))
	return ok()
}

// chatMessage is the data of the "message" event send_message produces.
type chatMessage struct {
	ID      string          `json:"id"`
	From    string          `json:"from"`
	Content json.RawMessage `json:"content"`
	TS      time.Time       `json:"ts"`
}

func (b *Bridge) sendMessage(s *socket.Socket, claims *Claims, args []any) reply {
	m, _ := firstArg(args).(map[string]any)
	recipient, _ := m["recipient"].(string)
	room, _ := m["room"].(string)
	content, present := m["content"]
	switch {
	case m == nil:
		return fail("send_message needs {recipient, content} or {room, content}")
	case (recipient == "") == (room == ""):
		return fail("send_message needs exactly one of recipient and room")
	case !present || content == nil:
		return fail("content is required")
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return fail("content is not JSON")
	}
	to := schemas.Target{Users: []string{recipient}}
	if room != "" {
		if !s.Rooms().Has(namedRoom(room)) {
			return fail("not a member of room " + room)
		}
		// Like socket.to(room).emit: the sender's own socket is left out.
		to = schemas.Target{Rooms: []string{room}, Except: &schemas.Exclude{Sockets: []string{string(s.Id())}}}
	}
	env := schemas.NewDeliver(to, EventMessage, nil)
	env.UserID, env.SocketID, env.Instance = claims.Subject, string(s.Id()), b.cfg.Instance
	env.Data, err = json.Marshal(chatMessage{ID: env.ID, From: claims.Subject, Content: raw, TS: env.TS})
	if err != nil {
		return fail("content is not JSON")
	}
	return b.publish(b.cfg.OutboundTopic, env)
}

func (b *Bridge) clientEvent(s *socket.Socket, claims *Claims, event string, args []any) reply {
	env, problem := b.clientEnvelope(s, claims, event, args)
	if problem != nil {
		return problem
	}
	return b.publish(b.cfg.InboundTopic, env)
}

func (b *Bridge) clientEnvelope(s *socket.Socket, claims *Claims, event string, args []any) (*schemas.Envelope, reply) {
	var data any
	switch len(args) {
	case 0:
	case 1:
		data = args[0]
	default:
		data = args
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fail("event data is not JSON")
	}
	return schemas.NewClientEvent(claims.Subject, string(s.Id()), b.cfg.Instance, event, raw), nil
}

// requestReply publishes a client event on the inbound topic, marked so that
// the forwarder leaves it alone, then sends it to the backend and
// acknowledges the client with the backend's answer. The backend call runs
// on its own goroutine (owned by the bridge, ended by Close): the socket's
// next packets are not held up by it.
func (b *Bridge) requestReply(s *socket.Socket, claims *Claims, event string, args []any, ack socket.Ack, answer func(reply)) {
	env, problem := b.clientEnvelope(s, claims, event, args)
	if problem != nil {
		answer(problem)
		return
	}
	env.RequestReply = true
	if r := b.publish(b.cfg.InboundTopic, env); r["ok"] != true {
		answer(r)
		return
	}
	b.requestsMu.Lock()
	defer b.requestsMu.Unlock()
	if b.requestsClosed {
		answer(fail("server is shutting down"))
		return
	}
	b.requests.Go(func() {
		v, err := b.cfg.Backend.Request(b.requestsScope, env)
		if err != nil {
			if b.requestsScope.Err() != nil {
				err = errors.New("server is shutting down")
			}
			answer(fail(err.Error()))
			return
		}
		ack([]any{v}, nil)
	})
}

func (b *Bridge) publish(topic string, env *schemas.Envelope) reply {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()
	if err := b.pub.Publish(ctx, topic, env); err != nil {
		if errors.Is(err, schemas.ErrInvalid) {
			return fail(err.Error())
		}
		b.metrics.errors.WithLabelValues(errPublish).Inc()
		b.log.Warn("publish failed", "topic", topic, "error", err)
		return fail("bus unavailable, try again")
	}
	return ok("id", env.ID)
}
