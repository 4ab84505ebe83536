//go:build linux

package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/commithook"
	"github.com/surgehq/surge/sqlite"
)

// walFrame is the size of one WAL frame of a 4 KiB page.
const walFrame = 24 + 4096

// attempt is one answer a buyer got for a purchase under its key.
type attempt struct {
	id     string // the order answered, "" if none
	err    error
	code   surge.Code
	replay bool
}

// buy is one purchase key and every answer it got, and the cancels of
// its order.
type buy struct {
	sale, user, key string
	answers         []attempt
	cancelled       bool // a cancel was answered nil
	cancelErrs      []error
}

// TestFailedCommitsKeepPromises: purchases and cancels of several sales,
// through the engine (its batches), commit in groups while commits fail: the driver refuses a COMMIT after
// the group's rows went into the transaction (commit hook), and the disk
// refuses the WAL's growth part-way through a group (RLIMIT_FSIZE at about
// the WAL's size, as a filling disk does), after which the writer retries
// each caller's share alone. Buyers retry a failed purchase with the same
// key. Every answer must be the disk's: an order answered is there once,
// under its key, whatever the retries; a key answered only with errors
// left nothing; a cancel answered is on disk, one that failed is not;
// memory's stock is the disk's and no buyer holds more than the limit.
// A crash copy of the directory taken then opens the same, every
// confirmed key replaying its order.
func TestFailedCommitsKeepPromises(t *testing.T) {
	const (
		sales   = 4
		stock   = 60
		limit   = 2
		users   = 40
		workers = 16
		each    = 40 // purchase keys per worker
	)
	commithook.Install()
	dir := t.TempDir()
	// The failures are the test's: their log lines are not news.
	quiet := slog.New(slog.DiscardHandler)
	// No checkpoint: surge.db stays as it is, so a copy of it and then of
	// the WAL, taken while the store commits, is what a crash leaves.
	opts := sqlite.WithTimings(sqlite.Options{NoExpiry: true, Logger: quiet}, time.Hour, time.Hour)
	s, err := sqlite.Open(t.Context(), dir, sqlite.WithRestartFrames(opts, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for i := range sales {
		if err := s.CreateSale(ctx, newSale(t, fmt.Sprintf("s%d", i), stock, limit)); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.Open(ctx, s, engine.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	wal := filepath.Join(dir, sqlite.FileName+"-wal")

	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	lift := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
			t.Error(err)
		}
		commithook.RefuseNext(false)
	}
	defer lift()

	buys := make([][]*buy, workers)
	stop := make(chan struct{})
	// pause holds the injector, between two windows of a full disk, until
	// the channel it is sent is closed: the test's own copy must write.
	pause := make(chan chan struct{})
	var injected sync.WaitGroup
	var refused, limited int
	injected.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			case resume := <-pause:
				<-resume
				continue
			case <-time.After(time.Duration(1+rng.IntN(3)) * time.Millisecond):
			}
			if rng.IntN(3) > 0 {
				commithook.RefuseNext(true)
				refused++
				continue
			}
			fi, err := os.Stat(wal)
			if err != nil {
				t.Error(err)
				return
			}
			// Room for none, or part, of the next commit's frames.
			room := uint64(fi.Size()) + uint64(rng.IntN(4*walFrame))
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: room, Max: was.Max}); err != nil {
				t.Error(err)
				return
			}
			limited++
			time.Sleep(time.Duration(1+rng.IntN(3)) * time.Millisecond)
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
				t.Error(err)
				return
			}
		}
	})

	// confirmed is every key answered a reservation so far, and its order.
	var mu sync.Mutex
	confirmed := map[string]string{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range each {
				b := &buy{sale: fmt.Sprintf("s%d", rng.IntN(sales)), user: fmt.Sprintf("u%d", rng.IntN(users)), key: fmt.Sprintf("k%d-%d", w, i)}
				buys[w] = append(buys[w], b)
				p := surge.Purchase{UserID: b.user, Quantity: 1, IdempotencyKey: b.key}
				// A buyer answered with an error retries with the same
				// key; one answered a reservation asks once more, for
				// the replay.
				for range 6 {
					out, err := e.Purchase(ctx, engine.PurchaseRequest{SaleID: b.sale, Purchase: p})
					a := attempt{err: err}
					if err == nil {
						a.code, a.replay, a.id = out.Code, out.Replay, out.Order.ID
					}
					b.answers = append(b.answers, a)
					if err == nil && a.code == surge.CodeReserved {
						mu.Lock()
						confirmed[b.key] = a.id
						mu.Unlock()
					}
					if err == nil && (a.replay || a.code != surge.CodeReserved) {
						break
					}
				}
				id := b.confirmed()
				if id == "" || rng.IntN(4) > 0 {
					continue
				}
				for try := 0; try < 3 && !b.cancelled; try++ {
					if _, err := e.Cancel(ctx, id); err != nil {
						b.cancelErrs = append(b.cancelErrs, err)
						continue
					}
					b.cancelled = true
				}
			}
		})
	}
	// A crash while the store commits: the files as they are, the mark
	// first (it must not be newer than the database copied after it).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(confirmed)
		mu.Unlock()
		if n >= sales*stock/4 || time.Now().After(deadline) {
			break
		}
	}
	resume := make(chan struct{})
	pause <- resume
	mu.Lock()
	before := maps.Clone(confirmed)
	mu.Unlock()
	midway := copyFiles(t, dir, sqlite.MarkName, sqlite.FileName, sqlite.FileName+"-wal")
	close(resume)

	wg.Wait()
	close(stop)
	injected.Wait()
	lift()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	var all []*buy
	failures := 0
	for _, bs := range buys {
		for _, b := range bs {
			all = append(all, b)
			for _, a := range b.answers {
				if a.err != nil {
					failures++
				}
			}
			failures += len(b.cancelErrs)
		}
	}
	t.Logf("%d refused commits and %d windows of a full disk injected; %d calls failed", refused, limited, failures)
	if failures == 0 {
		t.Fatal("no call failed: the test injected nothing")
	}
	checkAgainstDisk(t, s, filepath.Join(dir, sqlite.FileName), all, true, sales, stock, limit)

	// A crash now: the files as they are, the store still open.
	crash := copyFiles(t, dir, sqlite.FileName, sqlite.FileName+"-wal", sqlite.MarkName)
	c, err := sqlite.Open(ctx, crash, sqlite.Options{NoExpiry: true, Logger: quiet})
	if err != nil {
		t.Fatalf("open the crash copy: %v", err)
	}
	defer c.Close()
	checkAgainstDisk(t, c, filepath.Join(crash, sqlite.FileName), all, false, sales, stock, limit)
	// Every key again, on the copy: a confirmed one replays its order.
	for _, b := range all {
		out, _, err := c.Reserve(ctx, b.sale, []surge.Purchase{{UserID: b.user, Quantity: 1, IdempotencyKey: b.key}}, surge.At(time.Now()))
		if err != nil {
			t.Fatalf("key %s after the crash: %v", b.key, err)
		}
		if id := b.confirmed(); id != "" && (!out[0].Replay || out[0].Order.ID != id) {
			t.Errorf("key %s, confirmed as order %s, answered %+v after the crash", b.key, id, out[0])
		}
	}
	checkKeysOnce(t, filepath.Join(crash, sqlite.FileName))

	// The crash while it committed lost no order confirmed before it.
	m, err := sqlite.Open(ctx, midway, sqlite.Options{NoExpiry: true, Logger: quiet})
	if err != nil {
		t.Fatalf("open the copy taken while the store committed: %v", err)
	}
	defer m.Close()
	checkAgainstDisk(t, m, filepath.Join(midway, sqlite.FileName), nil, false, sales, stock, limit)
	for _, b := range all {
		id, ok := before[b.key]
		if !ok {
			continue
		}
		out, _, err := m.Reserve(ctx, b.sale, []surge.Purchase{{UserID: b.user, Quantity: 1, IdempotencyKey: b.key}}, surge.At(time.Now()))
		if err != nil {
			t.Fatalf("key %s after the crash while committing: %v", b.key, err)
		}
		if !out[0].Replay || out[0].Order.ID != id {
			t.Errorf("key %s, confirmed as order %s before the crash while committing, answered %+v after it", b.key, id, out[0])
		}
	}
	t.Logf("%d keys confirmed before the crash while committing", len(before))
}

// confirmed is the order b's purchase was answered with, "" if none.
func (b *buy) confirmed() string {
	for _, a := range b.answers {
		if a.err == nil && a.code == surge.CodeReserved {
			return a.id
		}
	}
	return ""
}

// readOnly opens the database at path for the checks.
func readOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkKeysOnce fails if any key has more than one order on disk.
func checkKeysOnce(t *testing.T, path string) {
	t.Helper()
	rows, err := readOnly(t, path).QueryContext(t.Context(), `SELECT sale_id, user_id, idempotency_key, count(*) FROM orders
		WHERE idempotency_key IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var sale, user, key string
		var n int
		if err := rows.Scan(&sale, &user, &key, &n); err != nil {
			t.Fatal(err)
		}
		t.Errorf("key %s of %s in sale %s bought %d orders", key, user, sale, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// checkAgainstDisk compares every answer of buys, and s's memory, with the
// database at path. inProcess: the store that answered still runs, so a
// purchase or cancel answered with an error must have left nothing (after
// a crash, a commit whose COMMIT failed may have reached the disk whole).
func checkAgainstDisk(t *testing.T, s *sqlite.Store, path string, buys []*buy, inProcess bool, sales, stock, limit int64) {
	t.Helper()
	ctx := t.Context()
	db := readOnly(t, path)
	checkKeysOnce(t, path)
	for _, b := range buys {
		var id, status string
		err := db.QueryRowContext(ctx, `SELECT id, status FROM orders WHERE sale_id = ? AND user_id = ? AND idempotency_key = ?`,
			b.sale, b.user, b.key).Scan(&id, &status)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		confirmed := b.confirmed()
		for _, a := range b.answers {
			if a.err == nil && a.code == surge.CodeReserved && a.id != confirmed {
				t.Errorf("key %s answered two orders: %s and %s", b.key, confirmed, a.id)
			}
		}
		switch {
		case confirmed != "" && id != confirmed:
			t.Errorf("key %s answered order %s; the disk holds %q", b.key, confirmed, id)
		case confirmed == "" && id != "" && inProcess:
			t.Errorf("key %s answered only %+v; the disk holds its order %s (%s)", b.key, b.answers, id, status)
		case b.cancelled && status != string(surge.OrderCancelled):
			t.Errorf("order %s of key %s answered cancelled; the disk says %s", id, b.key, status)
		case !b.cancelled && len(b.cancelErrs) > 0 && inProcess && status != string(surge.OrderReserved):
			t.Errorf("order %s of key %s: cancel answered %v; the disk says %s", id, b.key, b.cancelErrs, status)
		}
	}
	for i := range sales {
		sale := fmt.Sprintf("s%d", i)
		var held int64
		if err := db.QueryRowContext(ctx, `SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = ? AND status IN ('reserved', 'paid')`,
			sale).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held > stock {
			t.Errorf("sale %s: %d units held on disk, stock %d", sale, held, stock)
		}
		rem, err := s.Remaining(ctx, sale)
		if err != nil {
			t.Fatal(err)
		}
		if rem != stock-held {
			t.Errorf("sale %s: memory says %d left, the disk %d", sale, rem, stock-held)
		}
		var over int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT user_id FROM orders WHERE sale_id = ? AND status IN ('reserved', 'paid')
			GROUP BY user_id HAVING sum(quantity) > ?)`, sale, limit).Scan(&over); err != nil {
			t.Fatal(err)
		}
		if over > 0 {
			t.Errorf("sale %s: %d buyers hold more than the limit %d", sale, over, limit)
		}
	}
}
