package handlers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
)

// backendMessage is env as a backend publishes it: a Watermill message with
// the envelope as payload and no metadata of web3-socket's.
func backendMessage(t *testing.T, env *schemas.Envelope) *message.Message {
	t.Helper()
	payload, err := schemas.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	return message.NewMessage(env.ID, payload)
}

// refusingDedupe fails the test when asked.
type refusingDedupe struct{ t *testing.T }

func (d refusingDedupe) Claim(context.Context, string, string) (bool, error) {
	d.t.Error("an envelope web3-socket published was checked for duplicates")
	return true, nil
}
func (d refusingDedupe) Release(context.Context, string, string) error { return nil }

func TestOutboundOnceSkipsTheCheckForEnvelopesTheServerPublished(t *testing.T) {
	d := &fakeDeliverer{}
	handle := OutboundOnce(d, refusingDedupe{t}, nil)
	if err := handle(busMessage(t, schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil))); err != nil {
		t.Fatal(err)
	}
	if len(d.got) != 1 {
		t.Fatal("not delivered")
	}
}

func TestOutboundOnceDeliversADuplicateEnvelopeOnce(t *testing.T) {
	d := &fakeDeliverer{}
	handle := OutboundOnce(d, router.NewMemoryDedupe(time.Minute, 100), nil)
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil)
	other := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil)
	for _, e := range []*schemas.Envelope{env, env, other} {
		if err := handle(backendMessage(t, e)); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.got) != 2 || d.got[0].ID != env.ID || d.got[1].ID != other.ID {
		t.Fatalf("delivered %d envelopes, want %s once then %s", len(d.got), env.ID, other.ID)
	}
}

func TestOutboundOnceDeliversAgainWhatFailedToBeDelivered(t *testing.T) {
	d := &fakeDeliverer{err: errors.New("queue closed")}
	handle := OutboundOnce(d, router.NewMemoryDedupe(time.Minute, 100), nil)
	env := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil)
	if err := handle(backendMessage(t, env)); err == nil {
		t.Fatal("the deliverer's error was not returned")
	}
	d.err = nil
	if err := handle(backendMessage(t, env)); err != nil {
		t.Fatal(err)
	}
	if len(d.got) != 1 {
		t.Fatalf("the retried envelope was delivered %d times, want once", len(d.got))
	}
}

// countingDedupe is a memory Dedupe that counts its round trips.
type countingDedupe struct {
	router.BatchDedupe
	claims, batches int
}

func (d *countingDedupe) Claim(ctx context.Context, id, copy string) (bool, error) {
	d.claims++
	return d.BatchDedupe.Claim(ctx, id, copy)
}

func (d *countingDedupe) ClaimAll(ctx context.Context, claims []router.Claim) error {
	d.batches++
	return d.BatchDedupe.ClaimAll(ctx, claims)
}

// A batch's backend envelopes are claimed in one round trip, and a duplicate
// within the batch is still delivered once; envelopes the server published
// are not claimed.
func TestOutboundClaimsABatchInOneRoundTrip(t *testing.T) {
	d := &fakeDeliverer{}
	seen := &countingDedupe{BatchDedupe: router.NewMemoryDedupe(time.Minute, 100).(router.BatchDedupe)}
	h := NewOutbound(d, seen, nil)
	a := schemas.NewDeliver(schemas.Target{Users: []string{"u1"}}, "n", nil)
	b := schemas.NewDeliver(schemas.Target{Users: []string{"u2"}}, "n", nil)
	msgs := []*message.Message{backendMessage(t, a), backendMessage(t, b), backendMessage(t, a),
		busMessage(t, schemas.NewDeliver(schemas.Target{All: true}, "n", nil))}
	for i, m := range msgs[:3] {
		m.Metadata.Set(router.MetaEntryID, fmt.Sprintf("1-%d", i))
	}
	h.Prepare(msgs)
	for _, m := range msgs {
		if err := h.Handle(m); err != nil {
			t.Fatal(err)
		}
	}
	if seen.batches != 1 || seen.claims != 0 {
		t.Errorf("%d batch claims and %d single claims, want one batch", seen.batches, seen.claims)
	}
	if len(d.got) != 3 || d.got[0].ID != a.ID || d.got[1].ID != b.ID {
		t.Fatalf("delivered %d envelopes, want a, b and the server's (the second copy of a dropped)", len(d.got))
	}
}
