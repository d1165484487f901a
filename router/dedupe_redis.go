package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A claim is one SET key copy NX GET PX window (Redis 7.0 or later): it
// sets the key unless it is set, and answers the copy the key held before,
// or nil when this call set it. The claim holds when the key was unset, or
// held this same copy (set by another instance that read the same entry).
// An empty copy is never "the same" copy. claimScript does the same in Lua
// for older servers, which refuse NX and GET together.
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
	// lua is set once the server refused SET with NX and GET (before
	// Redis 7.0): claims then run claimScript.
	lua atomic.Bool
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

// ClaimAll sends the claims in one pipelined round trip.
func (d *redisDedupe) ClaimAll(ctx context.Context, claims []Claim) error {
	if len(claims) == 0 {
		return nil
	}
	if !d.lua.Load() {
		err := d.claimAll(ctx, claims)
		if !isSyntaxError(err) {
			return err
		}
		d.lua.Store(true)
	}
	return d.claimAllLua(ctx, claims, true)
}

func (d *redisDedupe) claimAll(ctx context.Context, claims []Claim) error {
	cmds := make([]*redis.StatusCmd, len(claims))
	args := redis.SetArgs{Mode: "NX", Get: true, TTL: d.window}
	_, err := d.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, c := range claims {
			cmds[i] = pipe.SetArgs(ctx, d.prefix+c.ID, c.Copy, args)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("dedupe %d claims: %w", len(claims), err)
	}
	for i, cmd := range cmds {
		held, err := cmd.Result()
		switch {
		case errors.Is(err, redis.Nil):
			claims[i].First = true
		case err != nil:
			return fmt.Errorf("dedupe %s: %w", claims[i].ID, err)
		default:
			claims[i].First = claims[i].Copy != "" && held == claims[i].Copy
		}
	}
	return nil
}

// claimAllLua runs claimScript by its hash, loading it (once, when load
// is set) into a server that does not know it yet.
func (d *redisDedupe) claimAllLua(ctx context.Context, claims []Claim, load bool) error {
	cmds := make([]*redis.Cmd, len(claims))
	_, err := d.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, c := range claims {
			cmds[i] = claimScript.EvalSha(ctx, pipe, []string{d.prefix + c.ID}, c.Copy, d.window.Milliseconds())
		}
		return nil
	})
	if load && err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := claimScript.Load(ctx, d.client).Err(); err != nil {
			return fmt.Errorf("dedupe: load the claim script: %w", err)
		}
		return d.claimAllLua(ctx, claims, false)
	}
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

// isSyntaxError reports whether err is the error of a Redis older than 7.0
// given SET with both NX and GET.
func isSyntaxError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "ERR syntax error")
}

func (d *redisDedupe) Release(ctx context.Context, id, copy string) error {
	if err := releaseScript.Run(ctx, d.client, []string{d.prefix + id}, copy).Err(); err != nil {
		return fmt.Errorf("dedupe release %s: %w", id, err)
	}
	return nil
}
