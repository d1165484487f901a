package app

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Go collects garbage as the heap grows, never because the process has gone
// quiet: after a burst (thousands of clients connecting at once) the burst's
// garbage and the free room the collector paced for stay resident until the
// next burst, about a fifth of the resident memory of an instance holding
// 10,000 idle connections. V8's memory reducer does this for Node: once
// allocation stops after the heap grew, it collects and gives memory back.
// reclaimIdleMemory does the same: when no collection has run for a whole
// interval (allocation is slow next to the heap) and the memory the heap
// keeps has grown by a quarter since the last time, it collects and returns
// what is free (debug.FreeOSMemory). A busy process is left to the pacer.

const (
	// memoryCheckInterval is how long the heap must go without a collection.
	memoryCheckInterval = 5 * time.Second
	// reclaimGrowth and reclaimMinBytes are how much the kept heap must have
	// grown since the last reclaim (or the start) for another.
	reclaimGrowth   = 1.25
	reclaimMinBytes = 16 << 20
)

// heapSample is what the reducer reads of the runtime.
type heapSample struct {
	gcCycles uint64
	// kept is the heap memory the process holds: objects, free slots in
	// spans in use, and free spans not yet returned to the OS.
	kept uint64
}

// memoryReducer decides when to reclaim; it is fed one sample per interval.
type memoryReducer struct {
	lastCycles uint64
	baseline   uint64 // kept after the last reclaim, or at the start
}

func newMemoryReducer(s heapSample) *memoryReducer {
	return &memoryReducer{lastCycles: s.gcCycles, baseline: s.kept}
}

// quietAfterGrowth reports whether s, taken an interval after the last one,
// calls for a reclaim.
func (m *memoryReducer) quietAfterGrowth(s heapSample) bool {
	quiet := s.gcCycles == m.lastCycles
	m.lastCycles = s.gcCycles
	grown := float64(s.kept) >= reclaimGrowth*float64(m.baseline) && s.kept >= m.baseline+reclaimMinBytes
	return quiet && grown
}

// reclaimed records the heap kept after a reclaim.
func (m *memoryReducer) reclaimed(s heapSample) {
	m.lastCycles, m.baseline = s.gcCycles, s.kept
}

// readHeap samples the runtime's metrics (no stop-the-world).
func readHeap() heapSample {
	s := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	var h heapSample
	if s[0].Value.Kind() == metrics.KindUint64 {
		h.gcCycles = s[0].Value.Uint64()
	}
	for _, v := range s[1:] {
		if v.Value.Kind() == metrics.KindUint64 {
			h.kept += v.Value.Uint64()
		}
	}
	return h
}

// reclaimIdleMemory runs the memory reducer until ctx is done.
func reclaimIdleMemory(ctx context.Context, every time.Duration, log *slog.Logger) {
	m := newMemoryReducer(readHeap())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := readHeap()
		if !m.quietAfterGrowth(before) {
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		after := readHeap()
		m.reclaimed(after)
		log.Debug("idle heap returned to the OS", "kept_before_mib", before.kept>>20, "kept_after_mib", after.kept>>20,
			"took", time.Since(start).Round(time.Millisecond))
	}
}
