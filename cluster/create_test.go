package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/postgres"
)

// A new sale is never rebuilt: the leader, repairing every millisecond,
// must not find a sale in PostgreSQL whose live state its creator has not
// installed yet, take it for lost state and rebuild it under a new epoch
// (which failed the creator's first purchases with 503: the flake of
// TestBucketsSellEveryUnit). Every sale must still be at epoch 1 and
// its first purchase reserved.
func TestNewSaleNotRebuilt(t *testing.T) {
	for i := range 12 {
		// A node of its own each time: the leader's round then holds only
		// this sale, and reaches it soon after it is in PostgreSQL.
		ns := namespace(t)
		s := openStore(t, ns, cluster.Config{Buckets: 4, Interval: time.Millisecond})
		defer s.Close()
		db, err := postgres.Open(context.Background(), postgresURL(), postgres.Options{Schema: ns})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		sl := mustSale(t, s, fmt.Sprintf("fresh%d", i), 10, 1)
		out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "u", Quantity: 1})
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Errorf("sale %s: first purchase: %+v, %v", sl.ID, out, err)
		}
		row, err := db.Sale(context.Background(), sl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.Epoch != 1 {
			t.Errorf("sale %s was rebuilt right after it was created: epoch %d", sl.ID, row.Epoch)
		}
	}
}
