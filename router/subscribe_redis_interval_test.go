package router

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/web3-socket/web3-socket/test/harness"
)

// With a read interval, entries added while the reader waits come in one
// read, in order; a reader that is behind (its last read was full) reads on
// at once.
func TestRedisReadIntervalGathersEntriesAndCatchesUpAtOnce(t *testing.T) {
	const interval = 2 * time.Second
	r := harness.StartRedis(t)
	bus, err := newRedisBus(RedisConfig{URL: r.URL, Instance: "i1", ReadInterval: interval}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	batches, err := bus.FanOut().(*streamReader).SubscribeBatches(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	publish := func(n int) {
		t.Helper()
		for range n { // one XADD each
			if err := bus.Publisher().Publish("t", message.NewMessage(fmt.Sprint("m", next), []byte("{}"))); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	read := 0
	receive := func() int {
		t.Helper()
		select {
		case m := <-batches:
			b, ok := batchOf(m)
			if !ok {
				t.Fatal("not a batch message")
			}
			for _, msg := range b.msgs {
				if msg.UUID != fmt.Sprint("m", read) {
					t.Fatalf("read %s, want m%d", msg.UUID, read)
				}
				read++
			}
			b.done = len(b.msgs)
			m.Ack()
			return len(b.msgs)
		case <-time.After(3 * interval):
			t.Fatalf("no batch after m%d", read-1)
			return 0
		}
	}

	publish(1)
	if n := receive(); n != 1 {
		t.Fatalf("first read took %d entries, want 1", n)
	}
	publish(9) // while the reader waits out its interval
	if n := receive(); n != 9 {
		t.Fatalf("the read after the interval took %d entries, want the 9 added meanwhile", n)
	}
	// More than one read (256) takes, added at once (MULTI/EXEC).
	many := make([]*message.Message, 600)
	for i := range many {
		many[i] = message.NewMessage(fmt.Sprint("m", next), []byte("{}"))
		next++
	}
	if err := bus.Publisher().Publish("t", many...); err != nil {
		t.Fatal(err)
	}
	if n := receive(); n != 256 {
		t.Fatalf("read %d entries, want a full read of 256", n)
	}
	caughtUp := time.Now()
	got := []int{receive(), receive()}
	if got[0] != 256 || got[1] != 88 {
		t.Fatalf("reads after a full one took %v entries, want 256 and 88", got)
	}
	if took := time.Since(caughtUp); took >= interval {
		t.Fatalf("a reader behind took %v for its next two reads: it waited its interval", took)
	}
}
