package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// A PATCH whose COMMIT reached PostgreSQL but whose answer was lost was
// answered 503 "nothing changed, retry" although the change was applied.
// The answer must be true: the sale as changed (PostgreSQL holds it), or
// a 503 that says the change may have been applied.
func TestPatchLostCommitAnswer(t *testing.T) {
	ns := namespace(t)
	px := newCutProxy(t, "127.0.0.1:5432", "victim-name")
	px.then = []byte("commit")
	// a leads nothing in the test's time (b does): no transaction of its
	// own loop meets the proxy's cut.
	b := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond})
	defer b.Close()
	eventually(t, 10*time.Second, "b leads", func() error {
		if !b.Leader() {
			return errors.New("b does not lead")
		}
		return nil
	})
	cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour, NoExpiry: true}
	a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.addr+"/test?sslmode=disable", cfg)
	defer a.Close()
	sl := mustSale(t, a, "lostpatch", 10, 2)

	px.armed.Store(true)
	name, stock := "victim-name", int64(20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := a.UpdateSale(ctx, sl.ID, surge.SalePatch{Name: &name, Stock: &stock}, time.Now())
	if !px.fired.Load() {
		t.Fatalf("the proxy never cut the PATCH's COMMIT: %+v %v", got, err)
	}
	// The COMMIT went through the proxy: it lands in PostgreSQL within
	// moments, if it does (the proxy drops the connection after 3 s).
	var truth surge.Sale
	applied := false
	for deadline := time.Now().Add(2 * time.Second); !applied && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var terr error
		if truth, terr = b.Sale(ctx, sl.ID); terr != nil {
			t.Fatal(terr)
		}
		applied = truth.Name == name && truth.Stock == stock
	}
	t.Logf("PATCH answered %+v, %v; PostgreSQL holds the change: %v", got.Name, err, applied)
	switch {
	case err == nil && !applied:
		t.Fatalf("PATCH answered 200 (%s, stock %d) but PostgreSQL holds name %q, stock %d", got.Name, got.Stock, truth.Name, truth.Stock)
	case err == nil && (got.Name != name || got.Stock != stock):
		t.Fatalf("PATCH answered 200 with name %q, stock %d; want the sale as changed", got.Name, got.Stock)
	case err != nil && surge.ErrorCode(err) != surge.CodeUnavailable:
		t.Fatalf("PATCH answered %v; want 200 or 503", err)
	case err != nil && !strings.Contains(err.Error(), "may have been applied"):
		t.Fatalf("PATCH whose commit answer was lost answered 503 %q (PostgreSQL holds the change: %v); want 200 with the sale as changed, or a 503 saying it may have been applied",
			err, applied)
	}
	if !applied {
		return
	}
	// The new epoch's live state, which a did not install, is built by
	// the leader: purchases go on with the new stock.
	eventually(t, 10*time.Second, "a purchase after the lost answer", func() error {
		out, _, err := reserve(b, sl.ID, surge.Purchase{UserID: "after", Quantity: 1})
		if err != nil {
			return err
		}
		if out[0].Code != surge.CodeReserved {
			return out[0].Err
		}
		return nil
	})
}
