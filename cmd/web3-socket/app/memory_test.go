package app

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

func TestMemoryIsReclaimedOnlyWhenQuietAfterGrowth(t *testing.T) {
	const mib = 1 << 20
	m := newMemoryReducer(heapSample{gcCycles: 10, kept: 100 * mib})
	steps := []struct {
		name string
		s    heapSample
		want bool
	}{
		{"grown while collections run: busy", heapSample{gcCycles: 14, kept: 300 * mib}, false},
		{"no collection for an interval after growth", heapSample{gcCycles: 14, kept: 300 * mib}, true},
	}
	for _, st := range steps {
		if got := m.quietAfterGrowth(st.s); got != st.want {
			t.Fatalf("%s: reclaim %v, want %v", st.name, got, st.want)
		}
	}
	m.reclaimed(heapSample{gcCycles: 15, kept: 200 * mib})
	steps = []struct {
		name string
		s    heapSample
		want bool
	}{
		{"quiet right after a reclaim", heapSample{gcCycles: 15, kept: 200 * mib}, false},
		{"quiet, grown by less than a quarter", heapSample{gcCycles: 15, kept: 240 * mib}, false},
		{"grown by a quarter, with a collection in the interval", heapSample{gcCycles: 16, kept: 260 * mib}, false},
		{"grown by a quarter, quiet", heapSample{gcCycles: 16, kept: 260 * mib}, true},
	}
	for _, st := range steps {
		if got := m.quietAfterGrowth(st.s); got != st.want {
			t.Fatalf("%s: reclaim %v, want %v", st.name, got, st.want)
		}
	}

	small := newMemoryReducer(heapSample{gcCycles: 1, kept: 4 * mib})
	if small.quietAfterGrowth(heapSample{gcCycles: 1, kept: 12 * mib}) {
		t.Fatal("a small heap that tripled (8 MiB) was reclaimed; want at least 16 MiB of growth")
	}
}

func TestReclaimIdleMemoryStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reclaimIdleMemory(ctx, time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("reclaimIdleMemory did not return after its context ended")
	}
}
