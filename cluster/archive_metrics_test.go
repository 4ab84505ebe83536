package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/metrics"
)

// TestArchivedSaleLeavesScrapeCluster: a sale archived on one node keeps
// no series on any node's /metrics, the node that archived it and the one
// that only hears of it. They stayed for good, about 40 series a sale.
func TestArchivedSaleLeavesScrapeCluster(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	clk := testclock.New(time.Now().UTC().Truncate(time.Millisecond))
	type node struct {
		e   *engine.Engine
		url string
	}
	open := func(i int) node {
		reg, m := newMetrics(t)
		s := openStore(t, ns, cluster.Config{NodeID: fmt.Sprintf("n%d", i)})
		e, err := engine.Open(ctx, s, engine.Config{Now: clk.Now, SyncInterval: 50 * time.Millisecond, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		reg.MustRegister(metrics.NewSaleCollector(e.SaleFigures))
		srv := httptest.NewServer(metrics.Handler(reg))
		t.Cleanup(func() { srv.Close(); e.Close(); s.Close() })
		return node{e, srv.URL}
	}
	nodes := []node{open(0), open(1)}
	// series counts the lines of a node's scrape about sale id.
	series := func(n node, id string) int {
		resp, err := http.Get(n.url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(body), fmt.Sprintf(`sale=%q`, id))
	}

	name, stock, ends := "Drop", int64(5), clk.Now().Add(time.Hour)
	for _, id := range []string{"old", "keep"} {
		if _, err := nodes[0].e.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, EndsAt: &ends}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "every node serves both sales", func() error {
		for i, n := range nodes {
			if got := series(n, "old"); got < 20 {
				return fmt.Errorf("node %d exports %d series of sale old", i, got)
			}
		}
		return nil
	})
	out, err := nodes[1].e.Purchase(ctx, engine.PurchaseRequest{SaleID: "old", Purchase: surge.Purchase{UserID: "alice", Quantity: 1}})
	if err != nil || out.Code != surge.CodeReserved {
		t.Fatalf("purchase: %+v %v", out, err)
	}
	if _, err := nodes[1].e.Pay(ctx, out.Order.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	if _, err := nodes[0].e.Archive(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "every node drops the archived sale", func() error {
		for i, n := range nodes {
			if page, _ := n.e.SalesPage(false, nil, 10); len(page) != 1 {
				return fmt.Errorf("node %d lists %d live sales, want 1", i, len(page))
			}
		}
		return nil
	})
	for i, n := range nodes {
		if got := series(n, "old"); got != 0 {
			t.Errorf("node %d's /metrics still has %d lines of sale old after it was archived; want none (an archived sale's series stay forever)", i, got)
		}
		if got := series(n, "keep"); got < 20 {
			t.Errorf("node %d's /metrics has %d lines of the live sale keep; want all of its series", i, got)
		}
	}
}
