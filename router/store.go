package router

import (
	"context"
	"sync"
	"time"
)

// Store is a small key-value store with expiry that instances share besides
// their messages (the sessions of clients that may come back). The Redis
// bus's is Redis itself; any other bus gets one in memory, for its own
// instance.
type Store interface {
	// Set stores value under key for ttl.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Get returns key's value; ok is false when there is none.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Expire gives each of keys (those that exist) ttl from now.
	Expire(ctx context.Context, keys []string, ttl time.Duration) error
	// Delete removes key.
	Delete(ctx context.Context, key string) error
}

// StoreOf returns the bus's shared Store, or one in memory when the bus has
// none.
func StoreOf(b Bus) Store {
	if s, ok := b.(interface{ Store() Store }); ok {
		return s.Store()
	}
	return NewMemoryStore()
}

// MemoryStore is a Store in this process.
type MemoryStore struct {
	mu      sync.Mutex
	entries map[string]memoryEntry
	sets    int
}

type memoryEntry struct {
	value   []byte
	expires time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{entries: map[string]memoryEntry{}} }

// Set stores value under key for ttl.
func (s *MemoryStore) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.entries[key] = memoryEntry{value: value, expires: now.Add(ttl)}
	// Expired entries go every so many writes: no goroutine to own.
	if s.sets++; s.sets >= 1024 && s.sets >= len(s.entries) {
		s.sets = 0
		for k, e := range s.entries {
			if now.After(e.expires) {
				delete(s.entries, k)
			}
		}
	}
	return nil
}

// Get returns key's value while it has not expired.
func (s *MemoryStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || time.Now().After(e.expires) {
		return nil, false, nil
	}
	return e.value, true, nil
}

// Expire gives each existing key ttl from now.
func (s *MemoryStore) Expire(_ context.Context, keys []string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	expires := time.Now().Add(ttl)
	for _, k := range keys {
		if e, ok := s.entries[k]; ok {
			e.expires = expires
			s.entries[k] = e
		}
	}
	return nil
}

// Delete removes key.
func (s *MemoryStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
	return nil
}
