package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/web3-socket/web3-socket/schemas"
)

// flakyStore is a session store that fails while down.
type flakyStore struct {
	down bool
	kv   map[string][]byte
}

var errStoreDown = errors.New("store down")

func (f *flakyStore) Set(_ context.Context, key string, value []byte, _ time.Duration) error {
	if f.down {
		return errStoreDown
	}
	f.kv[key] = value
	return nil
}

func (f *flakyStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	if f.down {
		return nil, false, errStoreDown
	}
	v, ok := f.kv[key]
	return v, ok, nil
}

func (f *flakyStore) Expire(context.Context, []string, time.Duration) error { return nil }

func (f *flakyStore) Delete(_ context.Context, key string) error {
	if f.down {
		return errStoreDown
	}
	delete(f.kv, key)
	return nil
}

func TestEndedSessionsAreKeptThroughAFailingStore(t *testing.T) {
	store := &flakyStore{kv: map[string][]byte{}}
	ss := newSessions(store, "s:", time.Minute, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	ss.live["p1"], ss.live["p2"] = liveSession{user: "alice"}, liveSession{user: "bob"}
	store.kv["s:p2"] = []byte(`{"sid":"x","user":"bob"}`)

	ss.disconnected("p1", "sid1", []socket.Room{"room:news", "user:alice", "sid1"}, true)
	ss.disconnected("p2", "sid2", nil, false)
	// Before any flush, this instance already knows both outcomes.
	if got, ok, _ := ss.load(ctx, "p1"); !ok || got.User != "alice" || len(got.Rooms) != 2 {
		t.Fatalf("load p1 before the flush = %+v %v, want alice with her two rooms", got, ok)
	}
	if _, ok, _ := ss.load(ctx, "p2"); ok {
		t.Fatal("p2 ended for good but loads")
	}

	store.down = true
	ss.flush(ctx)
	store.down = false
	if _, ok := store.kv["s:p1"]; ok {
		t.Fatal("p1 written while the store was down")
	}
	ss.flush(ctx)
	if _, ok := store.kv["s:p1"]; !ok {
		t.Error("p1 not written once the store came back")
	}
	if _, ok := store.kv["s:p2"]; ok {
		t.Error("p2 not deleted once the store came back")
	}
	if got, ok, err := ss.load(ctx, "p1"); err != nil || !ok || got.Sid != "sid1" {
		t.Errorf("load p1 from the store = %+v %v %v", got, ok, err)
	}
}

// heldStore holds its first Set until released: a flush caught writing.
type heldStore struct {
	flakyStore
	writing, release chan struct{}
}

func (h *heldStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if h.writing != nil {
		close(h.writing)
		h.writing = nil
		<-h.release
	}
	return h.flakyStore.Set(ctx, key, value, ttl)
}

// A client that comes back while the flush is writing its session must get
// that session, not the older copy the store still has (saved while it was
// connected, before it joined a room).
func TestASessionBeingWrittenIsLoadedAsEnded(t *testing.T) {
	store := &heldStore{flakyStore: flakyStore{kv: map[string][]byte{}}, writing: make(chan struct{}), release: make(chan struct{})}
	writing := store.writing
	ss := newSessions(store, "s:", time.Minute, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	store.kv["s:p1"] = []byte(`{"sid":"sid1","user":"alice","rooms":["user:alice"]}`)
	ss.live["p1"] = liveSession{user: "alice"}
	ss.disconnected("p1", "sid1", []socket.Room{"room:news", "user:alice", "sid1"}, true)

	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		ss.flush(ctx)
	}()
	<-writing
	got, ok, err := ss.load(ctx, "p1")
	close(store.release)
	<-flushed
	if err != nil || !ok || strings.Join(got.Rooms, ",") != "room:news,user:alice" {
		t.Fatalf("load while the flush writes = %+v %v %v, want alice with room:news and user:alice", got, ok, err)
	}
	if got, ok, _ := ss.load(ctx, "p1"); !ok || len(got.Rooms) != 2 {
		t.Fatalf("load after the flush = %+v %v, want the written session", got, ok)
	}
	if len(ss.saving) != 0 {
		t.Fatalf("%d sessions still marked as being written after the flush", len(ss.saving))
	}
}

func TestReachesFollowsUsersRoomsSocketsAndExclusions(t *testing.T) {
	rooms := typesSet("room:news")
	for _, tt := range []struct {
		name string
		to   string
		want bool
	}{
		{"user", `{"users":["alice"]}`, true},
		{"other user", `{"users":["bob"]}`, false},
		{"room", `{"rooms":["news"]}`, true},
		{"other room", `{"rooms":["sport"]}`, false},
		{"socket", `{"sockets":["sid1"]}`, true},
		{"everyone", `{"all":true}`, true},
		{"everyone but her", `{"all":true,"except":{"users":["alice"]}}`, false},
		{"room but not it", `{"users":["alice"],"except":{"rooms":["news"]}}`, false},
	} {
		if got := reaches(target(t, tt.to), "alice", "sid1", rooms); got != tt.want {
			t.Errorf("%s: reaches = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func typesSet(rooms ...socket.Room) *types.Set[socket.Room] { return types.NewSet(rooms...) }

func target(t *testing.T, raw string) *schemas.Target {
	t.Helper()
	var to schemas.Target
	if err := json.Unmarshal([]byte(raw), &to); err != nil {
		t.Fatal(err)
	}
	return &to
}

// A live packet the log read already gave is dropped, even when this
// instance's reader delivers it after the recovery (it was behind the log).
func TestRecoveryGateHoldsThenDropsWhatTheLogGave(t *testing.T) {
	g := &recoveryGate{compare: func(a, b string) int { return strings.Compare(a, b) }}
	packets := []encodedPacket{{offset: "4"}, {offset: "5"}, {offset: "6"}}
	if _, held, _ := g.admit(packets, []int{0}); !held || len(g.held) != 1 {
		t.Fatalf("before release: held=%v with %d packets, want the packet held", held, len(g.held))
	}
	g.released, g.floor = true, "5"
	keep, held, passed := g.admit(packets, []int{0, 1})
	if held || passed || len(keep) != 0 {
		t.Errorf("packets up to the floor: keep %v held %v passed %v, want none kept", keep, held, passed)
	}
	keep, _, passed = g.admit(packets, []int{1, 2})
	if !passed || len(keep) != 1 || keep[0] != 2 {
		t.Errorf("packets 5 and 6 after a floor of 5: keep %v passed %v, want only 6 and the gate passed", keep, passed)
	}
}
