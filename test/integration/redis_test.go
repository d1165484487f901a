package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/web3-socket/web3-socket/router"
	"github.com/web3-socket/web3-socket/schemas"
	"github.com/web3-socket/web3-socket/test/harness"
)

// startRedisPair starts redis-server and two instances sharing it, with the
// same secrets and short heartbeats.
func startRedisPair(t *testing.T) (*harness.Redis, *harness.Server, *harness.Server) {
	t.Helper()
	return startPairOn(t, harness.StartRedis(t))
}

func startPairOn(t *testing.T, r *harness.Redis) (*harness.Redis, *harness.Server, *harness.Server) {
	t.Helper()
	return startPairWith(t, r, harness.DefaultEnv())
}

// startPairWith is startPairOn with env as the instances' base environment.
func startPairWith(t *testing.T, r *harness.Redis, env map[string]string) (*harness.Redis, *harness.Server, *harness.Server) {
	t.Helper()
	s := startInstances(t, r, env, "it-a", "it-b")
	return r, s[0], s[1]
}

// startInstances starts one instance per id on r, sharing env (secrets
// included) with short heartbeats.
func startInstances(t *testing.T, r *harness.Redis, env map[string]string, ids ...string) []*harness.Server {
	t.Helper()
	env["BUS"] = "redis"
	env["REDIS_URL"] = r.URL
	env["CLUSTER_HEARTBEAT"] = "300ms"
	var out []*harness.Server
	for _, id := range ids {
		own := map[string]string{"INSTANCE_ID": id}
		for k, v := range env {
			if k != "INSTANCE_ID" {
				own[k] = v
			}
		}
		out = append(out, harness.StartServer(t, own))
	}
	return out
}

// TestRedisBusDeliversAcrossInstances runs two instances as separate
// processes over one redis-server, with the official client on each: a
// message, a broadcast, a room joined through the REST API of the other
// instance, a send_message between users on different instances, and an
// envelope a backend added to the stream with XADD all reach their
// recipients on whichever instance holds them.
func TestRedisBusDeliversAcrossInstances(t *testing.T) {
	r, a, b := startRedisPair(t)
	ws := harness.Modes[0]
	d := harness.NewDriver(t)
	connect(t, d, a, ws, "alice", harness.UserToken(t, a.JWTSecret(), "alice", nil))
	connect(t, d, b, ws, "bob", harness.UserToken(t, b.JWTSecret(), "bob", nil))

	deliversAcrossInstances(t, d, a, b)

	t.Run("presence and rooms are cluster-wide", func(t *testing.T) {
		for _, s := range []*harness.Server{a, b} {
			eventually(t, wait, func() (bool, string) {
				st := statsOf(t, s)
				return st.Cluster.Instances == 2, fmt.Sprintf("instances seen by %s: %+v", s.Env["INSTANCE_ID"], st)
			})
		}
		connect(t, d, b, ws, "alice-2", harness.UserToken(t, b.JWTSecret(), "alice", nil))
		// A cluster query answers with the replies that came within its
		// timeout, from the instances the heartbeats show: on a busy machine
		// one may be late, and the query is asked again.
		for _, s := range []*harness.Server{a, b} {
			eventually(t, wait, func() (bool, string) {
				status, body := s.Do("GET", "/api/users/alice", nil, nil)
				var p struct {
					Online    bool
					Sockets   int
					Instances []string
					Rooms     []string
				}
				decode(t, "presence", body, &p)
				return status == 200 && p.Online && p.Sockets == 2 && strings.Join(p.Instances, ",") == "it-a,it-b" && strings.Join(p.Rooms, ",") == "lobby",
					fmt.Sprintf("GET /api/users/alice on %s: %d %s; want 2 sockets on it-a and it-b, in lobby", s.Env["INSTANCE_ID"], status, body)
			})
			eventually(t, wait, func() (bool, string) {
				status, body := s.Do("GET", "/api/rooms", nil, nil)
				var rooms struct {
					Rooms []struct {
						Name    string
						Members int
					}
				}
				decode(t, "rooms", body, &rooms)
				return status == 200 && len(rooms.Rooms) == 1 && rooms.Rooms[0].Name == "lobby" && rooms.Rooms[0].Members == 1,
					fmt.Sprintf("GET /api/rooms on %s: %d %s; want lobby with 1 member", s.Env["INSTANCE_ID"], status, body)
			})
		}
		d.Disconnect("alice-2")
		d.WaitDisconnect("alice-2", wait)
	})

	t.Run("envelope added by a backend with XADD is delivered", func(t *testing.T) {
		opts, err := redis.ParseURL(r.URL)
		if err != nil {
			t.Fatal(err)
		}
		client := redis.NewClient(opts)
		defer client.Close()
		env := schemas.NewDeliver(schemas.Target{Users: []string{"bob"}}, "from-backend", json.RawMessage(`{"n":42}`))
		payload, err := schemas.Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: "socket.outbound", Values: map[string]any{"payload": string(payload)}}).Err(); err != nil {
			t.Fatal(err)
		}
		expectData(t, d.WaitEvent("bob", "from-backend", wait), map[string]any{"n": 42})
	})

	t.Run("the README's redis-cli example is delivered", func(t *testing.T) {
		if _, err := exec.LookPath("redis-cli"); err != nil {
			if harness.InCI() {
				t.Fatal("redis-cli is not installed (Debian: redis-tools, which redis-server brings)")
			}
			t.Skip("redis-cli is not installed")
		}
		readme, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		var line string
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(l, "redis-cli XADD ") {
				line = l
			}
		}
		if line == "" {
			t.Fatal("the README has no redis-cli XADD example")
		}
		connect(t, d, a, ws, "dev", harness.UserToken(t, a.JWTSecret(), "dev-user", nil))
		cmd := strings.Replace(line, "redis-cli ", fmt.Sprintf("redis-cli -p %d ", r.Port), 1)
		if out, err := exec.Command("bash", "-c", cmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		expectData(t, d.WaitEvent("dev", "notification", wait), map[string]any{"message": "Hello"})
	})
}

// clusterStats is GET /api/stats/connections.
type clusterStats struct {
	Cluster struct {
		Connections, Users, Instances int
	}
	Instances []struct {
		ID          string
		Connections int
	}
}

func statsOf(t *testing.T, s *harness.Server) clusterStats {
	t.Helper()
	status, body := s.Do("GET", "/api/stats/connections", nil, nil)
	if status != 200 {
		t.Fatalf("GET /api/stats/connections: %d %s", status, body)
	}
	var st clusterStats
	decode(t, "stats", body, &st)
	return st
}

// TestClusterStatsSeeEveryInstanceAndForgetADeadOne runs two instances over
// Redis: each sees both, with their connections, through the heartbeats on
// the control topic; once one is killed with SIGKILL, the other drops it from
// the cluster statistics within a few heartbeat intervals.
func TestClusterStatsSeeEveryInstanceAndForgetADeadOne(t *testing.T) {
	s := startInstances(t, harness.StartRedis(t), harness.DefaultEnv(), "it-a", "it-b", "it-c")
	a, b, c := s[0], s[1], s[2]
	d := harness.NewDriver(t)
	ws := harness.Modes[0]
	connect(t, d, a, ws, "a1", harness.UserToken(t, a.JWTSecret(), "u-a1", nil))
	connect(t, d, b, ws, "b1", harness.UserToken(t, b.JWTSecret(), "u-b1", nil))
	connect(t, d, b, ws, "b2", harness.UserToken(t, b.JWTSecret(), "u-b2", nil))
	connect(t, d, c, ws, "c1", harness.UserToken(t, c.JWTSecret(), "u-c1", nil))
	for _, s := range s {
		eventually(t, wait, func() (bool, string) {
			st := statsOf(t, s)
			return st.Cluster.Instances == 3 && st.Cluster.Connections == 4 && st.Cluster.Users == 4,
				fmt.Sprintf("stats on %s: %+v", s.Env["INSTANCE_ID"], st)
		})
	}
	// A broadcast from one of three instances reaches the clients of all.
	broadcast(t, c, map[string]any{"event": "all-three", "data": "hi"})
	for _, name := range []string{"a1", "b1", "b2", "c1"} {
		expectData(t, d.WaitEvent(name, "all-three", wait), "hi")
	}

	if err := b.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, s := range []*harness.Server{a, c} {
		eventually(t, wait, func() (bool, string) {
			st := statsOf(t, s)
			ids := make([]string, 0, len(st.Instances))
			for _, i := range st.Instances {
				ids = append(ids, i.ID)
			}
			slices.Sort(ids)
			return st.Cluster.Instances == 2 && st.Cluster.Connections == 2 && strings.Join(ids, ",") == "it-a,it-c",
				fmt.Sprintf("stats on %s after it-b died: %+v", s.Env["INSTANCE_ID"], st)
		})
	}
	if took := time.Since(killed); took > 3*time.Second {
		t.Errorf("it-b left the cluster statistics %v after it died; want within a few 300ms heartbeats", took)
	}
	if got := metric(t, a, "cluster_instances"); got != 2 {
		t.Errorf("cluster_instances on it-a = %v, want 2", got)
	}
}

// TestRedisOutageAnswers503AndDeliveryResumes stops redis-server under two
// instances: a REST publish answers 503 bus_unavailable within its deadline
// (nothing accepted), /ready says not ready, and once Redis is back (empty:
// no persistence) publishing is accepted again and reaches a client on the
// other instance.
func TestRedisOutageAnswers503AndDeliveryResumes(t *testing.T) {
	r, a, b := startRedisPair(t)
	d := harness.NewDriver(t)
	connect(t, d, a, harness.Modes[0], "alice", harness.UserToken(t, a.JWTSecret(), "alice", nil))
	postMessage(t, b, "alice", "before", 1)
	expectData(t, d.WaitEvent("alice", "before", wait), 1)

	r.Stop()
	start := time.Now()
	status, body := b.Do("POST", "/api/message", map[string]any{"userId": "alice", "event": "during", "data": 2}, nil)
	took := time.Since(start)
	var e struct{ Error struct{ Code string } }
	decode(t, "error", body, &e)
	if status != 503 || e.Error.Code != "bus_unavailable" {
		t.Fatalf("publish while Redis is down: %d %s, want 503 bus_unavailable", status, body)
	}
	if took > 5*time.Second {
		t.Errorf("the 503 took %v, past the 5s publish deadline", took)
	}
	if status, body := b.Do("GET", "/ready", nil, nil); status != 503 {
		t.Errorf("/ready while Redis is down: %d %s, want 503", status, body)
	}

	r.Start()
	eventually(t, 20*time.Second, func() (bool, string) {
		status, body := b.Do("POST", "/api/message", map[string]any{"userId": "alice", "event": "after", "data": 3}, nil)
		return status == 202, fmt.Sprintf("publish after Redis came back: %d %s", status, body)
	})
	expectData(t, d.WaitEvent("alice", "after", 20*time.Second), 3)
	d.AssertNoEvent("alice", "during", quiet)
	if status, body := b.Do("GET", "/ready", nil, nil); status != 200 {
		t.Errorf("/ready after Redis came back: %d %s, want 200", status, body)
	}
}

// TestRedisBusPublishesABatchInOrderAndEveryInstanceReadsIt publishes 500
// messages in one call (one MULTI/EXEC) and reads them back, in order, from
// two fan-out subscribers, as two instances would.
func TestRedisBusPublishesABatchInOrderAndEveryInstanceReadsIt(t *testing.T) {
	r := harness.StartRedis(t)
	log := slog.New(slog.DiscardHandler)
	var buses []router.Bus
	for _, name := range []string{"one", "two"} {
		bus, err := router.NewBus(router.BusConfig{Kind: router.KindRedis, Redis: router.RedisConfig{URL: r.URL, Instance: name}}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close() })
		buses = append(buses, bus)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var subs []<-chan *message.Message
	for _, bus := range buses {
		ch, err := bus.FanOut().Subscribe(ctx, "batch.test")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, ch)
	}
	time.Sleep(300 * time.Millisecond) // the subscribers' first XREAD ("$") is under way
	const n = 500
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(fmt.Sprint("m", i), []byte(fmt.Sprint(i)))
	}
	if err := buses[0].Publisher().Publish("batch.test", msgs...); err != nil {
		t.Fatal(err)
	}
	for s, ch := range subs {
		for i := range n {
			select {
			case m := <-ch:
				if string(m.Payload) != fmt.Sprint(i) || m.UUID != fmt.Sprint("m", i) {
					t.Fatalf("subscriber %d: message %d is %s %q", s, i, m.UUID, m.Payload)
				}
				m.Ack()
			case <-ctx.Done():
				t.Fatalf("subscriber %d: %d of %d messages", s, i, n)
			}
		}
	}
}

// TestRedisRestartWithPersistenceLosesNothingAccepted restarts a persistent
// redis-server while one instance publishes a steady stream of messages to a
// user on the other: every message answered 202 reaches the user exactly
// once; those answered 503 during the restart were never accepted.
func TestRedisRestartWithPersistenceLosesNothingAccepted(t *testing.T) {
	restartUnderLoad(t, harness.StartPersistentRedis(t))
}

// TestRedisRestartWithoutPersistenceLosesNothingAccepted does the same with a
// redis-server that keeps nothing: the streams and groups are gone after the
// restart. What was accepted just before it and not yet read is added again
// by the instance that published it (it sees Redis' run_id change), and
// delivered once.
func TestRedisRestartWithoutPersistenceLosesNothingAccepted(t *testing.T) {
	restartUnderLoad(t, harness.StartRedis(t))
}

func restartUnderLoad(t *testing.T, r *harness.Redis) {
	r, a, b := startPairOn(t, r)
	d := harness.NewDriver(t)
	connect(t, d, a, harness.Modes[0], "sink", harness.UserToken(t, a.JWTSecret(), "sink", nil))

	const total = 300
	accepted := map[int]bool{}
	refused := 0
	for seq := range total {
		if seq == total/3 {
			r.Stop()
		}
		if seq == total/3+20 {
			r.Start()
		}
		status, body := b.Do("POST", "/api/message", map[string]any{"userId": "sink", "event": "seq", "data": seq}, nil)
		switch status {
		case 202:
			accepted[seq] = true
		case 503:
			refused++
		default:
			t.Fatalf("message %d: %d %s", seq, status, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if refused == 0 || len(accepted) < total/2 {
		t.Fatalf("%d accepted and %d refused: the restart did not happen under the load", len(accepted), refused)
	}
	got := map[int]int{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(accepted) && time.Now().Before(deadline) {
		ev, err := d.NextEvent("sink", "seq", time.Until(deadline))
		if err != nil {
			break
		}
		var seq int
		decode(t, "seq", ev.Arg(0), &seq)
		got[seq]++
	}
	lost := 0
	for seq := range accepted {
		if got[seq] == 0 {
			lost++
		}
	}
	for seq, n := range got {
		if !accepted[seq] {
			t.Errorf("message %d was answered 503 but delivered", seq)
		}
		if n > 1 {
			t.Errorf("message %d delivered %d times", seq, n)
		}
	}
	if lost != 0 {
		t.Errorf("%d of %d accepted messages lost across the Redis restart", lost, len(accepted))
	}
	t.Logf("%d accepted, %d refused during the restart, %d lost", len(accepted), refused, lost)
}
