package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// TestCloseFreesLeaseTakenInFlight: a lease statement PostgreSQL is still
// running when its node gives up on it (Close, or a relay whose context
// ends) must not land after the node resigned, or the lease stays with a
// node that is gone for a whole time to live: no hold expires, no live
// state is repaired, no event is published meanwhile. Under load this
// made the contract's Recovery test flaky: a renewal abandoned at Close
// landed after the resignation, and the reopened store could not lead.
// Each try is stalled in PostgreSQL (stall), for longer than the call
// timeout in the last case: the node stops waiting for it before Close.
func TestCloseFreesLeaseTakenInFlight(t *testing.T) {
	for _, tc := range []struct {
		name, lease string
		cfg         cluster.Config // CallTimeout 10s unless set
		hold        time.Duration  // how long PostgreSQL stalls each try: 500ms unless set
		// try starts a try for the lease and returns what stops it.
		try func(t *testing.T, s *cluster.Store) (stop func())
	}{
		{
			name: "leader loop renewing", lease: "jobs",
			cfg: cluster.Config{Interval: 5 * time.Millisecond, NoExpiry: true},
			try: func(*testing.T, *cluster.Store) func() { return func() {} }, // Close stops it
		},
		{
			name: "relay whose context ends", lease: "outbox",
			cfg: cluster.Config{Interval: time.Hour, Events: true},
			try: func(t *testing.T, s *cluster.Store) func() {
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = s.PendingEvents(ctx, 0, 10)
				}()
				return func() { cancel(); <-done }
			},
		},
		{
			// The try's call times out while PostgreSQL still runs it,
			// and the node resigns before the statement ends. The call
			// timeout leaves Open time to load on a busy machine.
			name: "renewal that outlives the call timeout", lease: "jobs", hold: 2 * time.Second,
			cfg: cluster.Config{Interval: 5 * time.Millisecond, NoExpiry: true, CallTimeout: time.Second},
			try: func(*testing.T, *cluster.Store) func() { return func() {} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			if tc.cfg.CallTimeout == 0 {
				tc.cfg.CallTimeout = 10 * time.Second
			}
			if tc.hold == 0 {
				tc.hold = 500 * time.Millisecond
			}
			s := openStore(t, ns, tc.cfg)
			t.Cleanup(func() { s.Close() })
			ctx := t.Context()
			db := servicetest.Conn(t, ns)
			// A BEFORE INSERT trigger runs before the upsert locks the
			// lease's row, so the resignation does not queue behind it.
			tries := stall(t, db, ns, "BEFORE INSERT ON leases", "NEW.name = '"+tc.lease+"'", tc.hold)
			stop := tc.try(t, s)
			waitBegun(t, tries, "try for the "+tc.lease+" lease")
			// A try is in PostgreSQL's hands for tc.hold: give up on it.
			stop()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var holder string
			var held bool
			err := landed(t, db, "leases", func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT holder, expires_at > now() FROM leases WHERE name = $1`, tc.lease).Scan(&holder, &held)
			})
			if errors.Is(err, pgx.ErrNoRows) {
				return // never taken: free
			}
			if err != nil {
				t.Fatal(err)
			}
			if held {
				t.Errorf("the %s lease is held by %s after it closed; another node waits out its time to live", tc.lease, holder)
			}
		})
	}
}

// stall makes PostgreSQL keep each row event (e.g. "BEFORE INSERT ON
// leases") for which cond holds for hold, and for hold again after a
// cancel, as when the cancel reaches a busy server before the statement
// does (PostgreSQL ignores a cancel of an idle session, then runs the
// statement when it reads it). It returns how many have begun.
func stall(t *testing.T, db *pgx.Conn, ns, event, cond string, hold time.Duration) (begun func() int64) {
	t.Helper()
	ctx := t.Context()
	secs := strconv.FormatFloat(hold.Seconds(), 'f', 3, 64)
	for _, q := range []string{
		`CREATE SEQUENCE stalled`,
		`CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF ` + cond + ` THEN
				PERFORM nextval('` + ns + `.stalled');
				BEGIN
					PERFORM pg_sleep(` + secs + `);
				EXCEPTION WHEN query_canceled THEN
					PERFORM pg_sleep(` + secs + `);
				END;
			END IF;
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER stall ` + event + ` FOR EACH ROW EXECUTE FUNCTION stall()`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() int64 {
		var n int64
		var called bool
		if err := db.QueryRow(ctx, `SELECT last_value, is_called FROM stalled`).Scan(&n, &called); err != nil {
			t.Fatal(err)
		}
		if !called {
			return 0
		}
		return n
	}
}

// waitBegun waits until begun reports a stalled statement.
func waitBegun(t *testing.T, begun func() int64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for begun() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// landed runs read once every write to table in flight has committed or
// rolled back: a writer holds the table's ROW EXCLUSIVE lock from its
// start to its end, and SHARE waits for it.
func landed(t *testing.T, db *pgx.Conn, table string, read func(pgx.Tx) error) error {
	ctx := t.Context()
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN SHARE MODE`); err != nil {
			return err
		}
		return read(tx)
	})
}

// TestUnitsBackWhenCallerLeaves: an order PostgreSQL moved out of the
// reserved state has its units back in Redis, even when whoever asked
// for it stopped waiting while PostgreSQL ran the statement (a buyer's
// cancel whose request ended, the leader's expiry when its node closes).
// Otherwise the units, and the buyer's share of the per-user limit, stay
// taken in Redis for good: nothing else gives them back.
func TestUnitsBackWhenCallerLeaves(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    cluster.Config
		status string
		ago    time.Duration // the reservation's age; holds last an hour
		// leave ends the order id on s and stops waiting for it once
		// PostgreSQL began (begun).
		leave func(t *testing.T, s *cluster.Store, id string, begun func() int64)
	}{
		{
			name: "cancel whose request ended", status: "cancelled", ago: 0,
			// One leader round, at the start: no sweep gives the units back.
			cfg: cluster.Config{NoExpiry: true, Interval: time.Hour},
			leave: func(t *testing.T, s *cluster.Store, id string, begun func() int64) {
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = s.Cancel(ctx, id, time.Now())
				}()
				waitBegun(t, begun, "cancel")
				cancel()
				<-done
			},
		},
		{
			name: "expiry by a leader that closes", status: "expired", ago: 2 * time.Hour,
			cfg: cluster.Config{Interval: 5 * time.Millisecond},
			leave: func(t *testing.T, s *cluster.Store, _ string, begun func() int64) {
				waitBegun(t, begun, "expiry")
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			tc.cfg.CallTimeout = 10 * time.Second
			s := openStore(t, ns, tc.cfg)
			t.Cleanup(func() { s.Close() })
			db := servicetest.Conn(t, ns)
			begun := stall(t, db, ns, "BEFORE UPDATE ON orders", "OLD.status = 'reserved' AND NEW.status = '"+tc.status+"'", 500*time.Millisecond)
			id, name, stock, limit, hold, start := "s", "S", int64(3), int64(1), int64(3600), time.Now().Add(-3*time.Hour)
			sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start, HoldSeconds: &hold}, start)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateSale(t.Context(), sl); err != nil {
				t.Fatal(err)
			}
			out, _, err := s.Reserve(t.Context(), "s", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(time.Now().Add(-tc.ago)))
			if err != nil || out[0].Code != surge.CodeReserved {
				t.Fatalf("reserve: %+v %v", out, err)
			}
			tc.leave(t, s, out[0].Order.ID, begun)
			var status string
			err = landed(t, db, "orders", func(tx pgx.Tx) error {
				return tx.QueryRow(t.Context(), `SELECT status FROM orders WHERE id = $1`, out[0].Order.ID).Scan(&status)
			})
			if err != nil || status != tc.status {
				t.Fatalf("order in PostgreSQL: %q, %v; want %s", status, err, tc.status)
			}
			// Redis itself, not a store: a new one would lead, and its
			// sweep would give the units back on its own.
			rc := dialRedis(t)
			if rem, _, err := redis.New(rc, ns).Totals(t.Context(), redis.Layout{Sale: "s"}); err != nil || rem != 3 {
				t.Errorf("remaining in Redis = %d, %v; want 3: the %s unit is still taken", rem, err, tc.status)
			}
			if held, err := rc.HGet(t.Context(), ns+":{s}:u", "u").Result(); !errors.Is(err, goredis.Nil) {
				t.Errorf("the buyer holds %q units in Redis (%v), want none: a purchase would be limit_reached", held, err)
			}
		})
	}
}

// TestUnitsBackAfterNodeDied: a node that dies between ending an order
// in PostgreSQL and giving its units back to Redis (or whose call timed
// out after PostgreSQL committed) leaves the units taken in Redis. The
// leader finds such orders and gives their units back, in every bucket.
func TestUnitsBackAfterNodeDied(t *testing.T) {
	ns := namespace(t)
	// Its lease lapses within a second: it never renews (its rounds are an
	// hour apart), and the leader opened below takes over then.
	s := openStore(t, ns, cluster.Config{NoExpiry: true, Interval: time.Hour, LeaseTTL: time.Second, Buckets: 4})
	t.Cleanup(func() { s.Close() })
	// Its first round done before the fixture: on a loaded machine that
	// round could come after the orders ended below, sweep them itself,
	// and leave the leader (whose count this test reads) none to sweep.
	eventuallyLeads(t, s, 10*time.Second, "the node that will die leads")
	cluster.Round(t.Context(), s)
	mustSale(t, s, "s", 40, 1)
	var ended []string
	for i := range 20 {
		out, _, err := reserve(s, "s", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("reserve: %+v %v", out, err)
		}
		if i%2 == 0 {
			ended = append(ended, out[0].Order.ID)
		}
	}
	// What the dead node's statement did (postgres.Settle), and no more.
	db := servicetest.Conn(t, ns)
	tag, err := db.Exec(t.Context(), `WITH x AS (UPDATE orders SET status = 'cancelled', updated_at = now()
			WHERE id = ANY($1) AND status = 'reserved' RETURNING quantity)
		UPDATE sales SET sold = sold - (SELECT sum(quantity) FROM x) WHERE id = 's'`, ended)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("end orders behind Redis's back: %v %v", tag, err)
	}
	if rem, err := s.Remaining(t.Context(), "s"); err != nil || rem != 20 {
		t.Fatalf("fixture: Remaining = %d, %v; want 20 (Redis still holds the ended orders)", rem, err)
	}
	reg := prometheus.NewRegistry()
	leader := openStore(t, ns, cluster.Config{NoExpiry: true, Interval: 20 * time.Millisecond, Metrics: reg})
	t.Cleanup(func() { leader.Close() })
	eventually(t, 10*time.Second, "the units of the ended orders are back", func() error {
		if rem, err := s.Remaining(t.Context(), "s"); err != nil || rem != 30 {
			return fmt.Errorf("Remaining = %d, %v; want 30", rem, err)
		}
		return nil
	})
	if n := gather(t, reg)["surge_cluster_swept_orders_total"].GetMetric()[0].GetCounter().GetValue(); n != 10 {
		t.Errorf("surge_cluster_swept_orders_total = %v, want 10", n)
	}
	for i := range 20 { // limit 1: only the buyers whose order ended may buy again
		out, _, err := reserve(s, "s", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})
		want := surge.CodeLimitReached
		if i%2 == 0 {
			want = surge.CodeReserved
		}
		if err != nil || out[0].Code != want {
			t.Errorf("u%d buys again: %+v, %v; want %s", i, out, err, want)
		}
	}
}
