package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestUpdateSaleGivesUpWhileWriterStalls: a PATCH of a sale while the
// writer's commit in progress stalls (a disk that stops answering) waited
// for as long as the stall lasted, though its request had ended: for the
// writer's one connection when another sale's purchase was committing,
// for the sale's lock when one of its own was. A request that ended
// before the UPDATE began has written nothing and must be answered, and
// the sale must be as it was.
func TestUpdateSaleGivesUpWhileWriterStalls(t *testing.T) {
	commithook.Install()
	for _, tc := range []struct {
		name   string
		buying string // the sale whose purchase's commit stalls
	}{
		{"another sale's commit", "b"},
		{"the same sale's commit", "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s, end := endingSales(t, "a", "b")
			now := end.Add(-time.Minute)

			release, reserved := stallWhile(t, func() error {
				_, _, err := s.Reserve(ctx, tc.buying, []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(now))
				return err
			})

			// The request's deadline passes while the PATCH waits.
			reqCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			answered := make(chan error, 1)
			go func() {
				_, err := s.UpdateSale(reqCtx, "a", surge.SalePatch{Paused: new(true)}, surge.At(now))
				answered <- err
			}()
			first := answeredWhileStalled(t, answered, 15*time.Second, release,
				"UpdateSale whose request ended while the writer was stalled")
			if first == nil {
				t.Fatal("UpdateSale answered done while the writer was stalled before its UPDATE began")
			}
			release()
			if err := <-reserved; err != nil {
				t.Fatal(err)
			}
			// Nothing changed, in memory or on disk.
			if sl, err := s.Sale(ctx, "a"); err != nil || sl.Paused {
				t.Fatalf("after the PATCH answered %v: sale a in memory paused=%v (err %v), want as it was", first, sl.Paused, err)
			}
			onDisk, err := s.scanSales(ctx, s.r, `WHERE id = 'a'`)
			if err != nil || len(onDisk) != 1 || onDisk[0].Paused {
				t.Fatalf("after the PATCH answered %v: sale a on disk %+v (err %v), want not paused", first, onDisk, err)
			}
			// The client's retry applies it.
			if sl, err := s.UpdateSale(ctx, "a", surge.SalePatch{Paused: new(true)}, surge.At(now)); err != nil || !sl.Paused {
				t.Fatalf("the PATCH again: paused=%v, %v", sl.Paused, err)
			}
		})
	}
}
