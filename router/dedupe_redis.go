package router

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimScript claims each key of KEYS for the copy of the same index in
// ARGV, for ARGV[#KEYS+1] milliseconds: a key that is not set is set to its
// copy. Its answer holds 1 for a key that holds the copy (just set, or set
// by another instance that read the same entry) and 0 for a key that holds
// another copy. An empty copy is never "the same" copy. One call answers a
// whole batch: a round trip and a script run for all of its claims.
var claimScript = redis.NewScript(`
local ttl = ARGV[#KEYS + 1]
local out = {}
for i, key in ipairs(KEYS) do
  local copy = ARGV[i]
  local v = redis.call('GET', key)
  if not v then
    redis.call('SET', key, copy, 'PX', ttl)
    out[i] = 1
  elseif v == copy and copy ~= '' then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`)

// claimsPerCall bounds the keys of one claimScript call, which Redis runs
// without serving anyone else.
const claimsPerCall = 512

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
	c := []Claim{{ID: id, Copy: copy}}
	if err := d.ClaimAll(ctx, c); err != nil {
		return false, err
	}
	return c[0].First, nil
}

// ClaimAll answers the claims with one script call per claimsPerCall.
func (d *redisDedupe) ClaimAll(ctx context.Context, claims []Claim) error {
	for len(claims) > 0 {
		n := min(len(claims), claimsPerCall)
		if err := d.claim(ctx, claims[:n]); err != nil {
			return err
		}
		claims = claims[n:]
	}
	return nil
}

func (d *redisDedupe) claim(ctx context.Context, claims []Claim) error {
	keys := make([]string, len(claims))
	args := make([]any, len(claims)+1)
	for i, c := range claims {
		keys[i], args[i] = d.prefix+c.ID, c.Copy
	}
	args[len(claims)] = d.window.Milliseconds()
	answers, err := claimScript.Run(ctx, d.client, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("dedupe %d claims: %w", len(claims), err)
	}
	if len(answers) != len(claims) {
		return fmt.Errorf("dedupe %d claims: %d answers", len(claims), len(answers))
	}
	for i, a := range answers {
		claims[i].First = a == 1
	}
	return nil
}

func (d *redisDedupe) Release(ctx context.Context, id, copy string) error {
	if err := releaseScript.Run(ctx, d.client, []string{d.prefix + id}, copy).Err(); err != nil {
		return fmt.Errorf("dedupe release %s: %w", id, err)
	}
	return nil
}
