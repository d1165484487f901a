package router

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

// dedupeCases runs the same cases on every Dedupe, as a conformance suite:
// a bus that brings its own (Kafka) runs it too.
func dedupeCases(t *testing.T, newDedupe func(t *testing.T, window time.Duration) Dedupe) {
	ctx := context.Background()
	claim := func(t *testing.T, d Dedupe, id, copy string, want bool) {
		t.Helper()
		got, err := d.Claim(ctx, id, copy)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("Claim(%q, %q) = %v, want %v", id, copy, got, want)
		}
	}
	t.Run("the first copy is delivered, another is not", func(t *testing.T) {
		d := newDedupe(t, time.Minute)
		claim(t, d, "e1", "1-0", true)
		claim(t, d, "e1", "2-0", false)
		claim(t, d, "e2", "3-0", true)
	})
	t.Run("the same copy seen again (another instance) is delivered", func(t *testing.T) {
		d := newDedupe(t, time.Minute)
		claim(t, d, "e1", "1-0", true)
		claim(t, d, "e1", "1-0", true)
	})
	t.Run("without copy ids only the first is delivered", func(t *testing.T) {
		d := newDedupe(t, time.Minute)
		claim(t, d, "e1", "", true)
		claim(t, d, "e1", "", false)
	})
	t.Run("a released claim is delivered again", func(t *testing.T) {
		d := newDedupe(t, time.Minute)
		claim(t, d, "e1", "", true)
		if err := d.Release(ctx, "e1", ""); err != nil {
			t.Fatal(err)
		}
		claim(t, d, "e1", "", true)
	})
	t.Run("another copy's release does not free the id", func(t *testing.T) {
		d := newDedupe(t, time.Minute)
		claim(t, d, "e1", "1-0", true)
		_ = d.Release(ctx, "e1", "2-0")
		claim(t, d, "e1", "2-0", false)
	})
	t.Run("claims asked together get the answers asked one by one would", func(t *testing.T) {
		d, ok := newDedupe(t, time.Minute).(BatchDedupe)
		if !ok {
			t.Fatal("the Dedupe cannot claim in batches")
		}
		claim(t, d, "e0", "0-1", true)
		claims := []Claim{{ID: "e0", Copy: "0-2"}, {ID: "e1", Copy: "1-0"}, {ID: "e1", Copy: "2-0"}, {ID: "e0", Copy: "0-1"}}
		if err := d.ClaimAll(ctx, claims); err != nil {
			t.Fatal(err)
		}
		for i, want := range []bool{false, true, false, true} {
			if claims[i].First != want {
				t.Errorf("claim %d (%s, %s): %v, want %v", i, claims[i].ID, claims[i].Copy, claims[i].First, want)
			}
		}
	})
	t.Run("a large batch gets the answers of one by one", func(t *testing.T) {
		d, ok := newDedupe(t, time.Minute).(BatchDedupe)
		if !ok {
			t.Fatal("the Dedupe cannot claim in batches")
		}
		// More claims than one store call takes, ids seen again across
		// the calls' boundaries: copy i of id i%50.
		claims := make([]Claim, 1500)
		for i := range claims {
			claims[i] = Claim{ID: fmt.Sprint("big", i%50), Copy: fmt.Sprint(i, "-0")}
		}
		if err := d.ClaimAll(ctx, claims); err != nil {
			t.Fatal(err)
		}
		for i, c := range claims {
			if want := i < 50; c.First != want {
				t.Fatalf("claim %d (%s, %s): %v, want %v", i, c.ID, c.Copy, c.First, want)
			}
		}
	})
	t.Run("after the window the id is forgotten", func(t *testing.T) {
		d := newDedupe(t, 100*time.Millisecond)
		claim(t, d, "e1", "1-0", true)
		deadline := time.Now().Add(5 * time.Second)
		for {
			ok, err := d.Claim(ctx, "e1", "2-0")
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the id is still remembered 5s after a 100ms window")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestMemoryDedupe(t *testing.T) {
	dedupeCases(t, func(t *testing.T, window time.Duration) Dedupe { return NewMemoryDedupe(window, 100) })
}

func TestMemoryDedupeIsBounded(t *testing.T) {
	d := NewMemoryDedupe(time.Hour, 10)
	ctx := context.Background()
	for i := range 20 {
		_, _ = d.Claim(ctx, fmt.Sprint("e", i), "")
	}
	if ok, _ := d.Claim(ctx, "e0", ""); !ok {
		t.Fatal("the oldest id was kept past the bound of 10")
	}
	if ok, _ := d.Claim(ctx, "e19", ""); ok {
		t.Fatal("the newest id was forgotten")
	}
}

func TestRedisDedupeIsSharedByInstances(t *testing.T) {
	r := harness.StartRedis(t)
	log := slog.New(slog.DiscardHandler)
	newBus := func(t *testing.T) Bus {
		bus, err := NewBus(BusConfig{Kind: KindRedis, Redis: RedisConfig{URL: r.URL}}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close() })
		return bus
	}
	n := 0
	dedupeCases(t, func(t *testing.T, window time.Duration) Dedupe {
		n++ // a prefix per case: the cases reuse ids
		return NewDedupe(newBus(t), fmt.Sprintf("t%d.", n), window)
	})
	t.Run("two instances agree on the copy", func(t *testing.T) {
		a, b := NewDedupe(newBus(t), "shared.", time.Minute), NewDedupe(newBus(t), "shared.", time.Minute)
		ctx := context.Background()
		if ok, err := a.Claim(ctx, "e1", "1-0"); !ok || err != nil {
			t.Fatalf("A first copy: %v %v", ok, err)
		}
		if ok, _ := b.Claim(ctx, "e1", "1-0"); !ok {
			t.Fatal("B refused the copy A delivered: its users would miss it")
		}
		if ok, _ := b.Claim(ctx, "e1", "2-0"); ok {
			t.Fatal("B delivered the duplicate")
		}
	})
}
