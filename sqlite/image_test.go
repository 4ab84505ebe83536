package sqlite_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/storetest"
)

// imaged are the options of a store that writes a ledger image however
// few its orders, on a clock an hour after t0 (every key in the window).
var imaged = sqlite.Options{NoExpiry: true, ImageMin: 1, Now: func() time.Time { return t0.Add(time.Hour) }}

// TestContractWithImage runs the store contract with every reopen
// starting from the ledger image the close before wrote.
func TestContractWithImage(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) func(t *testing.T) surge.Store {
			dir := t.TempDir()
			return func(t *testing.T) surge.Store {
				s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true, ImageMin: 1})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		},
	})
}

func openWith(t *testing.T, dir string, o sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// workload is what a test did to a sale: every purchase it made.
type workload struct {
	sale      string
	purchases []surge.Purchase
	reserved  []string // ids of the orders still reserved
}

// churn makes n rounds of random changes to w's sale on s: keyed and
// unkeyed purchases, some replayed, and payments, cancellations and
// expiries of reserved orders.
func (w *workload) churn(t *testing.T, s *sqlite.Store, rng *rand.Rand, n int, now time.Time) {
	t.Helper()
	ctx := t.Context()
	// Holds that ended a while ago end: expiry settles orders too.
	expired, err := s.Expire(ctx, now.Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	w.reserved = slices.DeleteFunc(w.reserved, func(id string) bool {
		return slices.ContainsFunc(expired, func(o surge.Order) bool { return o.ID == id })
	})
	for range n {
		var batch []surge.Purchase
		for range 1 + rng.IntN(8) {
			if len(w.purchases) > 0 && rng.IntN(6) == 0 {
				batch = append(batch, w.purchases[rng.IntN(len(w.purchases))]) // a retry
				continue
			}
			p := surge.Purchase{UserID: fmt.Sprintf("u%d", rng.IntN(60)), Quantity: 1 + rng.Int64N(2)}
			if rng.IntN(3) > 0 {
				p.IdempotencyKey = fmt.Sprintf("k%d", len(w.purchases))
			}
			batch = append(batch, p)
		}
		outs, _, err := s.Reserve(ctx, w.sale, batch, surge.At(now))
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			if o.Code == surge.CodeReserved && !o.Replay {
				w.purchases = append(w.purchases, batch[i])
				w.reserved = append(w.reserved, o.Order.ID)
			}
		}
		if len(w.reserved) == 0 {
			continue
		}
		k := rng.IntN(len(w.reserved))
		id := w.reserved[k]
		switch rng.IntN(3) {
		case 0:
			_, err = s.Pay(ctx, id, now)
		case 1:
			_, err = s.Cancel(ctx, id, now)
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		w.reserved[k] = w.reserved[len(w.reserved)-1]
		w.reserved = w.reserved[:len(w.reserved)-1]
	}
}

// same checks that a and b hold the same live state of w's sale: the
// stock left, every key's answer, every buyer's room under the limit
// and the holds still to end. It changes both stores.
func (w *workload) same(t *testing.T, a, b *sqlite.Store) {
	t.Helper()
	ctx := t.Context()
	ra, _ := a.Remaining(ctx, w.sale)
	rb, _ := b.Remaining(ctx, w.sale)
	if ra != rb {
		t.Fatalf("remaining %d, want %d", ra, rb)
	}
	for _, p := range w.purchases {
		if p.IdempotencyKey == "" {
			continue
		}
		oa, ka := a.LookupKey(w.sale, p.UserID, p.IdempotencyKey)
		ob, kb := b.LookupKey(w.sale, p.UserID, p.IdempotencyKey)
		if (ka == surge.KeyDone || kb == surge.KeyDone) && (ka != kb || oa != ob) {
			t.Fatalf("key %s of %s: %v %+v, want %v %+v", p.IdempotencyKey, p.UserID, ka, oa, kb, ob)
		}
	}
	end := t0.Add(24 * time.Hour)
	ea, err := a.Expire(ctx, end)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.Expire(ctx, end)
	if err != nil {
		t.Fatal(err)
	}
	// Holds that end at the same time end in either order.
	byID := func(a, b surge.Order) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(ea, byID)
	slices.SortFunc(eb, byID)
	if !slices.Equal(ea, eb) {
		t.Fatalf("holds left to end: %d, want %d (or not the same)", len(ea), len(eb))
	}
	for u := range 60 {
		p := []surge.Purchase{{UserID: fmt.Sprintf("u%d", u), Quantity: 2}}
		oa, _, err := a.Reserve(ctx, w.sale, p, surge.At(end))
		if err != nil {
			t.Fatal(err)
		}
		ob, _, err := b.Reserve(ctx, w.sale, p, surge.At(end))
		if err != nil {
			t.Fatal(err)
		}
		if oa[0].Code != ob[0].Code {
			t.Fatalf("buyer u%d buying 2: %s, want %s", u, oa[0].Code, ob[0].Code)
		}
	}
}

var imageFiles = []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.MarkName, sqlite.SealName, sqlite.ImageName}

// selling opens a store on a new directory with o, makes a sale of stock
// units there, at most 4 a buyer, and rounds of random changes to it
// (churn, at t0 plus a minute, on a generator seeded with seed).
func selling(t *testing.T, o sqlite.Options, seed uint64, stock int64, rounds int) (string, *sqlite.Store, *workload, *rand.Rand) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	w := &workload{sale: "s"}
	s := openWith(t, dir, o)
	if err := s.CreateSale(t.Context(), newSale(t, "s", stock, 4)); err != nil {
		t.Fatal(err)
	}
	w.churn(t, s, rng, rounds, t0.Add(time.Minute))
	return dir, s, w, rng
}

// startTwice starts two stores on copies of dir's files as they are now:
// got with the ledger image, want without it (every order replayed).
func startTwice(t *testing.T, dir string, o sqlite.Options) (got, want *sqlite.Store) {
	t.Helper()
	return openWith(t, copyFiles(t, dir, imageFiles...), o), openWith(t, copyFiles(t, dir, imageFiles[:4]...), o)
}

// TestImageStart: a start takes the sale from the image Close wrote, and
// replays what came after it, after a clean stop and after a crash: the
// state is the one a replay of every order gives.
func TestImageStart(t *testing.T) {
	dir, s, w, rng := selling(t, imaged, 1, 500, 150)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.ImageName)); err != nil {
		t.Fatalf("Close wrote no image: %v", err)
	}

	t.Run("clean stop", func(t *testing.T) {
		got, want := startTwice(t, dir, imaged)
		if got.FromImage() != 1 || want.FromImage() != 0 {
			t.Fatalf("sales from the image: %d and %d, want 1 and 0", got.FromImage(), want.FromImage())
		}
		w.same(t, got, want)
	})
	t.Run("a day later", func(t *testing.T) {
		// The image holds keys the window has left since: dropped.
		later := imaged
		later.Now = func() time.Time { return t0.Add(30 * time.Hour) }
		got, want := startTwice(t, dir, later)
		if got.FromImage() != 1 {
			t.Fatal("the start did not take the image")
		}
		w.same(t, got, want)
	})
	t.Run("crash after more changes", func(t *testing.T) {
		run := copyFiles(t, dir, imageFiles...)
		s := openWith(t, run, imaged)
		if s.FromImage() != 1 {
			t.Fatal("the start did not take the image")
		}
		w := &workload{sale: w.sale, purchases: append([]surge.Purchase(nil), w.purchases...), reserved: append([]string(nil), w.reserved...)}
		w.churn(t, s, rng, 100, t0.Add(40*time.Minute))
		if err := s.FlushMark(); err != nil {
			t.Fatal(err)
		}
		got, want := startTwice(t, run, imaged)
		if !got.FullyChecked() {
			t.Fatal("a crashed store's start skipped the checks")
		}
		if got.FromImage() != 1 || want.FromImage() != 0 {
			t.Fatalf("sales from the image: %d and %d, want 1 and 0", got.FromImage(), want.FromImage())
		}
		w.same(t, got, want)
	})
}

// TestImageNotTrusted: an image that does not belong to the database, is
// damaged, or misses a settle made behind the store's back is not used,
// and the start replays every order. An order inserted behind its back
// comes after the image, so it is replayed with the image.
func TestImageNotTrusted(t *testing.T) {
	ctx := t.Context()
	dir, s, w, rng := selling(t, imaged, 3, 500, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Another store's image, with the same sale.
	other := t.TempDir()
	o := openWith(t, other, imaged)
	if err := o.CreateSale(ctx, newSale(t, "s", 500, 4)); err != nil {
		t.Fatal(err)
	}
	(&workload{sale: "s"}).churn(t, o, rng, 3, t0)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		used   int
	}{
		{"another store's image", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(other, sqlite.ImageName))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, sqlite.ImageName), b, 0o640); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"a byte of the image changed", func(t *testing.T, dir string) {
			name := filepath.Join(dir, sqlite.ImageName)
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			if err := os.WriteFile(name, b, 0o640); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"an order cancelled by hand", func(t *testing.T, dir string) {
			execIgnoringChecks(t, filepath.Join(dir, sqlite.FileName),
				`UPDATE orders SET status = 'cancelled', updated_at = created_at WHERE seq = (SELECT min(seq) FROM orders WHERE status = 'reserved')`)
		}, 0},
		{"an order inserted by hand", func(t *testing.T, dir string) {
			execIgnoringChecks(t, filepath.Join(dir, sqlite.FileName),
				`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
				 SELECT 'o_byhand', sale_id, 'hand', 1, 'reserved', created_at, expires_at FROM orders LIMIT 1`)
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := copyFiles(t, dir, imageFiles...)
			tc.change(t, run)
			got, want := startTwice(t, run, imaged)
			if got.FromImage() != tc.used {
				t.Fatalf("sales from the image: %d, want %d", got.FromImage(), tc.used)
			}
			w.same(t, got, want)
		})
	}
}

// TestImageRefresh: an image written while the store serves, from a
// snapshot, while purchases, payments and cancellations go on beside it,
// serves the start after a crash: the state is the one a replay of every
// order gives.
func TestImageRefresh(t *testing.T) {
	ctx := t.Context()
	dir, s, w, rng := selling(t, imaged, 5, 800, 100)
	done := make(chan error, 1)
	go func() {
		_, err := s.RefreshImage(ctx)
		done <- err
	}()
	w.churn(t, s, rng, 100, t0.Add(40*time.Minute))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.churn(t, s, rng, 20, t0.Add(80*time.Minute))
	if err := s.FlushMark(); err != nil {
		t.Fatal(err)
	}
	got, want := startTwice(t, dir, imaged)
	if !got.FullyChecked() || got.FromImage() != 1 || want.FromImage() != 0 {
		t.Fatalf("checked %v, sales from the image: %d and %d, want true, 1 and 0", got.FullyChecked(), got.FromImage(), want.FromImage())
	}
	w.same(t, got, want)
}

// TestImageRefreshWhenIdle: the store writes an image by itself once it
// has been idle after enough changes.
func TestImageRefreshWhenIdle(t *testing.T) {
	dir, s, w, _ := selling(t, sqlite.WithTimings(imaged, 20*time.Millisecond, 200*time.Millisecond), 7, 500, 50)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s.ImageProgress() == s.Progress() {
			break // the image on disk, token included, is the store as it stands
		}
		if time.Now().After(deadline) {
			t.Fatal("no image 10 s after the store went idle")
		}
	}
	if err := s.FlushMark(); err != nil {
		t.Fatal(err)
	}
	got, want := startTwice(t, dir, imaged)
	if got.FromImage() != 1 {
		t.Fatal("the start did not take the image the store wrote")
	}
	w.same(t, got, want)
}

// TestImageRefreshGivesWay: a refresh gives up as soon as the store
// changes (a spike must not share the CPU with it), and one that finds
// the store unchanged writes the image.
func TestImageRefreshGivesWay(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openWith(t, dir, imaged)
	if err := s.CreateSale(ctx, newSale(t, "s", 50_000, 1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20_000; i += 1000 { // a replay of tens of milliseconds
		var batch []surge.Purchase
		for j := i; j < i+1000; j++ {
			batch = append(batch, surge.Purchase{UserID: fmt.Sprintf("u%d", j), Quantity: 1})
		}
		if _, _, err := s.Reserve(ctx, "s", batch, surge.At(t0)); err != nil {
			t.Fatal(err)
		}
	}
	// The progress the imager saw is not the store's any more.
	if err := s.RefreshWhileIdle(ctx, s.Progress()-1); !errors.Is(err, sqlite.ErrBusy) {
		t.Fatalf("a refresh while the store changed: %v, want ErrBusy", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.ImageName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refresh given up left an image: %v", err)
	}
	if err := s.RefreshWhileIdle(ctx, s.Progress()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.ImageName)); err != nil {
		t.Fatalf("no image after a refresh: %v", err)
	}
}

// TestImageKeptWhenCurrent: a stop with nothing changed since the image
// it started from keeps that image (its token stays); after changes it
// writes a new one.
func TestImageKeptWhenCurrent(t *testing.T) {
	dir, s, w, rng := selling(t, imaged, 9, 500, 30)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	token := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, sqlite.ImageName))
		if err != nil {
			t.Fatal(err)
		}
		return string(b[8:24])
	}
	first := token()
	s = openWith(t, dir, imaged)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if token() != first {
		t.Error("a stop with nothing changed wrote a new image")
	}
	s = openWith(t, dir, imaged)
	if s.FromImage() != 1 {
		t.Fatal("the start did not take the image kept")
	}
	w.churn(t, s, rng, 5, t0.Add(2*time.Minute))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if token() == first {
		t.Error("a stop after changes kept the old image")
	}
}
