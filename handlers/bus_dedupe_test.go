package handlers

import (
	"errors"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

func TestOutboundOnceDeliversADuplicateEnvelopeOnce(t *testing.T) {
	d := &fakeDeliverer{}
	handle := OutboundOnce(d, router.NewMemoryDedupe(time.Minute, 100))
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil)
	other := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil)
	for _, e := range []*schemas.Envelope{env, env, other} {
		if err := handle(busMessage(t, e)); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.got) != 2 || d.got[0].ID != env.ID || d.got[1].ID != other.ID {
		t.Fatalf("delivered %d envelopes, want %s once then %s", len(d.got), env.ID, other.ID)
	}
}

func TestOutboundOnceDeliversAgainWhatFailedToBeDelivered(t *testing.T) {
	d := &fakeDeliverer{err: errors.New("queue closed")}
	handle := OutboundOnce(d, router.NewMemoryDedupe(time.Minute, 100))
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil)
	if err := handle(busMessage(t, env)); err == nil {
		t.Fatal("the deliverer's error was not returned")
	}
	d.err = nil
	if err := handle(busMessage(t, env)); err != nil {
		t.Fatal(err)
	}
	if len(d.got) != 1 {
		t.Fatalf("the retried envelope was delivered %d times, want once", len(d.got))
	}
}
