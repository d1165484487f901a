package main

import "testing"

func TestCommandCallsReadsInfoCommandstats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_xadd:calls=20006,usec=108342,usec_per_call=5.42,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_xread:calls=13631,usec=182262,usec_per_call=13.37,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_xinfo|stream:calls=39,usec=914,usec_per_call=23.44,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_broken:usec=1\r\n" +
		"not_a_stat:calls=5\r\n"
	got := commandCalls(info)
	want := map[string]int64{"xadd": 20006, "xread": 13631, "xinfo|stream": 39}
	if len(got) != len(want) {
		t.Fatalf("commandCalls = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d calls, want %d", k, got[k], v)
		}
	}
}

func TestRedisReadsAreReportedForRedisScenariosOnly(t *testing.T) {
	for sc, want := range map[string]bool{
		"redis-per-user": true, "redis-broadcast": true, "redis-bus": true,
		"per-user": false, "kafka-per-user": false, "kafka-bus": false, "idle": false,
	} {
		has := false
		for _, r := range rowsOf(sc) {
			has = has || r.label == "Redis reads (XREAD) per 1,000 messages"
		}
		if has != want {
			t.Errorf("%s: Redis reads row shown %v, want %v", sc, has, want)
		}
	}
	r := &result{redisReads: 5439}
	r.send.nAccepted = 20000
	if got := r.readsPerThousand(); got != 271.95 {
		t.Errorf("readsPerThousand = %v, want 271.95", got)
	}
	if readsSince(-1, 10) != -1 || readsSince(10, 5) != -1 || readsSince(10, 15) != 5 {
		t.Error("readsSince does not mark unknown counts")
	}
}
