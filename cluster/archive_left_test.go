package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// stallArchiveCommit makes the commit of an archive take hold, also
// through a cancel, and counts the commits it stalled (begun).
func stallArchiveCommit(t *testing.T, db *pgx.Conn, hold time.Duration) (begun func() int64) {
	t.Helper()
	ctx := t.Context()
	for _, q := range []string{
		`CREATE SEQUENCE archive_stalled`,
		`CREATE FUNCTION stall_archive() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM nextval('archive_stalled');
			BEGIN
				PERFORM pg_sleep(` + fmt.Sprintf("%.3f", hold.Seconds()) + `);
			EXCEPTION WHEN query_canceled THEN
				PERFORM pg_sleep(` + fmt.Sprintf("%.3f", hold.Seconds()) + `);
			END;
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER stall_archive AFTER UPDATE ON sales DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW WHEN (OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL) EXECUTE FUNCTION stall_archive()`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() int64 {
		var n int64
		var called bool
		if err := db.QueryRow(ctx, `SELECT last_value, is_called FROM archive_stalled`).Scan(&n, &called); err != nil {
			t.Fatal(err)
		}
		if !called {
			return 0
		}
		return n
	}
}

// TestArchiveLeavesNoLiveState: PostgreSQL committed an archive, and then
// the node could not remove the sale's live state from Redis: Redis failed
// right then, or the archive's caller went away (its context ended) during
// the commit, which also answered the archive as failed and kept the sale
// in the node's memory. Nothing removed that state afterwards: every key of
// the sale stayed in Redis for good. The leader's round must remove it, and
// a purchase of the sale must answer sale_not_found on every node.
func TestArchiveLeavesNoLiveState(t *testing.T) {
	for _, tc := range []struct {
		name string
		// archive archives id on s (whose Redis is behind rp), failing
		// as the case says; it returns the archive's answer.
		archive func(t *testing.T, s *cluster.Store, rp *servicetest.Proxy, db *pgx.Conn, id string, at time.Time) error
	}{
		{"Redis cut after the commit", func(t *testing.T, s *cluster.Store, rp *servicetest.Proxy, _ *pgx.Conn, id string, at time.Time) error {
			rp.Cut()
			defer rp.Restore()
			_, err := s.ArchiveSale(context.Background(), id, at)
			return err
		}},
		{"caller gone during the commit", func(t *testing.T, s *cluster.Store, _ *servicetest.Proxy, db *pgx.Conn, id string, at time.Time) error {
			begun := stallArchiveCommit(t, db, time.Second)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				eventually(t, 10*time.Second, "the archive's commit stalls", func() error {
					if begun() == 0 {
						return errors.New("not yet")
					}
					return nil
				})
				cancel()
			}()
			_, err := s.ArchiveSale(ctx, id, at)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			ctx := context.Background()
			leader := openStore(t, ns, cluster.Config{NodeID: "leader", Interval: 100 * time.Millisecond})
			t.Cleanup(func() { leader.Close() })
			eventuallyLeads(t, leader, 10*time.Second, "the leader leads")
			rp := servicetest.RedisProxy(t)
			node := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
				cluster.Config{Prefix: ns, Schema: ns, NodeID: "node", Interval: time.Hour, CallTimeout: 5 * time.Second})
			t.Cleanup(func() { node.Close() })

			id, name, stock, hold := "gone", "Gone", int64(5), int64(3600)
			start, ends := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
			sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &ends, HoldSeconds: &hold}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := node.CreateSale(ctx, sl); err != nil {
				t.Fatal(err)
			}
			outs, _, err := reserve(node, id, surge.Purchase{UserID: "alice", IdempotencyKey: "k1", Quantity: 1})
			if err != nil || outs[0].Code != surge.CodeReserved {
				t.Fatalf("purchase: %+v %v", outs, err)
			}
			if _, err := node.Pay(ctx, outs[0].Order.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			db := servicetest.Conn(t, ns)
			archiveErr := tc.archive(t, node, rp, db, id, ends.Add(time.Minute))
			var archived bool
			err = landed(t, db, "sales", func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT archived_at IS NOT NULL FROM sales WHERE id = $1`, id).Scan(&archived)
			})
			if err != nil || !archived {
				t.Fatalf("the sale is not archived in PostgreSQL (%v); the archive answered %v", err, archiveErr)
			}
			if archiveErr != nil {
				t.Errorf("the archive answered %v, yet PostgreSQL holds the sale archived", archiveErr)
			}
			for _, s := range []struct {
				name string
				s    *cluster.Store
			}{{"the archiving node", node}, {"the leader", leader}} {
				// The engine's poll lists the sales now and then; a node
				// that did not hear of the archive drops the sale then.
				eventually(t, 10*time.Second, s.name+" answers a purchase sale_not_found", func() error {
					if _, err := s.s.Sales(ctx); err != nil {
						return err
					}
					outs, _, err := reserve(s.s, id, surge.Purchase{UserID: "bob", IdempotencyKey: "k2", Quantity: 1})
					if !surge.HasCode(err, surge.CodeSaleNotFound) {
						return fmt.Errorf("purchase answered %+v, %v", outs, err)
					}
					return nil
				})
			}
			rc := dialRedis(t)
			deadline := time.Now().Add(10 * time.Second)
			for {
				left, err := rc.Keys(ctx, ns+":{"+id+"}:*").Result()
				if err != nil {
					t.Fatal(err)
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the archived sale's live state is still in Redis 10s (about a hundred leader rounds) after its archive, which answered %v: %v", archiveErr, left)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
