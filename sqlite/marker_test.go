package sqlite

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestMarkerCatchesUp: the marker writes at most once per markEvery, and
// the kicks of commits made meanwhile must not be lost: without Close or
// FlushMark, the mark on disk reaches the progress of the last commit of a
// burst soon after it.
func TestMarkerCatchesUp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, name, stock := "s", "S", int64(1000)
	now := time.Now()
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	// A burst of commits far faster than markEvery, the last one alone.
	for i := range 20 {
		p := surge.Purchase{UserID: "u" + strconv.Itoa(i), Quantity: 1}
		if _, _, err := s.Reserve(ctx, "s", []surge.Purchase{p}, surge.At(now)); err != nil {
			t.Fatal(err)
		}
	}
	want := s.g.progress.Load()
	if want != 21 {
		t.Fatalf("progress %d, want 21 (a sale and 20 orders)", want)
	}
	deadline := time.Now().Add(30 * time.Second) // generous: the machine is loaded
	for {
		m, got, err := openMark(dir)
		if err != nil {
			t.Fatal(err)
		}
		m.close()
		if got > want {
			t.Fatalf("mark %d above the progress %d", got, want)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mark %d, still below the progress %d after 30 s", got, want)
		}
		time.Sleep(10 * time.Millisecond) // polling the file, not synchronising
	}
}
