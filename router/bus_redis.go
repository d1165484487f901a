package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// RedisConfig configures the Redis Streams bus.
type RedisConfig struct {
	// URL (redis://, rediss://) wins over Host and Port when set.
	URL      string
	Host     string
	Port     int
	Password string
	DB       int
	// TLS connects with TLS (rediss:// URLs do too).
	TLS bool
	// StreamMaxLen trims each stream to about this many entries (XADD
	// MAXLEN ~); 0 keeps everything.
	StreamMaxLen int64
	// Instance names this instance's consumers in consumer groups.
	Instance string
	// ClaimIdle is how long an entry of a consumer group stays pending (its
	// consumer dead or stuck) before another consumer takes it over.
	ClaimIdle time.Duration
	// ReadInterval is the least time between two reads of a fan-out topic
	// that got entries, unless the reader is behind (see streamReader): it
	// trades up to that much delivery latency for fewer XREADs, which every
	// XADD otherwise answers on every instance. 0 is off.
	ReadInterval time.Duration
}

// redisBus shares topics between instances over Redis Streams, with the
// watermill-redisstream adapter: every instance reads every entry of a
// fan-out topic (XREAD), and the members of a consumer group share a work
// queue (XREADGROUP).
type redisBus struct {
	client   *redis.Client
	cfg      RedisConfig
	pub      *redisPublisher
	fanOut   *streamReader
	mu       sync.Mutex
	queues   map[string]*groupReader
	closeErr error
	once     sync.Once
	log      *slog.Logger
	metrics  *Metrics
	// stopWatch ends watchRestarts; watching is done when it has returned.
	stopWatch context.CancelFunc
	watching  sync.WaitGroup
}

func newRedisBus(cfg RedisConfig, metrics *Metrics, log *slog.Logger) (*redisBus, error) {
	opts, err := redisOptions(cfg)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("bus redis: cannot reach %s: %w", opts.Addr, err)
	}
	pub := &redisPublisher{client: client, maxLen: cfg.StreamMaxLen, timeout: 5 * time.Second}
	// No consumer group for fan-out: each instance reads the whole stream
	// from the moment it subscribes.
	fanOut := newStreamReader(client, metrics, log)
	fanOut.interval = cfg.ReadInterval
	b := &redisBus{client: client, cfg: cfg, pub: pub, fanOut: fanOut,
		queues: map[string]*groupReader{}, log: log, metrics: metrics}
	watchCtx, stop := context.WithCancel(context.Background())
	b.stopWatch = stop
	b.watching.Go(func() { b.watchRestarts(watchCtx) })
	return b, nil
}

func redisOptions(cfg RedisConfig) (*redis.Options, error) {
	var opts *redis.Options
	if cfg.URL != "" {
		o, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("bus redis: REDIS_URL: %w", err)
		}
		opts = o
	} else {
		opts = &redis.Options{Addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), Password: cfg.Password, DB: cfg.DB}
	}
	if cfg.Password != "" && opts.Password == "" {
		opts.Password = cfg.Password
	}
	// Fail fast when Redis is away: a REST call must answer 503 within its
	// deadline rather than wait through go-redis' patient defaults, and only
	// once the publish has really failed (no 503 for a message that lands).
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, time.Second, time.Second
	opts.PoolTimeout, opts.MaxRetries = 2*time.Second, 2
	if cfg.TLS && opts.TLSConfig == nil {
		host, _, _ := net.SplitHostPort(opts.Addr)
		opts.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

func (b *redisBus) Kind() string                 { return KindRedis }
func (b *redisBus) Publisher() message.Publisher { return b.pub }
func (b *redisBus) FanOut() message.Subscriber   { return b.fanOut }

// WorkQueue returns the subscriber of a consumer group; this instance is one
// consumer of it.
func (b *redisBus) WorkQueue(group string) message.Subscriber {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.queues[group]; ok {
		return s
	}
	claimIdle := b.cfg.ClaimIdle
	if claimIdle == 0 {
		claimIdle = 5 * time.Second
	}
	s := newGroupReader(b.client, group, b.cfg.Instance, claimIdle, b.log)
	b.queues[group] = s
	return s
}

func (b *redisBus) Ping(ctx context.Context) error { return b.client.Ping(ctx).Err() }

func (b *redisBus) Close() error {
	b.once.Do(func() {
		b.stopWatch()
		b.watching.Wait()
		errs := []error{b.fanOut.Close(), b.pub.Close()}
		b.mu.Lock()
		for _, s := range b.queues {
			errs = append(errs, s.Close())
		}
		b.mu.Unlock()
		errs = append(errs, b.client.Close())
		// The adapter's subscribers and publisher close the shared client
		// themselves; whoever comes after finds it closed.
		for i, err := range errs {
			if errors.Is(err, redis.ErrClosed) {
				errs[i] = nil
			}
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// entryUnmarshaller reads the adapter's entries (uuid, msgpack metadata,
// payload), and also entries a backend added with nothing but a payload field
// (XADD socket.outbound * payload '{…}'): those get a fresh message UUID
// (entryUUID); the envelope inside keeps its own id.
type entryUnmarshaller struct{}

// entryUUIDs numbers the messages of payload-only entries after a random
// prefix of this process: unique without drawing random bytes per entry,
// which cost about 5% of an instance's CPU when a backend's entries arrive
// at 100k/s.
var entryUUIDs = struct {
	prefix string
	next   atomic.Uint64
}{prefix: watermill.NewShortUUID() + "-"}

// entryUUID returns a fresh message UUID.
func entryUUID() string {
	return entryUUIDs.prefix + strconv.FormatUint(entryUUIDs.next.Add(1), 36)
}

func (entryUnmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	if _, ok := values[redisstream.UUIDHeaderKey]; ok {
		return unmarshalAdapterEntry(values)
	}
	payload, _ := values["payload"].(string)
	if payload == "" {
		return nil, errors.New("stream entry has neither a watermill message nor a payload field")
	}
	return message.NewMessage(entryUUID(), []byte(payload)), nil
}

// unmarshalEntry reads a stream entry and records its id in MetaEntryID.
func unmarshalEntry(entry redis.XMessage) (*message.Message, error) {
	msg, err := entryUnmarshaller{}.Unmarshal(entry.Values)
	if err != nil {
		return nil, err
	}
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	msg.Metadata.Set(MetaEntryID, entry.ID)
	return msg, nil
}
