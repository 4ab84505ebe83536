package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/memusage"
)

// BenchmarkOpen measures the start of a store holding one live sale of a
// million orders (every purchase keyed, a quarter still reserved, the
// rest paid, one per buyer), made through the store: how long Open takes
// to load it, and the heap and resident bytes per order it holds after.
// "sealed" is a start after a clean shutdown (the seal spares the quick
// check and the progress count, seal.go), "unsealed" one after a crash
// (the seal removed before each Open); both read the ledger image the
// Close before wrote (image.go). "replay" is a start after a crash
// without an image: every order replayed. SURGE_BENCH_DIR keeps the data
// directory (made once, reused), so that bench/ledger.sh can start
// `surge serve` on the same orders.
//
//	go test -run '^$' -bench Open -benchtime 3x ./sqlite/
func BenchmarkOpen(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	dir := os.Getenv("SURGE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		fill(b, dir, n)
	}
	for _, start := range []struct {
		name          string
		sealed, image bool
	}{{"sealed", true, true}, {"unsealed", false, true}, {"replay", false, false}} {
		b.Run(start.name, func(b *testing.B) {
			_, serr := os.Stat(filepath.Join(dir, SealName))
			_, ierr := os.Stat(filepath.Join(dir, ImageName))
			if start.sealed && serr != nil || start.image && ierr != nil {
				// Closed by a crash or an older build: a first start
				// seals it and writes its image (b.Loop starts the
				// clock after this).
				s, err := Open(ctx, dir, Options{NoExpiry: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if !start.sealed {
					if err := os.Remove(filepath.Join(dir, SealName)); err != nil && !os.IsNotExist(err) {
						b.Fatal(err)
					}
				}
				if !start.image {
					if err := os.Remove(filepath.Join(dir, ImageName)); err != nil && !os.IsNotExist(err) {
						b.Fatal(err)
					}
				}
				before := memusage.Measure()
				began := time.Now()
				s, err := Open(ctx, dir, Options{NoExpiry: true})
				if err != nil {
					b.Fatal(err)
				}
				open := time.Since(began)
				after := memusage.Measure()
				if s.checked == start.sealed {
					b.Fatalf("full checks ran: %v, sealed: %v", s.checked, start.sealed)
				}
				if imaged := s.imaged > 0; imaged != start.image {
					b.Fatalf("from the image: %v, want %v", imaged, start.image)
				}
				b.ReportMetric(float64(open.Milliseconds()), "open-ms")
				b.ReportMetric(float64(after.Heap-before.Heap)/n, "heap-B/order")
				b.ReportMetric(float64(after.RSS-before.RSS)/n, "rss-B/order")
				if rem, _ := s.Remaining(ctx, "bench"); rem != 2*n-n {
					b.Fatalf("remaining %d after load, want %d", rem, n)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fill makes the sale "bench" of n orders in dir through the store, then
// marks three in four paid (one statement: paying them one commit each
// would take an hour).
func fill(b *testing.B, dir string, n int) {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{NoExpiry: true})
	if err != nil {
		b.Fatal(err)
	}
	id, name := "bench", "Bench"
	stock, limit, hold := int64(2*n), int64(1), int64(surge.MaxHoldSeconds)
	now := time.Now()
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, HoldSeconds: &hold}, now)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		b.Fatal(err)
	}
	batch := make([]surge.Purchase, 0, 4096)
	for i := 0; i < n; {
		batch = batch[:0]
		for ; i < n && len(batch) < cap(batch); i++ {
			batch = append(batch, surge.Purchase{UserID: fmt.Sprintf("buyer-%07d", i),
				IdempotencyKey: fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), Quantity: 1})
		}
		if _, _, err := s.Reserve(ctx, id, batch, surge.At(now)); err != nil {
			b.Fatal(err)
		}
	}
	// Numbered as the writer numbers settles (image.go).
	if _, err := s.w.ExecContext(ctx, `UPDATE orders SET status = 'paid', updated_at = created_at, settled = seq WHERE seq % 4 != 0`); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	// The image Close wrote holds every order reserved, as the store saw
	// them, and its seal counts none of the settles the UPDATE made behind
	// the writer's back: the next start must count them from the database
	// and replay every order, then write an image and a seal of its own.
	// (With the seal left, every later start took the seal's count, the
	// image written then missed the settles, and the unsealed start, which
	// counts them, refused that image.)
	for _, name := range []string{ImageName, SealName} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
	}
}
