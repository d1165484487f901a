package router

import (
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// lagCheckEvery is how often a reader that keeps up checks its lag; one that
// is behind checks before each read.
const lagCheckEvery = 250 * time.Millisecond

// streamID is a Redis stream entry id, "<ms>-<seq>".
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	msPart, seqPart, found := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return streamID{}, false
	}
	var seq uint64
	if found {
		if seq, err = strconv.ParseUint(seqPart, 10, 64); err != nil {
			return streamID{}, false
		}
	}
	return streamID{ms, seq}, true
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

// reportLag reports, from the stream's XINFO STREAM answer given just before
// a read after the entry after, how far the reader is behind the stream (in
// seconds of entry ids) and whether trimming removed entries it had not read
// yet.
func (s *streamReader) reportLag(topic, after string, cmd *redis.XInfoStreamCmd) {
	info, err := cmd.Result()
	if err != nil || info == nil {
		return // no stream yet, or Redis away (left unanswered): nothing to say
	}
	read, ok := parseStreamID(after)
	if !ok {
		return
	}
	last, ok := parseStreamID(info.LastGeneratedID)
	if !ok {
		return
	}
	lag := 0.0
	if read.less(last) && read.ms > 0 {
		lag = float64(last.ms-min(read.ms, last.ms)) / 1000
	}
	s.metrics.lagSeconds.WithLabelValues(topic).Set(lag)
	first, ok := parseStreamID(info.FirstEntry.ID)
	if !ok || read == (streamID{}) {
		return
	}
	// The entry after the last one read is gone if the first entry left is
	// later than the next id: trimming (MAXLEN) overtook this reader.
	next := streamID{read.ms, read.seq + 1}
	if next.less(first) {
		s.metrics.trimmedUnread.WithLabelValues(topic).Inc()
		s.log.Warn("stream trimming overtook this reader: entries were dropped before it read them",
			"topic", topic, "last_read", after, "first_left", info.FirstEntry.ID,
			"hint", "raise REDIS_STREAM_MAXLEN or find what slows this instance")
	}
}
