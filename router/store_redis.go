package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisStore is the Redis bus's Store: plain keys beside its streams.
type redisStore struct{ client *redis.Client }

// Store returns the bus's Store, shared by every instance on the same Redis.
func (b *redisBus) Store() Store { return redisStore{client: b.client} }

func (s redisStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.client.Set(ctx, key, value, ttl).Err(); err != nil {
		return fmt.Errorf("redis store: set %s: %w", key, err)
	}
	return nil
}

func (s redisStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := s.client.Get(ctx, key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("redis store: get %s: %w", key, err)
	}
	return v, true, nil
}

// Expire sets every key's expiry in one pipelined round trip.
func (s redisStore) Expire(ctx context.Context, keys []string, ttl time.Duration) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := s.client.Pipeline()
	for _, k := range keys {
		pipe.PExpire(ctx, k, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis store: expire %d keys: %w", len(keys), err)
	}
	return nil
}

func (s redisStore) Delete(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redis store: delete %s: %w", key, err)
	}
	return nil
}
