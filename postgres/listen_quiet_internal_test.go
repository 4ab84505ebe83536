package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestListenQuietConnectionKept: the listener's pings after each
// listenIdle of silence keep a sound connection: a node hearing nothing
// for a while must not reconnect each time, each reconnect a re-read of
// every sale (""), and it still hears the next announcement.
func TestListenQuietConnectionKept(t *testing.T) {
	ns := servicetest.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, servicetest.PostgresURL(), Options{Schema: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	heard := make(chan string, 16)
	done := make(chan struct{})
	lctx, stop := context.WithCancel(ctx)
	go func() { defer close(done); db.Listen(lctx, nil, func(id string) { heard <- id }) }()
	defer func() { stop(); <-done }()
	if id := <-heard; id != "" {
		t.Fatalf("first call %q, want the connect's \"\"", id)
	}
	time.Sleep(2*listenIdle + time.Second) // two pings' worth of silence
	if err := db.Notify(ctx, "after-quiet"); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-heard:
		if id != "after-quiet" {
			t.Fatalf("after %v of silence the listener called %q, want the announcement (\"\": it reconnected)", 2*listenIdle+time.Second, id)
		}
	case <-ctx.Done():
		t.Fatal("the listener never heard the announcement after a quiet spell")
	}
}
