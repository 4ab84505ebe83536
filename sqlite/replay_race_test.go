package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestReplayRacesExpiryAndForget: a key's replays and the buyer's new
// purchases race the sweep that expires the key's order and drops the key
// from memory (window of a minute): every replay answers the first order,
// the buyer never holds more than the limit, and the stock adds up.
func TestReplayRacesExpiryAndForget(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true, IdempotencyTTL: time.Minute, ImageMin: 1})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if err := s.CreateSale(ctx, newSale(t, "s", 3, 2)); err != nil {
			t.Fatal(err)
		}
		out, _, err := s.Reserve(ctx, "s", []surge.Purchase{{UserID: "u", IdempotencyKey: "k", Quantity: 2}}, surge.At(t0))
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatal(out, err)
		}
		first := out[0].Order
		later := t0.Add(48 * time.Hour)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var bad []string
		newOrders := map[string]int64{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Expire(ctx, later); err != nil {
				t.Error(err)
			}
		}()
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 30 {
					p := surge.Purchase{UserID: "u", IdempotencyKey: "k", Quantity: 2}
					if i%3 == 1 {
						p = surge.Purchase{UserID: "u", IdempotencyKey: fmt.Sprintf("n%d-%d", g, i), Quantity: 1}
					}
					if o, ks := s.LookupKey("s", "u", "k"); ks == surge.KeyDone && o != first {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("LookupKey %+v", o))
						mu.Unlock()
					}
					outs, _, err := s.Reserve(ctx, "s", []surge.Purchase{p}, surge.At(later))
					if err != nil {
						t.Error(err)
						return
					}
					o := outs[0]
					mu.Lock()
					if p.IdempotencyKey == "k" && (!o.Replay || o.Order != first) {
						bad = append(bad, fmt.Sprintf("replay %+v", o))
					}
					if p.IdempotencyKey != "k" && o.Code == surge.CodeReserved && !o.Replay {
						newOrders[o.Order.ID] = o.Order.Quantity
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		var sum int64
		for _, q := range newOrders {
			sum += q
		}
		if len(bad) > 0 || sum > 2 {
			t.Fatalf("round %d: %d bad answers (%v), new units for u %d (limit 2)", round, len(bad), bad[:min(len(bad), 3)], sum)
		}
		rem, _ := s.Remaining(ctx, "s")
		if rem != 3-sum {
			t.Fatalf("round %d: remaining %d, want %d", round, rem, 3-sum)
		}
		s.Close()
		// Restart, with the image Close wrote and without it: the key still replays.
		for k := range 2 {
			o := sqlite.Options{NoExpiry: true, IdempotencyTTL: time.Minute, ImageMin: 1, Now: func() time.Time { return later.Add(time.Hour) }}
			if k == 1 {
				if err := os.Remove(filepath.Join(dir, sqlite.ImageName)); err != nil {
					t.Fatal(err)
				}
			}
			s2, err := sqlite.Open(ctx, dir, o)
			if err != nil {
				t.Fatal(err)
			}
			if sum > 0 && (s2.FromImage() > 0) != (k == 0) { // no record left: no image
				t.Fatalf("restart %d: from image %d", k, s2.FromImage())
			}
			outs, _, err := s2.Reserve(ctx, "s", []surge.Purchase{{UserID: "u", IdempotencyKey: "k", Quantity: 2}}, surge.At(later.Add(time.Hour)))
			if err != nil || !outs[0].Replay || outs[0].Order != first {
				t.Fatalf("after restart: %+v %v", outs, err)
			}
			outs, _, _ = s2.Reserve(ctx, "s", []surge.Purchase{{UserID: "u", IdempotencyKey: "k", Quantity: 1}}, surge.At(later.Add(time.Hour)))
			if outs[0].Code != surge.CodeIdempotencyMismatch {
				t.Fatalf("after restart, other quantity: %+v", outs)
			}
			if r, _ := s2.Remaining(ctx, "s"); r != 3-sum {
				t.Fatalf("after restart remaining %d want %d", r, 3-sum)
			}
			s2.Close()
		}
	}
}
