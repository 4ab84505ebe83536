package dashboard

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestClusterPageSaysWhoseFiguresItShows: in cluster mode a node's page
// shows the sale's units (every node's sales, from Redis) beside this
// node's own counters (outcomes, rates, latency, queue: its registry's),
// without saying so: with three nodes behind a balancer, a sold-out sale
// of 1,000 units showed 100 % sold beside "reserved 333", which an
// operator reads as 667 units lost. The page must say which figures are
// this node's.
func TestClusterPageSaysWhoseFiguresItShows(t *testing.T) {
	c := newContract(t, true)
	c.stock.WithLabelValues("drop").Set(1000)
	c.remaining.WithLabelValues("drop").Set(0)
	c.purchases.WithLabelValues("drop", "reserved").Add(333)
	c.breaker.WithLabelValues("redis").Set(0)
	c.leader.Set(0)
	d := New(Config{Gatherer: c.reg, AdminToken: testToken, Interval: 200 * time.Millisecond})
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })

	ctx := browser(t)
	signIn(t, ctx, srv.URL, "drop")
	card := fmt.Sprintf(`section.sale[data-sale=%q]`, "drop")
	// What an operator reads on the card: the visible text only.
	var seen string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		seen = pageInnerText(t, ctx, card)
		if strings.Contains(seen, "333") && strings.Contains(seen, "this node") {
			return
		}
	}
	t.Errorf("in cluster mode the card shows the sale's units and this node's reserved 333 without saying whose: %q", seen)
}
