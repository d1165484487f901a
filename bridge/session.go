package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Connection-state recovery across instances.
//
// A client the server gave a private session id (pid) sends it back with the
// offset of the last event it received when it reconnects, to this instance
// or any other. Its session (socket id, user, rooms) is kept in a Store shared
// by the instances from the moment it connects, refreshed while it is
// connected and kept RecoveryWindow after it disconnects, so that even the
// clients of an instance that died without a word can be recovered. What it
// missed is read from the bus's log of the outbound topic: every envelope
// after its offset that reaches it.

// SessionStore is where sessions are kept: a key-value store with expiry
// shared by the instances (router.Store).
type SessionStore interface {
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	Expire(ctx context.Context, keys []string, ttl time.Duration) error
	Delete(ctx context.Context, key string) error
}

// storedSession is a session as kept in the store.
type storedSession struct {
	Sid   string   `json:"sid"`
	User  string   `json:"user"`
	Rooms []string `json:"rooms"`
}

// liveSession is a socket connected here and its user.
type liveSession struct {
	s    *socket.Socket
	user string
}

// sessions keeps the sessions of this instance's sockets in the store.
type sessions struct {
	store  SessionStore
	prefix string
	window time.Duration
	log    *slog.Logger

	mu sync.Mutex
	// live holds the sockets connected here, and their users, by pid;
	// bySid finds a socket's pid; dirty holds the pids whose rooms changed
	// since they were saved.
	live  map[string]liveSession
	bySid map[socket.SocketId]string
	dirty map[string]struct{}
	// ended holds the sessions that ended since the last flush: to keep
	// (recoverable) or to delete (nil). saving holds what the flush under
	// way is writing, until it is done: the store may still have an older
	// copy of those sessions.
	ended  map[string]*storedSession
	saving map[string]*storedSession
}

// sessionFlushInterval is how often new sessions and room changes are saved:
// a client whose instance dies within it of a change may come back without
// that change.
const sessionFlushInterval = 200 * time.Millisecond

// sessionStoreTimeout bounds one call to the store.
const sessionStoreTimeout = 2 * time.Second

func newSessions(store SessionStore, prefix string, window time.Duration, log *slog.Logger) *sessions {
	return &sessions{store: store, prefix: prefix, window: window, log: log,
		live: map[string]liveSession{}, bySid: map[socket.SocketId]string{},
		dirty: map[string]struct{}{}, ended: map[string]*storedSession{}}
}

func (ss *sessions) key(pid string) string { return ss.prefix + pid }

// connected starts keeping s's session.
func (ss *sessions) connected(s *socket.Socket, user string) {
	pid := socketPid(s)
	if pid == "" {
		ss.log.Warn("socket has no private session id: it cannot be recovered", "socket", string(s.Id()))
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.live[pid] = liveSession{s: s, user: user}
	ss.bySid[s.Id()] = pid
	ss.dirty[pid] = struct{}{}
}

// roomsChanged marks the session of socket id to be saved again.
func (ss *sessions) roomsChanged(id socket.SocketId) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if pid, ok := ss.bySid[id]; ok {
		ss.dirty[pid] = struct{}{}
	}
}

// disconnected keeps a session RecoveryWindow from now (recoverable) or
// forgets it. It does not wait for the store: the write is left to the next
// flush (a session already saved keeps at least two thirds of a window
// meanwhile), and a forgotten session is deleted there too.
func (ss *sessions) disconnected(pid string, sid socket.SocketId, rooms []socket.Room, recoverable bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	live, known := ss.live[pid]
	user := live.user
	delete(ss.live, pid)
	delete(ss.bySid, sid)
	delete(ss.dirty, pid)
	if !recoverable || !known {
		ss.ended[pid] = nil
		return
	}
	ss.ended[pid] = &storedSession{Sid: string(sid), User: user, Rooms: roomNames(rooms)}
}

func (ss *sessions) save(ctx context.Context, pid string, s storedSession) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return ss.store.Set(ctx, ss.key(pid), b, ss.window)
}

// load returns a kept session: one that ended here and is not flushed yet
// (or is being written), or one from the store.
func (ss *sessions) load(ctx context.Context, pid string) (storedSession, bool, error) {
	ss.mu.Lock()
	ended, here := ss.ended[pid]
	if !here {
		ended, here = ss.saving[pid]
	}
	ss.mu.Unlock()
	if here {
		if ended == nil {
			return storedSession{}, false, nil
		}
		return *ended, true, nil
	}
	b, ok, err := ss.store.Get(ctx, ss.key(pid))
	if err != nil || !ok {
		return storedSession{}, false, err
	}
	var s storedSession
	if err := json.Unmarshal(b, &s); err != nil {
		return storedSession{}, false, err
	}
	return s, true, nil
}

// run saves new and changed sessions every sessionFlushInterval and gives
// the sessions of connected sockets another window every third of one,
// until ctx is done.
func (ss *sessions) run(ctx context.Context) {
	flush := time.NewTicker(sessionFlushInterval)
	defer flush.Stop()
	refresh := time.NewTicker(max(ss.window/3, sessionFlushInterval))
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			ss.flush(ctx)
		case <-refresh.C:
			ss.refresh(ctx)
		}
	}
}

func (ss *sessions) flush(ctx context.Context) {
	ss.mu.Lock()
	if len(ss.dirty) == 0 && len(ss.ended) == 0 {
		ss.mu.Unlock()
		return
	}
	pending := make(map[string]*storedSession, len(ss.dirty)+len(ss.ended))
	for pid := range ss.dirty {
		if live, ok := ss.live[pid]; ok {
			s := live.s
			pending[pid] = &storedSession{Sid: string(s.Id()), User: live.user, Rooms: roomNames(s.Rooms().Keys())}
		}
	}
	for pid, s := range ss.ended {
		pending[pid] = s
	}
	clear(ss.dirty)
	clear(ss.ended)
	ss.saving = pending
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		ss.saving = nil
		ss.mu.Unlock()
	}()
	var failed error
	for pid, s := range pending {
		if failed == nil {
			cctx, cancel := context.WithTimeout(ctx, sessionStoreTimeout)
			if s == nil {
				failed = ss.store.Delete(cctx, ss.key(pid))
			} else {
				failed = ss.save(cctx, pid, *s)
			}
			cancel()
			if failed == nil {
				continue
			}
			ss.log.Warn("sessions not saved; trying again", "sessions", len(pending), "error", failed)
		}
		// The store is failing: keep the rest for the next flush.
		ss.mu.Lock()
		if _, live := ss.live[pid]; live {
			ss.dirty[pid] = struct{}{}
		} else if _, newer := ss.ended[pid]; !newer {
			ss.ended[pid] = s
		}
		ss.mu.Unlock()
	}
}

func (ss *sessions) refresh(ctx context.Context) {
	ss.mu.Lock()
	keys := make([]string, 0, len(ss.live))
	for pid := range ss.live {
		keys = append(keys, ss.key(pid))
	}
	ss.mu.Unlock()
	for chunk := range slicesChunk(keys, 1000) {
		cctx, cancel := context.WithTimeout(ctx, sessionStoreTimeout)
		if err := ss.store.Expire(cctx, chunk, ss.window); err != nil {
			ss.log.Warn("sessions not refreshed", "sessions", len(chunk), "error", err)
		}
		cancel()
	}
}

func slicesChunk(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// roomNames returns the rooms a session keeps: its named rooms and its user
// room (not the socket's own room, which the library joins again).
func roomNames(rooms []socket.Room) []string {
	out := make([]string, 0, len(rooms))
	for _, r := range rooms {
		if strings.HasPrefix(string(r), roomPrefix) || strings.HasPrefix(string(r), userRoomPrefix) {
			out = append(out, string(r))
		}
	}
	sort.Strings(out)
	return out
}

// socketPid reads the socket's private session id. The library keeps it to
// itself (it sends it to the client in CONNECT and gives it to the adapter
// only when the socket closes); reading it at connect time is what lets a
// session survive an instance that dies without closing its sockets. If a
// new version of the library renames it, every connection logs a warning and
// the recovery suite (test/integration/recovery_test.go) fails.
func socketPid(s *socket.Socket) string {
	v := reflect.ValueOf(s).Elem().FieldByName("pid")
	if !v.IsValid() || v.Kind() != reflect.String {
		return ""
	}
	return v.String()
}

// recoveryAdapter is the library's in-memory adapter with sessions kept in
// the SessionStore and missed packets left to the bridge, which reads them
// from the bus's log once the socket is registered.
type recoveryAdapter struct {
	socket.Adapter
	b *Bridge
}

type recoveryAdapterBuilder struct{ b *Bridge }

func (rb *recoveryAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &recoveryAdapter{Adapter: socket.MakeAdapter(), b: rb.b}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

func (a *recoveryAdapter) AddAll(id socket.SocketId, rooms *types.Set[socket.Room]) {
	a.Adapter.AddAll(id, rooms)
	a.b.sessions.roomsChanged(id)
}

func (a *recoveryAdapter) Del(id socket.SocketId, room socket.Room) {
	a.Adapter.Del(id, room)
	a.b.sessions.roomsChanged(id)
}

// PersistSession keeps the session of a socket that closed for a reason it
// may come back from (the library calls it then, before the socket leaves its
// rooms).
func (a *recoveryAdapter) PersistSession(s *socket.SessionToPersist) {
	var rooms []socket.Room
	if s.Rooms != nil {
		rooms = s.Rooms.Keys()
	}
	a.b.sessions.disconnected(string(s.Pid), s.Sid, rooms, true)
}

// RestoreSession returns the kept session of pid when the client's offset is
// still in the log: the socket gets its id and rooms back, and the bridge
// sends it what it missed once it is registered (Bridge.recover). A session
// that is unknown, expired, still connected here, or whose offset the log no
// longer holds is not restored: the client connects afresh.
func (a *recoveryAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionStoreTimeout)
	defer cancel()
	kept, ok, err := a.b.sessions.load(ctx, string(pid))
	if err != nil || !ok {
		return nil, err
	}
	if _, live := a.b.io.Sockets().Sockets().Load(socket.SocketId(kept.Sid)); live {
		return nil, nil
	}
	if has, err := a.b.cfg.Log.Has(ctx, offset); err != nil || !has {
		return nil, err
	}
	rooms := types.NewSet[socket.Room]()
	for _, r := range kept.Rooms {
		rooms.Add(socket.Room(r))
	}
	return &socket.Session{
		SessionToPersist: &socket.SessionToPersist{Sid: socket.SocketId(kept.Sid), Pid: pid, Rooms: rooms, Data: restoredUser(kept.User)},
		MissedPackets:    nil,
	}, nil
}

// restoredUser is the socket data of a restored socket until the
// authentication middleware replaces it with the token's claims: the user the
// session belongs to, which the token must name.
type restoredUser string
