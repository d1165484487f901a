package router

import (
	"context"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
)

// MetaOffset is the metadata key under which a bus with a Log puts a consumed
// message's position in its topic: its offset, "<ms>-<seq>" (a Redis Streams
// entry id, or the embedded bus's equivalent). It is the entry id Dedupe
// tells copies apart by.
const MetaOffset = MetaEntryID

// Log is implemented by buses that keep what was published to a topic for a
// while, so that a client that was away can be given what it missed. The
// Redis bus reads its streams; the embedded bus keeps a window in memory.
type Log interface {
	// Has reports whether the message at offset is still in topic's log:
	// when it is, everything after it is too.
	Has(ctx context.Context, topic, offset string) (bool, error)
	// ReadAfter calls fn with each message of topic after the one at offset,
	// in order, up to the last one published when ReadAfter was called. Each
	// message carries its offset under MetaOffset.
	ReadAfter(ctx context.Context, topic, offset string, fn func(*message.Message) error) error
}

// LogOf returns the bus's Log, if it keeps one.
func LogOf(b Bus) (Log, bool) {
	l, ok := b.(Log)
	return l, ok
}

// OffsetOf returns the offset a bus with a Log gave msg ("" without one).
func OffsetOf(msg *message.Message) string { return msg.Metadata.Get(MetaOffset) }

// CompareOffsets orders two offsets of the same topic, as -1, 0 or +1. An
// offset that does not parse sorts first.
func CompareOffsets(a, b string) int {
	am, as, aok := parseOffset(a)
	bm, bs, bok := parseOffset(b)
	switch {
	case !aok || !bok:
		return boolCompare(aok, bok)
	case am != bm:
		return uintCompare(am, bm)
	default:
		return uintCompare(as, bs)
	}
}

func parseOffset(o string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(o, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

func uintCompare(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
