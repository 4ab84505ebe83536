package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestRestoreInRanges: sales large enough that a start reads them in
// several ranges on two connections, their orders interleaved on disk,
// come back whole after a clean stop and after a crash: the same stock
// left, every key answering its own order, every live buyer at the limit.
func TestRestoreInRanges(t *testing.T) {
	const perSale = 9000 // over two ranges of 4,096
	dir := t.TempDir()
	ctx := t.Context()
	s := open(t, dir)
	sales := []string{"a", "b"}
	type bought struct{ user, key, id string }
	orders := map[string][]bought{}
	for _, id := range sales {
		if err := s.CreateSale(ctx, newSale(t, id, 3*perSale, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < perSale; i += 500 {
		for _, id := range sales { // alternate, so the two sales' seqs interleave
			var batch []surge.Purchase
			for j := i; j < i+500; j++ {
				p := surge.Purchase{UserID: fmt.Sprintf("u%d", j), Quantity: 1}
				if j%3 != 0 {
					p.IdempotencyKey = fmt.Sprintf("k-%s-%d", id, j)
				}
				batch = append(batch, p)
			}
			outs, _, err := s.Reserve(ctx, id, batch, surge.At(t0))
			if err != nil {
				t.Fatal(err)
			}
			for j, out := range outs {
				if out.Code != surge.CodeReserved {
					t.Fatalf("sale %s, purchase %d: %s", id, i+j, out.Code)
				}
				orders[id] = append(orders[id], bought{batch[j].UserID, batch[j].IdempotencyKey, out.Order.ID})
			}
		}
	}
	for _, id := range sales { // some leave reserved, on both sides of a range's edge
		for j := 4000; j < 4200; j += 10 {
			if _, err := s.Cancel(ctx, orders[id][j].id, t0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Pay(ctx, orders[id][j+1].id, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	remaining := map[string]int64{}
	for _, id := range sales {
		remaining[id], _ = s.Remaining(ctx, id)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, crash := range []bool{false, true} {
		if crash {
			if err := os.Remove(filepath.Join(dir, sqlite.SealName)); err != nil {
				t.Fatal(err)
			}
		}
		s := open(t, dir)
		for _, id := range sales {
			if got, err := s.Remaining(ctx, id); err != nil || got != remaining[id] {
				t.Fatalf("crash %v: remaining of %s = %d, %v; want %d", crash, id, got, err, remaining[id])
			}
			// Every key replays its order; every other buyer still holds
			// a unit (none of theirs was cancelled), so is at the limit.
			var batch []surge.Purchase
			var want []bought
			for j, b := range orders[id] {
				if b.key == "" && j >= 4000 && j < 4200 && j%10 == 0 {
					continue // cancelled: may buy again
				}
				batch = append(batch, surge.Purchase{UserID: b.user, IdempotencyKey: b.key, Quantity: 1})
				want = append(want, b)
			}
			outs, _, err := s.Reserve(ctx, id, batch, surge.At(t0))
			if err != nil {
				t.Fatal(err)
			}
			for j, out := range outs {
				b := want[j]
				switch {
				case b.key != "" && (!out.Replay || out.Order.ID != b.id):
					t.Fatalf("crash %v: key %s of sale %s answered %s %s (replay %v), want its order %s",
						crash, b.key, id, out.Code, out.Order.ID, out.Replay, b.id)
				case b.key == "" && out.Code != surge.CodeLimitReached:
					t.Fatalf("crash %v: buyer %s of sale %s holding a unit was answered %s, want limit_reached", crash, b.user, id, out.Code)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
