package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// A sale whose creation committed in PostgreSQL but whose COMMIT's answer
// was lost was answered 503 "creating the sale failed; retry shortly" (and
// its live state removed), though the sale exists: the retry the answer
// asked for got 409 sale_exists for the operator's own sale. It is the
// sale as created, as a PATCH's lost answer is (readBack).
func TestCreateLostCommitAnswer(t *testing.T) {
	ns := namespace(t)
	px := newCutProxy(t, "127.0.0.1:5432", "victim-created")
	px.then, px.afterReply = []byte("commit"), true
	// b leads: a's own loop meets no cut.
	b := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond})
	defer b.Close()
	eventuallyLeads(t, b, 10*time.Second, "b leads")
	cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour, NoExpiry: true}
	a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.addr+"/test?sslmode=disable", cfg)
	defer a.Close()

	id, name, stock, limit := "lostcreate", "victim-created", int64(10), int64(2)
	start, hold := time.Now().Add(-time.Minute), int64(3600)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start, HoldSeconds: &hold}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	px.armed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = a.CreateSale(ctx, sl)
	if !px.fired.Load() {
		t.Fatalf("the proxy never cut the creation's COMMIT: %v", err)
	}
	truth, terr := b.Sale(ctx, id)
	if terr != nil || truth.Name != name {
		t.Fatalf("PostgreSQL holds %+v (%v); want the sale, committed before its answer was lost", truth, terr)
	}
	if err != nil {
		t.Fatalf("creation whose COMMIT's answer was lost after PostgreSQL committed it: %v; want it answered created", err)
	}
	// The node sells it: its live state is there.
	eventually(t, 10*time.Second, "a purchase on the creating node", func() error {
		out, _, err := reserve(a, id, surge.Purchase{UserID: "first", Quantity: 1})
		if err != nil {
			return err
		}
		if out[0].Code != surge.CodeReserved {
			return out[0].Err
		}
		return nil
	})
}
