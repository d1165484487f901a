package router

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimScript sets KEYS[1] to the copy ARGV[1] for ARGV[2] milliseconds
// unless it is set, and answers 1 when the key holds that copy (just set, or
// set by another instance that read the same entry) and 0 for another copy.
// An empty copy is never "the same" copy.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] and ARGV[1] ~= '' then return 1 end
return 0
`)

// releaseScript deletes KEYS[1] when it holds the copy ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// redisDedupe keeps the delivered copy of each envelope id in a Redis key
// that expires with the window, shared by every instance of the bus.
type redisDedupe struct {
	client *redis.Client
	prefix string
	window time.Duration
}

// Dedupe returns a Dedupe kept in the bus's Redis, under prefix+"dedupe:".
func (b *redisBus) Dedupe(prefix string, window time.Duration) Dedupe {
	return &redisDedupe{client: b.client, prefix: prefix + "dedupe:", window: window}
}

func (d *redisDedupe) Claim(ctx context.Context, id, copy string) (bool, error) {
	n, err := claimScript.Run(ctx, d.client, []string{d.prefix + id}, copy, d.window.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("dedupe %s: %w", id, err)
	}
	return n == 1, nil
}

// ClaimAll answers every claim in one pipelined round trip.
func (d *redisDedupe) ClaimAll(ctx context.Context, claims []Claim) error {
	if len(claims) == 0 {
		return nil
	}
	cmds := make([]*redis.Cmd, len(claims))
	_, err := d.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, c := range claims {
			cmds[i] = claimScript.Eval(ctx, pipe, []string{d.prefix + c.ID}, c.Copy, d.window.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dedupe %d claims: %w", len(claims), err)
	}
	for i, cmd := range cmds {
		n, err := cmd.Int()
		if err != nil {
			return fmt.Errorf("dedupe %s: %w", claims[i].ID, err)
		}
		claims[i].First = n == 1
	}
	return nil
}

func (d *redisDedupe) Release(ctx context.Context, id, copy string) error {
	if err := releaseScript.Run(ctx, d.client, []string{d.prefix + id}, copy).Err(); err != nil {
		return fmt.Errorf("dedupe release %s: %w", id, err)
	}
	return nil
}
