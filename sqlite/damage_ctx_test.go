package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/sqlite"
)

// endsAt is a context that ends at the n-th look at its Done channel: a
// SIGTERM (or a deadline) arriving at each point of a call in turn.
type endsAt struct {
	mu    sync.Mutex
	n     int
	ch    chan struct{}
	ended bool
}

func (c *endsAt) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *endsAt) Value(any) any               { return nil }

func (c *endsAt) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n--; c.n == 0 {
		c.ended = true
		close(c.ch)
	}
	return c.ch
}

func (c *endsAt) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return context.Canceled
	}
	return nil
}

// TestDamageNotHiddenByContext: a surge.db that is no database is refused
// as damaged (TestGarbageDatabaseRefusedAsDamaged), also when the start's
// context ends while SQLite reads it (SIGTERM during a start). The
// driver (modernc.org/sqlite) reports any failure of a call once its
// context has ended as the context's error, hiding SQLite's "file is not
// a database": the start then said its check was "stopped before it
// finished: context canceled", and the operator retries the start of a
// database that needs restoring. Each run ends the context at another
// point of the start.
func TestDamageNotHiddenByContext(t *testing.T) {
	for n := 1; n <= 30; n++ {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, sqlite.FileName), bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := sqlite.Open(&endsAt{n: n, ch: make(chan struct{})}, dir, sqlite.Options{NoExpiry: true})
		if err == nil {
			s.Close()
			t.Fatalf("Open accepted a surge.db that is no database (context ending at its look %d)", n)
		}
		if !errors.Is(err, sqlite.ErrDamaged) {
			t.Errorf("Open of a surge.db of garbage, its context ending at look %d: %q; want ErrDamaged (\"database is damaged\"): SQLite found the file is no database", n, err)
		}
	}
}
