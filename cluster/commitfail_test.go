package cluster_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// purchaseErr is what one purchase of a batch was answered: the batch's
// error, or its own.
func purchaseErr(out []surge.Outcome, err error, i int) error {
	if err != nil {
		return err
	}
	return out[i].Err
}

// TestCommitFailedKeylessMessage: a batch whose PostgreSQL commit failed
// told its buyers to "retry with the same Idempotency-Key", also those
// who sent none.
func TestCommitFailedKeylessMessage(t *testing.T) {
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	ns := namespace(t)
	cfg := cluster.Config{Prefix: ns, Schema: ns}
	s := openStoreAt(t, redisURL(), "postgres://postgres@"+px.Addr+"/test?sslmode=disable", cfg)
	defer s.Close()
	sl := mustSale(t, s, "pg-cut", 10, 1)

	px.Cut()
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "u1", Quantity: 1})
	px.Restore()
	var se *surge.Error
	if err := purchaseErr(out, err, 0); !errors.As(err, &se) || se.Code != surge.CodeUnavailable {
		t.Fatalf("purchase: %v, want 503 unavailable", err)
	}
	if strings.Contains(se.Message, "Idempotency-Key") {
		t.Errorf("the buyer who sent no Idempotency-Key was told %q", se.Message)
	}
}
