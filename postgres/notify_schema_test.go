package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// openURLSchema opens a fresh schema the way docs/cluster.md tells
// deployments sharing one database to: a search_path in the URL.
func openURLSchema(t *testing.T) *postgres.DB {
	t.Helper()
	ns := servicetest.Namespace(t)
	ctx := context.Background()
	made, err := postgres.Open(ctx, url(), postgres.Options{Schema: ns}) // creates it
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	made.Close()
	u := url()
	if strings.Contains(u, "?") {
		u += "&search_path=" + ns
	} else {
		u += "?search_path=" + ns
	}
	db, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		t.Fatalf("postgres.Open with search_path in the URL: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// Two deployments sharing one database, each in a schema of its own set by
// the URL's search_path, do not hear each other's announcements: one's
// every cancel and expiry made every node of the other list and refresh
// all its sales (an id it does not know is a full sync).
func TestNotifyStaysInTheURLSchema(t *testing.T) {
	a, b := openURLSchema(t), openURLSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	heard := make(chan string, 16)
	done := make(chan struct{})
	go func() { defer close(done); b.Listen(ctx, nil, func(id string) { heard <- id }) }()
	defer func() { cancel(); <-done }()
	select {
	case id := <-heard:
		if id != "" {
			t.Fatalf("first call %q, want the (re)connect's \"\"", id)
		}
	case <-ctx.Done():
		t.Fatal("b never listened")
	}
	if err := a.Notify(ctx, "sale-of-a"); err != nil {
		t.Fatal(err)
	}
	// Committed after a's: b hears its own after a's, if it hears a's.
	if err := b.Notify(ctx, "sale-of-b"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case id := <-heard:
			switch id {
			case "sale-of-b":
				return
			case "sale-of-a":
				t.Fatal("deployment b heard deployment a's announcement (sale-of-a): their schemas share one LISTEN channel")
			}
		case <-ctx.Done():
			t.Fatal("b never heard its own announcement")
		}
	}
}
