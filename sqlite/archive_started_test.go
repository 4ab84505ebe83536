package sqlite

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestArchiveRefusesASaleThatStartedMeanwhile: an archive's now is read
// before it waits for the sale's lock (behind a stalled commit, as long as
// the disk stalls), so a sale yet to start at that now may have started
// and sold by the time the archive holds the lock. It was archived all
// the same, a live sale with a paid order (no reserved one left for the
// count to find) taken out of service; it is refused as not_archivable.
func TestArchiveRefusesASaleThatStartedMeanwhile(t *testing.T) {
	ctx := t.Context()
	s, end := endingSales(t, "a")
	start := end.Add(-time.Hour) // endingSales' sales start an hour before their end
	outs, _, err := s.Reserve(ctx, "a", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(start.Add(time.Millisecond)))
	if err != nil || outs[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %+v, %v", outs, err)
	}
	if _, err := s.Pay(ctx, outs[0].Order.ID, start.Add(2*time.Millisecond)); err != nil {
		t.Fatalf("pay: %v", err)
	}
	a, err := s.ArchiveSale(ctx, "a", start.Add(-time.Millisecond))
	if !surge.HasCode(err, surge.CodeNotArchivable) {
		t.Fatalf("archive at a now before the start of a sale that since sold: %+v, %v; want not_archivable", a, err)
	}
	if _, _, err := s.Reserve(ctx, "a", []surge.Purchase{{UserID: "v", Quantity: 1}}, surge.At(start.Add(time.Second))); err != nil {
		t.Fatalf("the sale left service: %v", err)
	}
}
