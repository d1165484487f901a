// Command backend is an example web3-socket backend.
//
// It receives client events as HTTP POSTs at /events (point the server's
// BACKEND_URL at it), checks their HMAC signature (BACKEND_SECRET), answers
// the ones whose client waits for an acknowledgement (request/reply), and
// pushes an "echo" event back to the sender of each other event through the
// REST API (POST /api/message with API_KEY).
//
// With REDIS_URL set it also consumes the bus itself: it reads socket.inbound
// with its own consumer group, and pushes its echoes by publishing deliver
// envelopes on socket.outbound with Watermill and the schemas package, which
// is how a Go backend publishes. Events it received that way are not echoed
// again when they also arrive over HTTP.
//
//	BACKEND_SECRET=… API_KEY=… go run ./examples/backend
//
// Settings (environment): ADDR (default 127.0.0.1:3000), BACKEND_SECRET
// (required), WEB3_SOCKET_URL (default http://127.0.0.1:8081), API_KEY
// (required without REDIS_URL), REDIS_URL, TOPIC_PREFIX (default socket.),
// CONSUMER (this process's name in the consumer group, default example-1).
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/schemas"
)

// maxSignatureAge refuses a request signed longer ago than this (or this far
// in the future): a recorded request cannot be replayed later.
const maxSignatureAge = 5 * time.Minute

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("backend stopped", "error", err)
		os.Exit(1)
	}
}

type backend struct {
	secret  []byte
	server  string
	apiKey  string
	client  *http.Client
	log     *slog.Logger
	pub     message.Publisher // nil without REDIS_URL
	outbox  string
	fromBus bool
}

func run(log *slog.Logger) error {
	b := &backend{
		secret: []byte(os.Getenv("BACKEND_SECRET")),
		server: getenv("WEB3_SOCKET_URL", "http://127.0.0.1:8081"),
		apiKey: os.Getenv("API_KEY"),
		client: &http.Client{Timeout: 5 * time.Second},
		log:    log,
	}
	addr := getenv("ADDR", "127.0.0.1:3000")
	prefix := getenv("TOPIC_PREFIX", "socket.")
	redisURL := os.Getenv("REDIS_URL")
	if len(b.secret) == 0 {
		return errors.New("BACKEND_SECRET is required: the same value as the server's, which signs every request")
	}
	if b.apiKey == "" && redisURL == "" {
		return errors.New("API_KEY is required (the server's, to push replies through its REST API), or REDIS_URL")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Every goroutine below ends with ctx; the first error ends ctx.
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 3)
	goRun := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				errc <- err
				stop()
			}
		})
	}

	if redisURL != "" {
		opts, err := redis.ParseURL(redisURL)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		wlog := watermill.NewSlogLogger(log.With("component", "watermill"))
		pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rdb}, wlog)
		if err != nil {
			return err
		}
		sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
			Client: rdb, ConsumerGroup: "example-backend", Consumer: getenv("CONSUMER", "example-1"),
			OldestId: "$", NackResendSleep: 500 * time.Millisecond, // a new group starts at the stream's end
		}, wlog)
		if err != nil {
			return err
		}
		b.pub, b.outbox, b.fromBus = pub, prefix+"outbound", true
		msgs, err := sub.Subscribe(ctx, prefix+"inbound")
		if err != nil {
			return err
		}
		goRun(func() error { return b.consume(ctx, msgs) })
		defer sub.Close()
		log.Info("consuming the bus", "stream", prefix+"inbound", "group", "example-backend")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", b.events)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	goRun(func() error {
		log.Info("listening", "url", "http://"+addr+"/events")
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	wg.Wait()
	select {
	case err = <-errc:
	default:
	}
	return err
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// verify checks X-Signature: "sha256=" + hex(HMAC-SHA256(secret,
// X-Signature-Timestamp + "." + body)), and the timestamp's age.
func (b *backend) verify(r *http.Request, body []byte) error {
	ts := r.Header.Get("X-Signature-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("no valid X-Signature-Timestamp")
	}
	if age := time.Since(time.Unix(sec, 0)); age > maxSignatureAge || age < -maxSignatureAge {
		return errors.New("signature too old")
	}
	mac := hmac.New(sha256.New, b.secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Signature"))) {
		return errors.New("signature does not match")
	}
	return nil
}

// events handles one POST from the server.
func (b *backend) events(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if err := b.verify(r, body); err != nil {
		b.log.Warn("refused a request", "reason", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	env, err := schemas.Decode(body)
	if err != nil {
		// 4xx: the server puts the event on the poison topic, with this.
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	if r.Header.Get("X-Reply-Expected") == "true" {
		// Request/reply: this JSON is the client's acknowledgement.
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer(env))
		return
	}
	if b.fromBus {
		w.WriteHeader(http.StatusNoContent) // echoed when read from the bus
		return
	}
	if err := b.pushREST(r.Context(), env); err != nil {
		// 5xx: the server tries again later; nothing is lost.
		b.log.Warn("push failed", "event", env.ID, "error", err)
		http.Error(w, "push failed", http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// answer is the acknowledgement of a request/reply event.
func answer(env *schemas.Envelope) map[string]any {
	if env.Event == "ping" {
		return map[string]any{"ok": true, "pong": env.Data}
	}
	return map[string]any{"ok": true, "event": env.Event, "echo": env.Data}
}

// echo is what the sender of an event gets back.
func echo(env *schemas.Envelope) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"id": env.ID, "event": env.Event, "data": env.Data})
	return b
}

// pushREST sends the echo through the server's REST API.
func (b *backend) pushREST(ctx context.Context, env *schemas.Envelope) error {
	body, _ := json.Marshal(map[string]any{"userId": env.UserID, "event": "echo", "data": echo(env)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.server+"/api/message", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", b.apiKey)
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST /api/message: %d %s", resp.StatusCode, msg)
	}
	return nil
}

// consume reads client events from the inbound stream (its own consumer
// group) and echoes each on the outbound stream.
func (b *backend) consume(ctx context.Context, msgs <-chan *message.Message) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-msgs:
			if !ok {
				return nil
			}
			if err := b.handle(msg); err != nil {
				b.log.Warn("inbound event not handled", "error", err)
				msg.Nack()
				continue
			}
			msg.Ack()
		}
	}
}

func (b *backend) handle(msg *message.Message) error {
	env, err := schemas.Decode(msg.Payload)
	if err != nil {
		b.log.Warn("invalid inbound envelope skipped", "error", err)
		return nil
	}
	if env.Kind != schemas.KindClientEvent || msg.Metadata.Get(schemas.MetaRequestReply) == "true" {
		return nil // answered over HTTP already
	}
	return b.publish(env.UserID, "echo", echo(env))
}

// publish puts a deliver envelope for user on the outbound stream: how a Go
// backend publishes with the schemas package and Watermill.
func (b *backend) publish(user, event string, data json.RawMessage) error {
	env := schemas.NewDeliver(schemas.Target{Users: []string{user}}, event, data)
	payload, err := schemas.Encode(env) // validates too
	if err != nil {
		return err
	}
	// The message UUID is the envelope id, as the server's own publishes.
	return b.pub.Publish(b.outbox, message.NewMessage(env.ID, payload))
}
