package router

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Redis that restarts without persistence (or with `appendfsync
// everysec`, up to a second of writes) forgets entries it had acknowledged:
// a message answered 202 but not yet read by every instance would be lost.
// So each instance keeps what it published during the last replayWindow, and
// when Redis comes back as a new server (its run_id changed) it adds those
// entries again, with their message ids. Readers then see some of them twice;
// the outbound handler delivers each envelope id once (IDEMPOTENCY_WINDOW),
// and backends consuming the streams should treat ids as idempotency keys.

// replayWindow is how long a published entry is kept for a replay: it must
// cover the time between an entry being added and every instance having
// read it.
const replayWindow = 10 * time.Second

// replayMax bounds the entries kept, whatever their age.
const replayMax = 100_000

// restartCheckInterval is how often the bus asks Redis who it is.
const restartCheckInterval = time.Second

type replayEntry struct {
	topic  string
	fields entryFields
	at     time.Time
}

// replayBuffer holds the entries published during the last replayWindow.
type replayBuffer struct {
	mu      sync.Mutex
	entries []replayEntry
}

func (r *replayBuffer) add(topic string, entries ...entryFields) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range entries {
		r.entries = append(r.entries, replayEntry{topic: topic, fields: f, at: now})
	}
	drop := max(0, len(r.entries)-replayMax)
	for drop < len(r.entries) && now.Sub(r.entries[drop].at) > replayWindow {
		drop++
	}
	// Dropped from the front in place: append moves what is left to a new
	// array when it runs out of room, so adding stays amortised O(1).
	clear(r.entries[:drop])
	r.entries = r.entries[drop:]
}

// recent returns the entries of the last replayWindow.
func (r *replayBuffer) recent() []replayEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	out := make([]replayEntry, 0, len(r.entries))
	for _, e := range r.entries {
		if now.Sub(e.at) <= replayWindow {
			out = append(out, e)
		}
	}
	return out
}

// watchRestarts checks Redis' run_id every restartCheckInterval until ctx is
// done, and replays the recent entries when it changed. A replay that fails
// (Redis still loading its data, say) is tried again at the next check.
func (b *redisBus) watchRestarts(ctx context.Context) {
	t := time.NewTicker(restartCheckInterval)
	defer t.Stop()
	known := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, restartCheckInterval)
		id, err := runID(cctx, b.client)
		cancel()
		switch {
		case err != nil || id == "":
		case known == "":
			known = id
		case id != known:
			if b.replay(ctx) {
				known = id
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// replay adds the recent entries again, in their order, in one pipeline.
func (b *redisBus) replay(ctx context.Context) bool {
	entries := b.pub.recent.recent()
	b.log.Warn("redis restarted: adding again what this instance published in the last "+replayWindow.String(),
		"entries", len(entries))
	if len(entries) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := b.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, e := range entries {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: e.topic, Values: e.fields.values(), MaxLen: b.cfg.StreamMaxLen, Approx: true})
		}
		return nil
	})
	if err != nil {
		b.log.Warn("replay after a redis restart failed; trying again", "error", err)
		return false
	}
	if b.metrics != nil {
		b.metrics.replayed.Add(float64(len(entries)))
	}
	return true
}

// runID returns the Redis server's run_id, which changes at every start.
func runID(ctx context.Context, c *redis.Client) (string, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// ReplayDedupe returns what catches the copies a bus adds again after its
// broker restarted (kept in this instance's memory, twice replayWindow long),
// or nil for a bus that never replays.
func ReplayDedupe(b Bus) Dedupe {
	if _, replays := b.(*redisBus); !replays {
		return nil
	}
	return NewMemoryDedupe(2*replayWindow, dedupeMemoryEntries)
}
