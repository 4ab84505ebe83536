package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/storetest"
	"github.com/surgehq/surge/version"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) func(t *testing.T) surge.Store {
			dir := t.TempDir()
			return func(t *testing.T) surge.Store { return open(t, dir) }
		},
	})
}

func newSale(t *testing.T, id string, stock, limit int64) surge.Sale {
	t.Helper()
	name := "Sale " + id
	s, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPlainSQLite checks what operators rely on: the file is in WAL mode and
// the stock sqlite tooling can read orders while the store runs.
func TestPlainSQLite(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	ctx := t.Context()
	sale := newSale(t, "s1", 10, 2)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u1", Quantity: 2, IdempotencyKey: "k"}, {UserID: "u2", Quantity: 1}}, surge.At(t0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pay(ctx, out[1].Order.ID, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	rows, err := db.QueryContext(ctx, `SELECT id, user_id, quantity, status, idempotency_key, created_at, expires_at
		FROM orders WHERE sale_id = ? ORDER BY seq`, sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type row struct {
		id, user        string
		q               int64
		status          string
		key             sql.NullString
		created, expire string
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.user, &r.q, &r.status, &r.key, &r.created, &r.expire); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []row{
		{out[0].Order.ID, "u1", 2, "reserved", sql.NullString{String: "k", Valid: true}, "2026-01-01T00:00:00.000Z", "2026-01-01T00:15:00.000Z"},
		{out[1].Order.ID, "u2", 1, "paid", sql.NullString{}, "2026-01-01T00:00:00.000Z", "2026-01-01T00:15:00.000Z"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("orders on disk:\n got %v\nwant %v", got, want)
	}
}

// TestGroupCommit checks that concurrent Reserve calls on different sales
// share transactions, the point of the single writer.
func TestGroupCommit(t *testing.T) {
	const (
		sales = 16
		calls = 8 // per sale
	)
	reg := prometheus.NewRegistry()
	s, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{NoExpiry: true, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// commits and rows written, read from the registry.
	figures := func() (commits, rows int64) {
		st, err := metrics.Stats(reg)
		if err != nil {
			t.Fatal(err)
		}
		m := st["store"].(map[string]any)
		return m["Commits"].(int64), m["Rows"].(int64)
	}
	ctx := t.Context()
	for i := range sales {
		if err := s.CreateSale(ctx, newSale(t, fmt.Sprintf("s%d", i), calls, 1)); err != nil {
			t.Fatal(err)
		}
	}
	commits0, rows0 := figures()
	if commits0 != sales {
		t.Fatalf("after %d creates: %d commits, want one each", sales, commits0)
	}
	var wg sync.WaitGroup
	for i := range sales {
		wg.Go(func() {
			for j := range calls {
				p := surge.Purchase{UserID: fmt.Sprintf("u%d", j), Quantity: 1}
				out, _, err := s.Reserve(ctx, fmt.Sprintf("s%d", i), []surge.Purchase{p}, surge.At(t0))
				if err != nil || out[0].Code != surge.CodeReserved {
					t.Errorf("Reserve: %v %+v", err, out)
				}
			}
		})
	}
	wg.Wait()
	commits1, rows1 := figures()
	n, commits, rows := int64(sales*calls), commits1-commits0, rows1-rows0
	if rows != n {
		t.Errorf("%d calls wrote %d rows, want %d", n, rows, n)
	}
	if commits >= n {
		t.Errorf("%d calls took %d commits: no group commit", n, commits)
	}
	t.Logf("%d calls in %d commits", n, commits)
}

// TestClosed checks that a closed store refuses every call with
// ErrUnavailable rather than panicking or half-working.
func TestClosed(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := t.Context()
	sale := newSale(t, "s1", 10, 1)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u1", Quantity: 1, IdempotencyKey: "k"}}, surge.At(t0))
	if err != nil {
		t.Fatal(err)
	}
	id := out[0].Order.ID
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	calls := map[string]func() error{
		"CreateSale": func() error { return s.CreateSale(ctx, newSale(t, "s2", 1, 1)) },
		// An id memory still holds: the store cannot tell, closed.
		"CreateSaleTaken": func() error { return s.CreateSale(ctx, sale) },
		"Sales":           func() error { _, err := s.Sales(ctx); return err },
		"Reserve": func() error {
			_, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u2", Quantity: 1}}, surge.At(t0))
			return err
		},
		// A batch that would reserve nothing must not answer as if the
		// store were up either.
		"ReserveRejected": func() error {
			_, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u2", Quantity: 1}}, surge.At(t0.Add(-time.Hour)))
			return err
		},
		"Cancel":    func() error { _, err := s.Cancel(ctx, id, t0); return err },
		"Pay":       func() error { _, err := s.Pay(ctx, id, t0); return err },
		"Expire":    func() error { _, err := s.Expire(ctx, t0.Add(time.Hour)); return err },
		"Order":     func() error { _, err := s.Order(ctx, id); return err },
		"Orders":    func() error { return s.Orders(ctx, sale.ID, func(surge.Order) error { return nil }) },
		"Remaining": func() error { _, err := s.Remaining(ctx, sale.ID); return err },
	}
	for name, call := range calls {
		if err := call(); !surge.HasCode(err, surge.CodeUnavailable) {
			t.Errorf("%s after Close: err = %v, want ErrUnavailable", name, err)
		}
	}
	s.LookupKey(sale.ID, "u1", "k") // answers from memory; must not panic

	// Nothing was half-applied: the data is as it was at Close.
	s = open(t, dir)
	defer s.Close()
	o, err := s.Order(ctx, id)
	if err != nil || o.Status != surge.OrderReserved {
		t.Errorf("order after reopen: %+v, %v; want it reserved", o, err)
	}
	if n, err := s.Remaining(ctx, sale.ID); err != nil || n != 9 {
		t.Errorf("Remaining after reopen = %d, %v; want 9", n, err)
	}
	if ss, err := s.Sales(ctx); err != nil || len(ss) != 1 {
		t.Errorf("Sales after reopen = %v, %v; want only %s", ss, err, sale.ID)
	}
}

// TestCloseWhileReserving races Close against writers: every call either
// commits durably or fails with ErrUnavailable, and nothing panics.
func TestCloseWhileReserving(t *testing.T) {
	const workers = 8
	dir := t.TempDir()
	s := open(t, dir)
	ctx := t.Context()
	for i := range workers {
		if err := s.CreateSale(ctx, newSale(t, fmt.Sprintf("s%d", i), 1000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted = map[string]bool{}
		started  = make(chan struct{}, workers)
	)
	for i := range workers {
		wg.Go(func() {
			for j := 0; ; j++ {
				p := surge.Purchase{UserID: fmt.Sprintf("u%d", j), Quantity: 1}
				out, _, err := s.Reserve(ctx, fmt.Sprintf("s%d", i), []surge.Purchase{p}, surge.At(t0))
				if j == 0 {
					started <- struct{}{} // Close once every worker is in flight
				}
				if surge.HasCode(err, surge.CodeUnavailable) {
					return
				}
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				mu.Lock()
				accepted[out[0].Order.ID] = true
				mu.Unlock()
			}
		})
	}
	for range workers {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()

	s = open(t, dir)
	defer s.Close()
	stored := 0
	for i := range workers {
		err := s.Orders(ctx, fmt.Sprintf("s%d", i), func(o surge.Order) error {
			stored++
			if !accepted[o.ID] {
				t.Errorf("order %s is stored but its Reserve failed", o.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if stored != len(accepted) {
		t.Errorf("%d orders stored, %d accepted", stored, len(accepted))
	}
}

// TestUpgradeAddsWaitingRoom opens a database made before waiting rooms
// existed: the column is added, the old sale reads back without one, and a
// new sale with one round-trips.
func TestUpgradeAddsWaitingRoom(t *testing.T) {
	dir := t.TempDir()
	writeOldDatabase(t, filepath.Join(dir, sqlite.FileName))

	wr := &surge.WaitingRoom{AdmitPerSecond: 50, Policy: surge.QueueLottery, TicketSeconds: 120}
	id, name, stock := "new", "New", int64(3)
	fresh, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, WaitingRoom: wr}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second open finds the column there
		s := open(t, dir)
		if round == 0 {
			if err := s.CreateSale(t.Context(), fresh); err != nil {
				t.Fatal(err)
			}
		}
		sales, err := s.Sales(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(sales) != 2 || sales[0].ID != "old" || sales[0].WaitingRoom != nil ||
			sales[1].ID != "new" || sales[1].WaitingRoom == nil || *sales[1].WaitingRoom != *wr {
			t.Fatalf("round %d: sales = %+v", round, sales)
		}
		if rem, err := s.Remaining(t.Context(), "old"); err != nil || rem != 9 {
			t.Errorf("round %d: remaining of the old sale = %d, %v; want 9", round, rem, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// writeOldDatabase makes at path a database of a version before waiting
// rooms (the sales table without the columns added since), holding sale
// "old" (10 units, 1 per buyer) and its paid order o_1.
func writeOldDatabase(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE sales (id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL CHECK (stock > 0),
			per_user_limit INTEGER NOT NULL CHECK (per_user_limit > 0), price_cents INTEGER NOT NULL, currency TEXT NOT NULL,
			starts_at TEXT NOT NULL, ends_at TEXT, hold_seconds INTEGER NOT NULL, created_at TEXT NOT NULL) STRICT`,
		`CREATE TABLE orders (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, sale_id TEXT NOT NULL, user_id TEXT NOT NULL,
			quantity INTEGER NOT NULL CHECK (quantity > 0), status TEXT NOT NULL CHECK (status IN ('reserved','paid','cancelled','expired')),
			idempotency_key TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, updated_at TEXT) STRICT`,
		`CREATE INDEX orders_by_sale ON orders (sale_id, seq)`,
		`INSERT INTO sales VALUES ('old', 'Old', 10, 1, 0, 'USD', '2026-01-01T00:00:00Z', NULL, 900, '2026-01-01T00:00:00Z')`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
			VALUES ('o_1', 'old', 'alice', 1, 'paid', '2026-01-01T00:00:01Z', '2026-01-01T00:15:01Z')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReady: a store whose writer's last commit failed (here its table is
// gone; in production a full disk) is not ready until a commit succeeds
// again, and a closed store is not ready.
func TestReady(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	ctx := t.Context()
	sale := newSale(t, "s1", 10, 10)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready of a fresh store: %v", err)
	}
	// A taken id is the caller's mistake, not the writer's.
	if err := s.CreateSale(ctx, sale); !surge.HasCode(err, surge.CodeSaleExists) {
		t.Fatalf("CreateSale again: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after a duplicate sale: %v", err)
	}
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	buy := func() error {
		_, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(t0))
		return err
	}
	exec(`ALTER TABLE orders RENAME TO orders_away`)
	if err := buy(); err == nil {
		t.Fatal("Reserve committed without its table")
	}
	if err := s.Ready(ctx); err == nil {
		t.Error("Ready after a failed commit: nil, want an error")
	}
	exec(`ALTER TABLE orders_away RENAME TO orders`)
	if err := buy(); err != nil {
		t.Fatalf("Reserve once the table is back: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Errorf("Ready after a commit succeeded again: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); err == nil {
		t.Error("Ready of a closed store: nil, want an error")
	}
}

// TestExpiryJob: the store expires holds on its own, on its clock, and
// tells the OnRelease listener which sale got units back.
func TestExpiryJob(t *testing.T) {
	var late atomic.Bool
	now := func() time.Time {
		if late.Load() {
			return t0.Add(time.Hour)
		}
		return t0
	}
	s, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	sale := newSale(t, "s1", 1, 1)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(t0))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("Reserve: %+v, %v", out, err)
	}
	released := make(chan string, 1)
	s.OnRelease(func(id string, _ int) { released <- id })
	late.Store(true)
	select {
	case id := <-released:
		if id != sale.ID {
			t.Errorf("released %q, want %q", id, sale.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the expiry job released nothing within 5s")
	}
	if o, err := s.Order(ctx, out[0].Order.ID); err != nil || o.Status != surge.OrderExpired {
		t.Errorf("order after the job: %+v, %v; want expired", o, err)
	}
	if n, err := s.Remaining(ctx, sale.ID); err != nil || n != 1 {
		t.Errorf("Remaining after the job = %d, %v; want 1", n, err)
	}
}

// TestUpgradeAddsOutboxStatus opens a database whose outbox predates the
// refund_due events' own status column: the column is added, and the
// events already there read back.
func TestUpgradeAddsOutboxStatus(t *testing.T) {
	dir, _ := reservedThenAltered(t, `ALTER TABLE outbox DROP COLUMN status`)
	s := open(t, dir)
	defer s.Close()
	evs, err := s.PendingEvents(t.Context(), 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Order.Status != surge.OrderReserved {
		t.Fatalf("events after the upgrade: %+v, %v", evs, err)
	}
}

// reservedThenAltered makes a data directory whose sale "s" has one order,
// reserved, then runs alter on its database while no store has it open,
// making it what an older version left; it returns the directory and the
// order.
func reservedThenAltered(t *testing.T, alter string) (string, surge.Order) {
	t.Helper()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s", 10, 1)); err != nil {
		t.Fatal(err)
	}
	out, _, err := s.Reserve(t.Context(), "s", []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(t0))
	if err != nil || len(out) != 1 || out[0].Code != surge.CodeReserved {
		t.Fatalf("Reserve = %+v, %v", out, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(alter); err != nil {
		t.Fatal(err)
	}
	return dir, out[0].Order
}

// TestUpgradeAddsPaymentsRefundOf opens a database whose payments table
// predates refund_of: the column is added, and a payment is recorded.
func TestUpgradeAddsPaymentsRefundOf(t *testing.T) {
	dir, o := reservedThenAltered(t, `ALTER TABLE payments DROP COLUMN refund_of`)
	s := open(t, dir)
	defer s.Close()
	if _, err := s.Pay(t.Context(), o.ID, t0.Add(time.Second)); err != nil {
		t.Fatalf("Pay after the upgrade: %v", err)
	}
}

// TestExpiryBeforeEngineOpensIsCounted: holds the store's own expiry job
// ends before the engine registers for its releases (its first pass after
// a start that follows downtime, when the engine is slow to open) must
// still be counted in surge_order_transitions_total{to="expired"}, as
// cluster mode counts them (the cluster package's test of the same name).
func TestExpiryBeforeEngineOpensIsCounted(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)

	// Before the downtime: an order whose hold ends while no server runs.
	first := open(t, dir)
	id, name, stock, hold := "hold", "Hold", int64(3), int64(1)
	start := now.Add(-time.Minute)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold, StartsAt: &start}, start)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateSale(ctx, sl); err != nil {
		t.Fatal(err)
	}
	out, _, err := first.Reserve(ctx, id, []surge.Purchase{{UserID: "alice", Quantity: 1}}, surge.At(start))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %+v, %v", out, err)
	}
	o := out[0].Order
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// The start: the store, with its expiry job, then the engine, as surge
	// serve opens them; the store's first pass runs before the engine
	// registers for its releases.
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Order(ctx, o.ID)
		if err == nil && got.Status == surge.OrderExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store's expiry job did not expire the hold: %+v, %v", got, err)
		}
		time.Sleep(10 * time.Millisecond) // polling the order's status
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, version.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(ctx, s, engine.Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })

	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	expired := 0.0
	for _, f := range fams {
		if f.GetName() != "surge_order_transitions_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			var sale, to string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "sale":
					sale = l.GetValue()
				case "to":
					to = l.GetValue()
				}
			}
			if sale == id && to == metrics.ToExpired {
				expired = mt.GetCounter().GetValue()
			}
		}
	}
	if expired != 1 {
		t.Errorf("surge_order_transitions_total{sale=%q,to=%q} = %v, want 1: an order whose hold expired as the server "+
			"started is missing from the expiry count the dashboard and alerts read", id, metrics.ToExpired, expired)
	}
	if st, err := e.Sale(id); err != nil || st.Remaining != stock {
		t.Errorf("remaining %d (%v), want %d", st.Remaining, err, stock)
	}
}

// TestUpgradeKeepsPauseStart opens a database whose sales predate the
// pause's start: a sale paused then counts its pause from the operator's
// last change, at or after the pause, so its waiting room's clock stops
// from there rather than not at all.
func TestUpgradeKeepsPauseStart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s", 10, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSale(t.Context(), "s", surge.SalePatch{Paused: new(true)}, surge.At(t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	changed := t0.Add(2 * time.Minute) // the last change, after the pause
	for _, q := range []string{`ALTER TABLE sales DROP COLUMN paused_at`, `ALTER TABLE sales DROP COLUMN paused_for_ns`,
		`UPDATE sales SET updated_at = '` + surge.FormatTime(changed) + `'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s = open(t, dir)
	defer s.Close()
	got, err := s.Sale(t.Context(), "s")
	if err != nil || !got.Paused || !got.PausedAt.Equal(changed) || got.PausedFor != 0 {
		t.Fatalf("the paused sale after the upgrade: %+v, %v; want paused since %v", got, err, changed)
	}
}
