// Command backend is the HTTP backend the integration suites point
// BACKEND_URL at (test/harness.StartBackend runs it). It checks each
// request's signature, appends what it accepted to a JSON-lines file (so
// that what it received survives its restarts), and behaves as the suite
// sets it to through POST /mode: answer some or all events with a status,
// answer slowly.
//
//	ADDR=127.0.0.1:0 SECRET=… RECORD=events.jsonl backend
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how the backend answers; the zero Mode accepts everything.
type Mode struct {
	// Status, when set, answers every event with it (nothing is recorded).
	Status int `json:"status"`
	// Delay waits before answering; a request its client gave up on in the
	// meantime is not recorded (the work is rolled back).
	Delay time.Duration `json:"delay"`
	// Reject answers events of this name 422; Fail answers them 500.
	Reject string `json:"reject"`
	Fail   string `json:"fail"`
}

// Record is one line of the record file: an event the backend accepted.
type Record struct {
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	UserID string          `json:"userId"`
	Data   json.RawMessage `json:"data"`
	Reply  bool            `json:"reply"`
}

type backend struct {
	secret   []byte
	mode     atomic.Pointer[Mode]
	attempts atomic.Int64
	mu       sync.Mutex
	record   *os.File
}

func main() {
	f, err := os.OpenFile(os.Getenv("RECORD"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	b := &backend{secret: []byte(os.Getenv("SECRET")), record: f}
	b.mode.Store(&Mode{})
	ln, err := net.Listen("tcp", os.Getenv("ADDR"))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", b.events)
	mux.HandleFunc("POST /mode", b.setMode)
	mux.HandleFunc("GET /attempts", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, b.attempts.Load())
	})
	fmt.Printf("listening %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}

func (b *backend) setMode(w http.ResponseWriter, r *http.Request) {
	var m Mode
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mode.Store(&m)
	w.WriteHeader(http.StatusNoContent)
}

func (b *backend) events(w http.ResponseWriter, r *http.Request) {
	b.attempts.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, b.secret)
	mac.Write([]byte(r.Header.Get("X-Signature-Timestamp") + "."))
	mac.Write(body)
	if !hmac.Equal([]byte("sha256="+hex.EncodeToString(mac.Sum(nil))), []byte(r.Header.Get("X-Signature"))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var rec Record
	if err := json.Unmarshal(body, &rec); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if rec.ID != r.Header.Get("X-Event-Id") {
		http.Error(w, "X-Event-Id is not the envelope id", http.StatusBadRequest)
		return
	}
	rec.Reply = r.Header.Get("X-Reply-Expected") == "true"
	m := b.mode.Load()
	if m.Delay > 0 {
		select {
		case <-time.After(m.Delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case m.Status != 0:
		http.Error(w, "mode status", m.Status)
		return
	case rec.Event == m.Reject:
		http.Error(w, "event "+rec.Event+" is refused", http.StatusUnprocessableEntity)
		return
	case rec.Event == m.Fail:
		http.Error(w, "event "+rec.Event+" breaks the backend", http.StatusInternalServerError)
		return
	}
	line, _ := json.Marshal(rec)
	b.mu.Lock()
	_, err = b.record.Write(append(line, '\n'))
	b.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if rec.Reply {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "echo": rec.Data, "user": rec.UserID})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
