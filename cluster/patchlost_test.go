package cluster_test

import (
	"context"
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
	eventuallyLeads(t, b, 10*time.Second, "b leads")
	cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour, NoExpiry: true}
	a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.addr+"/test?sslmode=disable", cfg)
	defer a.Close()
	sl := mustSale(t, a, "lostpatch", 10, 2)

	px.armed.Store(true)
	name, stock := "victim-name", int64(20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := a.UpdateSale(ctx, sl.ID, surge.SalePatch{Name: &name, Stock: &stock}, surge.At(time.Now()))
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

// TestPatchLostAnswerSubMillisecondEnd: as above, with an ends_at finer
// than a millisecond, and the COMMIT's answer lost only once PostgreSQL
// sent it (the change applied for sure). A sale's end is kept to the
// millisecond (validate.go, checkEnd), and the read-back compared the
// PATCH's own ends_at with it: never equal, so the change was answered
// 503 "may have been applied" (true but needless; a PATCH of only the
// name was answered as made).
func TestPatchLostAnswerSubMillisecondEnd(t *testing.T) {
	ns := namespace(t)
	px := newCutProxy(t, "127.0.0.1:5432", "victim-name")
	px.then, px.afterReply = []byte("commit"), true
	cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour, NoExpiry: true}
	// b leads: a's own loop meets no cut.
	b := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond})
	defer b.Close()
	eventuallyLeads(t, b, 10*time.Second, "b leads")
	a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.addr+"/test?sslmode=disable", cfg)
	defer a.Close()
	sl := mustSale(t, a, "lostend", 10, 2)

	px.armed.Store(true)
	name := "victim-name"
	ends := time.Now().Add(time.Hour).Truncate(time.Millisecond).Add(123456 * time.Nanosecond) // 0.123456 ms past
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := a.UpdateSale(ctx, sl.ID, surge.SalePatch{Name: &name, EndsAt: &ends}, surge.At(time.Now()))
	if !px.fired.Load() {
		t.Fatalf("the proxy never cut the PATCH's COMMIT: %+v %v", got, err)
	}
	truth, terr := b.Sale(ctx, sl.ID)
	if terr != nil || truth.Name != name || !truth.EndsAt.Equal(ends.UTC().Truncate(time.Millisecond)) {
		t.Fatalf("PostgreSQL holds %+v (%v); want the change, committed before its answer was lost", truth, terr)
	}
	if err != nil {
		t.Fatalf("PATCH of ends_at %s whose COMMIT's answer was lost after PostgreSQL applied it (it holds ends_at %s): %v; want 200 with the sale as changed",
			ends.UTC().Format(time.RFC3339Nano), truth.EndsAt.Format(time.RFC3339Nano), err)
	}
	if got.Name != name || !got.EndsAt.Equal(truth.EndsAt) {
		t.Errorf("PATCH answered %+v; want the sale as PostgreSQL holds it, %+v", got, truth)
	}
}
