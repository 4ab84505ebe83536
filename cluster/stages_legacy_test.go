package cluster_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestOlderStagingKeysDropped: an install of a sale's live state writes
// staging keys, then swaps them in. Versions before the per-bucket record
// of installs (the "st" set) did not record them, so those that such a
// version's crashed install left stayed in Redis for good: an install of
// this version drops only the epochs recorded, and removing a sale
// (archiving it) too. The leader must drop them once no install can swap
// them in (the sale's state is newer, or the sale archived), and leave
// alone those of installs that may still be under way.
func TestOlderStagingKeysDropped(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	// The sales are made on a node of their own, closed before the keys
	// are left: the leader's pass reads the keys there when it starts (as
	// after an upgrade), not those written while it reads.
	s := openStore(t, ns, cluster.Config{Interval: time.Hour})
	t.Cleanup(func() { s.Close() })
	rc := dialRedis(t)
	staged := func(sale string, epoch string) []string {
		var keys []string
		for _, part := range []string{"u", "k", "o"} {
			keys = append(keys, ns+":{"+sale+"}:s"+epoch+":"+part)
		}
		return keys
	}
	// An older version's install that crashed: its staging keys, unrecorded.
	leave := func(keys ...string) {
		for _, k := range keys {
			if err := rc.HSet(ctx, k, "u1", "1").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	steer := func(id string, p surge.SalePatch) {
		if _, err := s.UpdateSale(ctx, id, p, surge.At(time.Now())); err != nil {
			t.Fatalf("update sale %s: %v", id, err)
		}
	}
	yes, no, now := true, false, time.Now()

	// Its install at epoch 2 crashed; one at 3 replaced the state since.
	mustSale(t, s, "rebuilt", 10, 1)
	steer("rebuilt", surge.SalePatch{Paused: &yes})
	steer("rebuilt", surge.SalePatch{Paused: &no})
	leave(staged("rebuilt", "2")...)
	// Archived by an older version, whose removal left them.
	mustSale(t, s, "archived", 10, 1)
	steer("archived", surge.SalePatch{EndsAt: &now})
	if _, err := s.ArchiveSale(ctx, "archived", time.Now()); err != nil {
		t.Fatal(err)
	}
	leave(staged("archived", "1")...)
	// Installs that may be under way: an older version's of epoch 5 (the
	// state is at 1), and this version's of epoch 4 (recorded).
	mustSale(t, s, "installing", 10, 1)
	leave(staged("installing", "5")...)
	leave(staged("installing", "4")...)
	if err := rc.SAdd(ctx, ns+":{installing}:st", 4).Err(); err != nil {
		t.Fatal(err)
	}
	kept := append(staged("installing", "4"), staged("installing", "5")...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs := &servicetest.Log{}
	next := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	t.Cleanup(func() { next.Close() })

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "looked through Redis for staging keys") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	keys, err := rc.Keys(ctx, ns+":{*}:s[0-9]*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	slices.Sort(kept)
	if !slices.Equal(keys, kept) {
		t.Errorf("Redis holds the staging keys %q; want only those of installs that may be under way, %q", keys, kept)
	}
}
