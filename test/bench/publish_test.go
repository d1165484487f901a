package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// The publisher's connection sends each request with its path, key, type
// and body, keeps one connection for many requests, reports a non-2xx
// answer, and dials again after the server closed the connection.
func TestRESTConnPostsOverOneKeptAliveConnection(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []string
		conns  = map[string]bool{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+r.Header.Get("X-API-Key")+" "+r.Header.Get("Content-Type")+" "+string(body))
		conns[r.RemoteAddr] = true
		mu.Unlock()
		switch string(body) {
		case "refuse":
			http.Error(w, `{"error":"no"}`, http.StatusBadRequest)
		case "close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"id":"x"}`))
		}
	}))
	defer srv.Close()
	c, err := newRESTConn(srv.URL, "k1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	ctx := context.Background()
	for _, b := range []string{`{"a":1}`, `{"b":2}`, `{"c":3}`} {
		if err := c.post(ctx, "/api/message", []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if len(conns) != 1 {
		t.Errorf("3 requests used %d connections, want 1", len(conns))
	}
	if err := c.post(ctx, "/api/batch", []byte("refuse")); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("a 400 answer gave error %v, want one naming HTTP 400", err)
	}
	if err := c.post(ctx, "/api/message", []byte("close")); err != nil {
		t.Fatal(err)
	}
	if err := c.post(ctx, "/api/message", []byte(`{"d":4}`)); err != nil {
		t.Fatalf("after the server closed the connection: %v", err)
	}
	if len(conns) != 2 {
		t.Errorf("%d connections, want 2 (a new one after the server's close)", len(conns))
	}
	want := []string{
		`/api/message k1 application/json {"a":1}`, `/api/message k1 application/json {"b":2}`,
		`/api/message k1 application/json {"c":3}`, `/api/batch k1 application/json refuse`,
		`/api/message k1 application/json close`, `/api/message k1 application/json {"d":4}`,
	}
	if strings.Join(bodies, "\n") != strings.Join(want, "\n") {
		t.Errorf("the server got\n%s\nwant\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
}

// A request ends when its context does, even when the server never answers.
func TestRESTConnPostEndsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			defer conn.Close()
			_, _ = io.Copy(io.Discard, conn) // reads, never answers
		}
	}()
	c, err := newRESTConn("http://"+ln.Addr().String(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.post(ctx, "/api/message", []byte("{}")) }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a request whose context ended succeeded")
	}
}
