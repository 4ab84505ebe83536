package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// TestRefundsAheadBounded: the refunds kept for payments not recorded yet
// (refunds_ahead, migration 015) were never dropped, so every refund whose
// payment never came (another of the account's charges, a test event)
// stayed for good. A refund kept past surge.RefundAheadKept is dropped
// when the next one is kept: what the table holds is bounded by the
// refunds of that window (migration 016 indexes their age).
func TestRefundsAheadBounded(t *testing.T) {
	ctx := context.Background()
	schema := servicetest.Namespace(t)
	db, err := postgres.Open(ctx, url(), postgres.Options{Schema: schema})
	if err != nil {
		t.Fatalf("postgres.Open (is PostgreSQL up? run scripts/services.sh): %v", err)
	}
	t.Cleanup(db.Close)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keep := func(i int, now time.Time) {
		ev := surge.PaymentEvent{ID: fmt.Sprintf("re_%d", i), Type: surge.RefundSucceeded, RefundOf: fmt.Sprintf("pi_%d", i),
			AmountCents: 100, Currency: "usd", Created: now, Provider: "stripe"}
		if _, err := db.RecordPayment(ctx, ev, now); !errors.Is(err, surge.ErrOrderNotFound) {
			t.Fatalf("refund %s of payment %s not recorded: err %v, want order_not_found (kept)", ev.ID, ev.RefundOf, err)
		}
	}
	const old = 100
	for i := range old {
		keep(i, t0)
	}
	keep(old, t0.Add(surge.RefundAheadKept+time.Second))
	conn, err := pgx.Connect(ctx, url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "refunds_ahead"}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d refunds kept at t0 for payments that never came, one more kept %v later: refunds_ahead holds %d rows; want 1 (those past %v dropped)",
			old, surge.RefundAheadKept+time.Second, n, surge.RefundAheadKept)
	}
}
