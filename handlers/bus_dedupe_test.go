package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	ids             []string // every id asked for, in order
}

func (d *countingDedupe) Claim(ctx context.Context, id, copy string) (bool, error) {
	d.claims++
	d.ids = append(d.ids, id)
	return d.BatchDedupe.Claim(ctx, id, copy)
}

func (d *countingDedupe) ClaimAll(ctx context.Context, claims []router.Claim) error {
	d.batches++
	for _, c := range claims {
		d.ids = append(d.ids, c.ID)
	}
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

// reachingDeliverer is a fakeDeliverer with local sockets for some users
// (localReacher).
type reachingDeliverer struct {
	fakeDeliverer
	here map[string]bool
}

func (d *reachingDeliverer) Reaches(to *schemas.Target) bool {
	for _, u := range to.Users {
		if d.here[u] {
			return true
		}
	}
	return false
}

// An instance claims only the envelopes that may reach one of its sockets:
// within a batch and alone. A copy of an envelope that reached nobody is
// not a duplicate once a socket is there to get it; a copy of one that was
// delivered is dropped.
func TestOutboundClaimsOnlyWhatMayReachALocalSocket(t *testing.T) {
	d := &reachingDeliverer{here: map[string]bool{"here": true}}
	seen := &countingDedupe{BatchDedupe: router.NewMemoryDedupe(time.Minute, 100).(router.BatchDedupe)}
	h := NewOutbound(d, seen, nil)
	local := schemas.NewDeliver(schemas.Target{Users: []string{"here"}}, "n", nil)
	away := schemas.NewDeliver(schemas.Target{Users: []string{"away"}}, "n", nil)
	copyOf := func(env *schemas.Envelope, entry string) *message.Message {
		m := backendMessage(t, env)
		m.Metadata.Set(router.MetaEntryID, entry)
		return m
	}
	handle := func(msgs ...*message.Message) {
		t.Helper()
		h.Prepare(msgs)
		for _, m := range msgs {
			if err := h.Handle(m); err != nil {
				t.Fatal(err)
			}
		}
	}

	handle(copyOf(local, "1-1"), copyOf(away, "1-2"), copyOf(away, "1-3"))
	if seen.batches != 1 || seen.claims != 0 || !slices.Equal(seen.ids, []string{local.ID}) {
		t.Fatalf("%d batch claims, %d single claims, ids %v; want one batch claiming only %s",
			seen.batches, seen.claims, seen.ids, local.ID)
	}
	if len(d.got) != 3 {
		t.Fatalf("%d envelopes handed to the deliverer, want 3 (it finds the absent user has no socket itself)", len(d.got))
	}

	// The user connects: the next copy of away is the first one a socket
	// can get, and local's second copy is a duplicate of a delivered one.
	d.here["away"] = true
	d.got = nil
	handle(copyOf(away, "1-4"))
	handle(copyOf(local, "1-5"))
	if seen.claims != 2 {
		t.Errorf("%d single claims, want 2 (both envelopes now reach a local socket)", seen.claims)
	}
	if len(d.got) != 1 || d.got[0].ID != away.ID {
		t.Errorf("delivered %d envelopes, want only away's copy 1-4 (local's 1-1 was delivered before)", len(d.got))
	}
}
