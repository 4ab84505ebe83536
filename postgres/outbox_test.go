package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// TestOutboxHorizon: an event whose transaction took its seq before
// another one committed a higher seq is never skipped by a reader that
// reads on after the last event it saw: the higher one is held back until
// the lower one's transaction ended, then both are read in seq order.
// horizonReader opens a schema of its own with a sale holding the orders
// ids, each reserved (seqs 1..len(ids)), and returns it with a reader of
// the outbox that holds the lease: read(after) gives the seqs it reads.
func horizonReader(t *testing.T, ids ...string) (db *postgres.DB, ns string, sl surge.Sale, read func(after int64) []int64) {
	t.Helper()
	ctx := context.Background()
	ns = servicetest.Namespace(t)
	db, err := postgres.Open(ctx, url(), postgres.Options{Schema: ns, Events: true})
	if err != nil {
		t.Fatalf("postgres.Open (run scripts/services.sh): %v", err)
	}
	t.Cleanup(db.Close)
	sl = sale(t, db)
	later := time.Now().Add(time.Hour)
	var orders []surge.Order
	for _, id := range ids {
		orders = append(orders, order(id, sl, later))
	}
	if _, _, err := db.InsertOrders(ctx, sl.ID, 1, orders, nil); err != nil {
		t.Fatal(err)
	}
	l, ok, err := db.Acquire(ctx, "outbox", "me", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	var h postgres.OutboxHorizon
	return db, ns, sl, func(after int64) []int64 {
		t.Helper()
		evs, err := db.PendingEvents(ctx, l, &h, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, e := range evs {
			seqs = append(seqs, e.Seq)
		}
		return seqs
	}
}

func TestOutboxHorizon(t *testing.T) {
	ctx := context.Background()
	db, ns, sl, read := horizonReader(t, "o1")
	later := time.Now().Add(time.Hour)
	// The reader sees o1's reserved event (seq 1) once it is final.
	// (A read waits up to 2 s for the writers of the outbox running
	// when it started: this polls in case one ran longer.)
	var first []int64
	for deadline := time.Now().Add(10 * time.Second); len(first) == 0 && time.Now().Before(deadline); {
		if first = read(0); len(first) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if len(first) != 1 {
		t.Fatalf("read %v, want o1's reserved event alone", first)
	}

	// A writer takes seq 2 (changing o1 first, as every writer does) and
	// stays open; another commits o2's reserved event, seq 3.
	conn := servicetest.Conn(t, ns)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE orders SET status = 'paid' WHERE id = 'o1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (sale_id, order_id, event, at) VALUES ($1, 'o1', 'paid', now())`, sl.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{order("o2", sl, later)}, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 { // each waits for the open transaction, up to 2 s
		if got := read(first[0]); len(got) != 0 {
			t.Fatalf("read %v while the transaction of seq 2 is open: a reader going on from it would skip seq 2", got)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var got []int64
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		if got = read(first[0]); len(got) < 2 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if len(got) != 2 || got[0] != first[0]+1 || got[1] != first[0]+2 {
		t.Errorf("after the commit read %v, want seqs %d and %d", got, first[0]+1, first[0]+2)
	}
}

// TestOutboxHorizonXidOrder: transaction ids and seqs are handed out in
// different orders. A writer that took its id first but its seq last and
// committed is the highest completed transaction, so a snapshot's xmax
// stops at the id of a writer still open with a lower seq: that writer is
// in no snapshot's xmin or running list, and a horizon built on xmin alone
// let the reader take the higher seq and skip the lower one.
func TestOutboxHorizonXidOrder(t *testing.T) {
	ctx := context.Background()
	_, ns, sl, readAll := horizonReader(t, "o1", "o2")
	read := func() []int64 { t.Helper(); return readAll(2) } // after the two reserved events
	begin := func() pgx.Tx {
		t.Helper()
		tx, err := servicetest.Conn(t, ns).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback(ctx) })
		return tx
	}
	exec := func(tx pgx.Tx, sql string, args ...any) {
		t.Helper()
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	// early takes its transaction id first; late takes one after it and
	// then seq 3; early takes seq 4 and commits; late stays open.
	early, late := begin(), begin()
	exec(early, `UPDATE orders SET status = 'paid' WHERE id = 'o2'`)
	exec(late, `UPDATE orders SET status = 'paid' WHERE id = 'o1'`)
	exec(late, `INSERT INTO outbox (sale_id, order_id, event, at) VALUES ($1, 'o1', 'paid', now())`, sl.ID)
	exec(early, `INSERT INTO outbox (sale_id, order_id, event, at) VALUES ($1, 'o2', 'paid', now())`, sl.ID)
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("read %v while the transaction of seq 3 is open: a reader going on from it would skip seq 3", got)
	}
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for deadline := time.Now().Add(10 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
		if got = read(); len(got) < 2 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Errorf("after the commit read %v, want seqs 3 and 4", got)
	}
}

// TestEventsOnlyOnceRelayed: a cluster no node of which relays order
// events writes none (its outbox would only grow); once a node that relays
// them opens the database, every change writes its event, whichever node
// makes it, and they stay on.
func TestEventsOnlyOnceRelayed(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	openDB := func(events bool) *postgres.DB {
		t.Helper()
		db, err := postgres.Open(ctx, url(), postgres.Options{Schema: ns, Events: events})
		if err != nil {
			t.Fatalf("postgres.Open (run scripts/services.sh): %v", err)
		}
		t.Cleanup(db.Close)
		return db
	}
	conn := servicetest.Conn(t, ns)
	events := func() []string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT order_id || ' ' || event FROM outbox ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	// Each round reserves two orders, cancels the first and lets the
	// second's hold end.
	var sl surge.Sale
	round := func(db *postgres.DB, a, b string) {
		t.Helper()
		now := time.Now()
		if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{order(a, sl, now.Add(time.Hour)), order(b, sl, now.Add(time.Hour))}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Settle(ctx, a, surge.OrderCancelled, now); err != nil {
			t.Fatal(err)
		}
		l, ok, err := db.Acquire(ctx, "leader", "me", time.Minute)
		if err != nil || !ok {
			t.Fatalf("Acquire: %v %v", ok, err)
		}
		if out, err := db.Expire(ctx, now.Add(2*time.Hour), l, 10); err != nil || len(out) != 1 || out[0].ID != b {
			t.Fatalf("Expire: %v %v, want %s", out, err, b)
		}
	}

	node := openDB(false)
	sl = sale(t, node)
	round(node, "o1", "o2")
	if evs := events(); len(evs) != 0 {
		t.Fatalf("no node relays events, yet the outbox holds %q", evs)
	}
	openDB(true) // a node with a relay joins
	round(node, "o3", "o4")
	openDB(false) // and another without: events stay on
	round(node, "o5", "o6")
	want := []string{"o3 reserved", "o4 reserved", "o3 cancelled", "o4 expired", "o5 reserved", "o6 reserved", "o5 cancelled", "o6 expired"}
	if evs := events(); !slices.Equal(evs, want) {
		t.Errorf("outbox %q, want %q", evs, want)
	}
}

// TestExpirySeqUnderSaleLock: docs/events.md, Ordering: "In cluster mode
// a sale's reservations and expiries take their seq under the sale row's
// lock, so it is their commit order too". An expiry that runs while a
// reservation batch of the same sale holds the sale row (it is checking
// the stock and the buyers' limits, inserting its orders) must not take a
// seq below the batch's: the batch commits first, the expiry waits for
// the row, so the expiry's event must come after the batch's in seq.
func TestExpirySeqUnderSaleLock(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	db, err := postgres.Open(ctx, url(), postgres.Options{Schema: ns, Events: true})
	if err != nil {
		t.Fatalf("postgres.Open (run scripts/services.sh): %v", err)
	}
	t.Cleanup(db.Close)
	sl := newSale(t, db, "s1", 10)
	past := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	due := order("due", sl, past) // its hold has ended: the expiry takes it
	if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{due}, nil); err != nil {
		t.Fatal(err)
	}
	// The next batch stalls after it locked the sale row, before its
	// orders (and their reserved events) are written, as a batch does
	// while PostgreSQL checks its buyers' limits under the lock: until
	// the test lets it go (an advisory lock the test holds), so that the
	// expiry surely runs, and waits for the row, meanwhile.
	conn := servicetest.Conn(t, ns)
	for _, q := range []string{
		`CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.id = 'slow' THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER stall BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION stall()`,
		`SELECT pg_advisory_lock(4242)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// waiting waits until a statement whose text has part waits for a lock.
	watch := servicetest.Conn(t, ns)
	waiting := func(part, what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var n int
			if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND strpos(query, $1) > 0`, part).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not waiting after 20s", what)
			}
		}
	}
	l, ok, err := db.Acquire(ctx, "jobs", "me", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	inserted := make(chan error, 1)
	go func() {
		slow := order("slow", sl, time.Now().Add(time.Hour))
		_, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{slow}, nil)
		inserted <- err
	}()
	waiting("surge_insert_orders", "the batch, holding the sale row, at the test's lock")
	type result struct {
		orders []surge.Order
		err    error
	}
	expiring := make(chan result, 1)
	go func() {
		expired, err := db.Expire(ctx, time.Now().UTC().Truncate(time.Millisecond), l, 100)
		expiring <- result{expired, err}
	}()
	waiting("status = 'expired'", "the expiry, at the sale row the batch holds")
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(4242)`); err != nil {
		t.Fatal(err)
	}
	if err := <-inserted; err != nil {
		t.Fatal(err)
	}
	r := <-expiring
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.orders) != 1 || r.orders[0].ID != "due" {
		t.Fatalf("Expire = %+v, want the order due", r.orders)
	}
	ol, ok, err := db.Acquire(ctx, "outbox", "me", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Acquire outbox: %v %v", ok, err)
	}
	var h postgres.OutboxHorizon
	evs, err := db.PendingEvents(ctx, ol, &h, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	seq := map[string]int64{}
	for _, e := range evs {
		seq[e.ID()] = e.Seq
	}
	res, exp := seq["slow:reserved"], seq["due:expired"]
	if res == 0 || exp == 0 {
		t.Fatalf("events %v: want slow:reserved and due:expired", seq)
	}
	if exp < res {
		t.Errorf("the expiry, which waited for the batch's commit, has seq %d, below the batch's reserved event (seq %d): "+
			"a sale's expiries do not take their seq in commit order under the sale row's lock", exp, res)
	}
}
