package router

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// logReadCount is how many entries one XRANGE of ReadAfter asks for.
const logReadCount = 512

// Has reports whether the entry at offset is still in topic's stream (not
// trimmed).
func (b *redisBus) Has(ctx context.Context, topic, offset string) (bool, error) {
	if _, _, ok := parseOffset(offset); !ok {
		return false, nil
	}
	entries, err := b.client.XRangeN(ctx, topic, offset, offset, 1).Result()
	if err != nil {
		return false, fmt.Errorf("redis log: %s at %s: %w", topic, offset, err)
	}
	return len(entries) == 1, nil
}

// ReadAfter calls fn with each entry of topic's stream after offset, up to the
// last entry when it was called, logReadCount entries per XRANGE. An entry
// that is not a message is skipped, as the readers skip it.
func (b *redisBus) ReadAfter(ctx context.Context, topic, offset string, fn func(*message.Message) error) error {
	last, err := b.client.XRevRangeN(ctx, topic, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("redis log: end of %s: %w", topic, err)
	}
	if len(last) == 0 {
		return nil
	}
	end := last[0].ID
	for after := offset; CompareOffsets(after, end) < 0; {
		entries, err := b.client.XRangeN(ctx, topic, "("+after, end, logReadCount).Result()
		if err != nil {
			return fmt.Errorf("redis log: %s after %s: %w", topic, after, err)
		}
		if len(entries) == 0 {
			return nil
		}
		for _, entry := range entries {
			after = entry.ID
			msg, err := unmarshalEntry(entry)
			if err != nil {
				b.log.Warn("stream entry skipped", "topic", topic, "entry", entry.ID, "error", err)
				continue
			}
			if err := fn(msg); err != nil {
				return err
			}
		}
	}
	return nil
}
