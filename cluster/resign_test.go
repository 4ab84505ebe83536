package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge/cluster"
)

// TestCloseFreesLeaseTakenInFlight: a lease statement PostgreSQL is still
// running when its node gives up on it (Close, or a relay whose context
// ends) must not land after the node resigned, or the lease stays with a
// node that is gone for a whole time to live: no hold expires, no live
// state is repaired, no event is published meanwhile. Under load this
// made the contract's Recovery test flaky: a renewal abandoned at Close
// landed after the resignation, and the reopened store could not lead.
// A trigger keeps each try in PostgreSQL for half a second and sleeps on
// through a cancel, as when the cancel reaches a busy server before the
// statement does (PostgreSQL ignores a cancel of an idle session, then
// runs the statement when it reads it).
func TestCloseFreesLeaseTakenInFlight(t *testing.T) {
	for _, tc := range []struct {
		name, lease string
		cfg         cluster.Config
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			tc.cfg.CallTimeout = 10 * time.Second
			s := openStore(t, ns, tc.cfg)
			t.Cleanup(func() { s.Close() })
			ctx := t.Context()
			db, err := pgx.Connect(ctx, postgresURL()+"&search_path="+ns)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close(context.Background())
			// A BEFORE INSERT trigger runs before the upsert locks the
			// lease's row, so the resignation does not queue behind it.
			for _, q := range []string{
				`CREATE SEQUENCE lease_tries`,
				`CREATE FUNCTION slow_lease() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF NEW.name = '` + tc.lease + `' THEN
						PERFORM nextval('` + ns + `.lease_tries');
						BEGIN
							PERFORM pg_sleep(0.5);
						EXCEPTION WHEN query_canceled THEN
							PERFORM pg_sleep(0.5);
						END;
					END IF;
					RETURN NEW;
				END $$`,
				`CREATE TRIGGER slow_lease BEFORE INSERT ON leases FOR EACH ROW EXECUTE FUNCTION slow_lease()`,
			} {
				if _, err := db.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			tries := func() int64 {
				var n int64
				var called bool
				if err := db.QueryRow(ctx, `SELECT last_value, is_called FROM lease_tries`).Scan(&n, &called); err != nil {
					t.Fatal(err)
				}
				if !called {
					return 0
				}
				return n
			}
			stop := tc.try(t, s)
			deadline := time.Now().Add(10 * time.Second)
			for tries() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no try for the %s lease in 10s", tc.lease)
				}
				time.Sleep(time.Millisecond)
			}
			// A try is in PostgreSQL's hands for half a second: give up on it.
			stop()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// The try holds the table's ROW EXCLUSIVE lock from its start
			// to its commit: SHARE waits for it to land.
			var holder string
			var held bool
			err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `LOCK TABLE leases IN SHARE MODE`); err != nil {
					return err
				}
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
