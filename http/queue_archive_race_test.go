package http_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestJoinAfterArchiveLeavesNoQueue: a join in flight when its sale is
// ended and archived (it read the sale before) reached the queue after
// the archive had dropped it, and made it again: a queue for a sale no
// node serves, which nothing drops any more, its entries kept for the
// process's life (in Redis for ever, in cluster mode:
// TestJoinAfterArchiveLeavesNoQueueInRedis). Such a join is now refused
// as the archived sale's queue endpoints answer, sale_not_found, and
// leaves no queue.
func TestJoinAfterArchiveLeavesNoQueue(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"race","name":"Race","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(-time.Minute), ts(time.Hour)))
	e.join(t, "race", "alice", http.StatusCreated)
	// What the join in flight read of the sale, before its end.
	before, err := e.eng.Sale("race")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.do(t, "PATCH", "/v1/sales/race", fmt.Sprintf(`{"ends_at":%q}`, ts(0)), asAdmin()), http.StatusOK)
	e.clock.Advance(time.Second)
	wantStatus(t, e.do(t, "POST", "/v1/sales/race/archive", "", asAdmin()), http.StatusOK)

	_, _, err = e.room.Join(t.Context(), &before.Sale, "bob")
	if surge.ErrorCode(err) != surge.CodeSaleNotFound {
		t.Errorf("a join after the archive: %v, want sale_not_found", err)
	}
	waiting, admitted, err := e.room.Line(t.Context(), &before.Sale)
	if err != nil || waiting+admitted != 0 {
		t.Fatalf("the archived sale's queue after the join: %d waiting, %d admitted (%v); want none", waiting, admitted, err)
	}
}
