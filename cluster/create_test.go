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
		newSaleNotRebuilt(t, i)
	}
}

// newSaleNotRebuilt is one round of TestNewSaleNotRebuilt on a node of its
// own, closed when the round ends: the nodes of the rounds before, each
// leading with a round every millisecond, would otherwise go on loading
// the machine and the database, twelve of them by the last round.
func newSaleNotRebuilt(t *testing.T, i int) {
	// A node of its own each time: the leader's round then holds only
	// this sale, and reaches it soon after it is in PostgreSQL.
	ns := namespace(t)
	// The creator installs the live state inside its insert's call: a call
	// timeout the loaded machine outlasts fails the install, and the leader
	// then rightly rebuilds the sale (epoch 2), which is not the race this
	// test is about. A bound for a hang only.
	s := openStore(t, ns, cluster.Config{Buckets: 4, Interval: time.Millisecond, CallTimeout: 10 * time.Second})
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
