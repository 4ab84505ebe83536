package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// A sale whose archive committed in PostgreSQL but whose COMMIT's answer
// was lost was answered 503 "archiving the sale failed; retry shortly",
// and the retry got 404 sale_not_found: the operator was never told the
// sale was archived, nor its final figures. It is answered archived.
func TestArchiveLostCommitAnswer(t *testing.T) {
	ns := namespace(t)
	id := "victim-archive"
	px := newCutProxy(t, "127.0.0.1:5432", id)
	px.then, px.afterReply = []byte("commit"), true
	b := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond})
	defer b.Close()
	eventuallyLeads(t, b, 10*time.Second, "b leads")
	cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour, NoExpiry: true}
	a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.addr+"/test?sslmode=disable", cfg)
	defer a.Close()

	name, stock := "Drop", int64(5)
	start, ends, hold := time.Now().Add(-time.Minute), time.Now().Add(time.Hour), int64(3600)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &ends, HoldSeconds: &hold}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, a, sl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	px.armed.Store(true)
	got, err := a.ArchiveSale(ctx, id, ends.Add(time.Minute))
	if !px.fired.Load() {
		t.Fatalf("the proxy never cut the archive's COMMIT: %+v %v", got, err)
	}
	archived, aerr := b.ArchivedSales(ctx)
	var truth *surge.ArchivedSale
	for i := range archived {
		if archived[i].ID == id {
			truth = &archived[i]
		}
	}
	if aerr != nil || truth == nil {
		t.Fatalf("PostgreSQL's archived sales %+v (%v); want %s, committed before its answer was lost", archived, aerr, id)
	}
	if err != nil {
		t.Fatalf("archive whose COMMIT's answer was lost after PostgreSQL committed it: %v; want it answered archived", err)
	}
	if got.ID != id || got.Remaining != truth.Remaining || !got.ArchivedAt.Equal(truth.ArchivedAt) {
		t.Errorf("archive answered %+v; want the archived sale as PostgreSQL holds it, %+v", got, *truth)
	}
}
