package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestReserveAfterArchiveReservesNothing: a batch that found the
// sale's state before ArchiveSale took it away, and waited for the sale's
// lock while the archive held it (its INSERT waiting for the writer's
// group commit in progress, modelled here by holding the writer's one
// connection), must not reserve once the lock is its: the sale is
// archived. The engine computes the batch's now just before
// Store.Reserve, so a batch that started a moment before the sale's end
// carries a now before it.
func TestReserveAfterArchiveReservesNothing(t *testing.T) {
	ctx := t.Context()
	s, end := endingSales(t, "a")

	// The writer is busy committing: archive's INSERT will wait for it,
	// holding the sale's lock.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	archived := make(chan error, 1)
	go func() {
		_, err := s.ArchiveSale(context.Background(), "a", end.Add(time.Second))
		archived <- err
	}()
	waitLocked(t, s.sale("a"))

	// A batch decided a moment before the end reaches the store now: it
	// finds the sale's state and waits for the lock.
	type res struct {
		outs []surge.Outcome
		err  error
	}
	reserved := make(chan res, 1)
	go func() {
		outs, _, err := s.Reserve(context.Background(), "a", []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(end.Add(-time.Millisecond)))
		reserved <- res{outs, err}
	}()
	time.Sleep(200 * time.Millisecond) // the batch is waiting on the sale's lock
	conn.Close()                       // the group commit is done

	if err := <-archived; err != nil {
		t.Fatalf("archive: %v", err)
	}
	r := <-reserved
	if r.err == nil && r.outs[0].Code == surge.CodeReserved {
		var status string
		_ = s.r.QueryRowContext(ctx, `SELECT status FROM orders WHERE id = ?`, r.outs[0].Order.ID).Scan(&status)
		t.Fatalf("a batch committed order %s (%s on disk) in sale a after ArchiveSale returned: an archived sale now holds a reservation nobody can pay, cancel or expire",
			r.outs[0].Order.ID, status)
	}
	if !surge.HasCode(r.err, surge.CodeSaleNotFound) && (r.err != nil || r.outs[0].Code != surge.CodeEnded) {
		t.Errorf("reserve in a sale archived meanwhile: %+v, %v; want sale_not_found (or ended)", r.outs, r.err)
	}
}

// waitLocked waits until st's lock is held by someone else.
func waitLocked(t *testing.T, st *saleState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !st.mu.TryLock() {
			return
		}
		st.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the sale's lock was never taken")
}
