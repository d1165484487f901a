package router

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// MetaEntryID is the metadata key under which a bus subscriber records the
// broker's id of the entry a message was read from (a Redis stream entry id;
// a Kafka topic, partition and offset). Two copies of one envelope published
// twice have the same envelope id but different entry ids: Dedupe tells them
// apart by it.
const MetaEntryID = "entry_id"

// Dedupe remembers, for a window of time, which copy of each envelope id was
// delivered, so that an envelope a backend published twice is delivered once.
type Dedupe interface {
	// Claim reports whether copy (the message's MetaEntryID, "" when the bus
	// has none) is the copy of envelope id to deliver: true for the first
	// copy seen within the window, and again for that same copy (another
	// instance reading it too, or a retry); false for any other copy.
	Claim(ctx context.Context, id, copy string) (bool, error)
	// Release forgets id when the claimed copy could not be delivered, so
	// that the copy handed over again is delivered.
	Release(ctx context.Context, id, copy string) error
}

// Claim is one question of ClaimAll: the copy of envelope ID.
type Claim struct {
	ID, Copy string
	// First is the answer, as Dedupe.Claim gives it.
	First bool
}

// BatchDedupe is a Dedupe that answers many claims at once (one round trip
// to a shared store).
type BatchDedupe interface {
	Dedupe
	// ClaimAll answers every claim, in order; on an error none is answered.
	ClaimAll(ctx context.Context, claims []Claim) error
}

// Deduper is implemented by a Bus that keeps what Dedupe remembers where
// every instance sees it (the Redis bus keeps it in Redis), so that all the
// instances of a cluster agree on which copy of an envelope is the one.
type Deduper interface {
	// Dedupe returns the shared Dedupe; prefix separates its keys from those
	// of other deployments sharing the broker.
	Dedupe(prefix string, window time.Duration) Dedupe
}

// dedupeMemoryEntries bounds the ids an in-memory Dedupe remembers; past it
// the oldest are forgotten before their window ends.
const dedupeMemoryEntries = 200_000

// NewDedupe returns bus's shared Dedupe when the bus implements Deduper, and
// otherwise one kept in this instance's memory: enough for the memory bus (a
// single instance), and a fallback for a bus that shares none (each instance
// then delivers the first copy it reads, which is the same one on every
// instance when they all read the topic in one order).
func NewDedupe(bus Bus, prefix string, window time.Duration) Dedupe {
	if d, ok := bus.(Deduper); ok {
		return d.Dedupe(prefix, window)
	}
	return NewMemoryDedupe(window, dedupeMemoryEntries)
}

// memoryDedupe is a Dedupe in this process's memory: a bounded LRU of ids,
// each with its copy and when it was first seen.
type memoryDedupe struct {
	window time.Duration
	mu     sync.Mutex
	seen   *lru.Cache[string, seenCopy]
	now    func() time.Time
}

type seenCopy struct {
	copy string
	at   time.Time
}

// NewMemoryDedupe returns a Dedupe in this process's memory remembering up to
// entries ids for window each.
func NewMemoryDedupe(window time.Duration, entries int) Dedupe {
	seen, _ := lru.New[string, seenCopy](max(entries, 1)) // errors only for a size < 1
	return &memoryDedupe{window: window, seen: seen, now: time.Now}
}

func (d *memoryDedupe) Claim(_ context.Context, id, copy string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if s, ok := d.seen.Get(id); ok && now.Sub(s.at) < d.window {
		return copy != "" && s.copy == copy, nil
	}
	d.seen.Add(id, seenCopy{copy: copy, at: now})
	return true, nil
}

// ClaimAll answers the claims one by one: memory has no round trip to save.
func (d *memoryDedupe) ClaimAll(ctx context.Context, claims []Claim) error {
	for i := range claims {
		claims[i].First, _ = d.Claim(ctx, claims[i].ID, claims[i].Copy)
	}
	return nil
}

func (d *memoryDedupe) Release(_ context.Context, id, copy string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.seen.Peek(id); ok && s.copy == copy {
		d.seen.Remove(id)
	}
	return nil
}
