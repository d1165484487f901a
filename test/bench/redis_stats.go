package main

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisReads returns how many XREAD and XREADGROUP calls the deployment's
// redis-server has answered so far, or -1 without a redis-server or when it
// cannot be asked. Every XADD answers a blocked read of every instance: the
// reads per message say how well instances gather entries per read.
func (d *deployment) redisReads(ctx context.Context) int64 {
	if d.redis == nil {
		return -1
	}
	opts, err := redis.ParseURL(d.redis.url)
	if err != nil {
		return -1
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return -1
	}
	calls := commandCalls(info)
	return calls["xread"] + calls["xreadgroup"]
}

// readsSince is the reads between two redisReads counts, -1 when either is
// unknown.
func readsSince(before, after int64) int64 {
	if before < 0 || after < before {
		return -1
	}
	return after - before
}

// commandCalls reads the calls of each command from INFO commandstats
// ("cmdstat_xread:calls=13631,usec=182262,..."); subcommands keep their
// "command|subcommand" names.
func commandCalls(info string) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, stats, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[strings.TrimPrefix(name, "cmdstat_")] = n
				}
			}
		}
	}
	return out
}
