package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
)

// TestClusterEventsSIGTERM: TestClusterEvents with the relay holder stopped
// by SIGTERM (the handover) instead of killed.
func TestClusterEventsSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	nc, _, _ := servicetest.NATS(t)
	args := append(clusterArgs(t), "--nats-url", servicetest.NATSURL())
	ns := args[slices.Index(args, "--redis-prefix")+1]
	token := "cluster-events-token"
	nodes := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		nodes[id] = startProc(t, t.TempDir(), token, append(args, "--node-id", id)...)
	}
	saleID := createSale(t, nodes["a"].base, token, 3000, 3)
	filter := saleSubjects(t, nc, saleID)

	// Buyers on both nodes until told to stop; their answers do not
	// matter here (the export is the truth of what committed).
	stop := make(chan struct{})
	var buyers sync.WaitGroup
	hc := &http.Client{Timeout: 5 * time.Second}
	for w := range 16 {
		buyers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				base := nodes[[]string{"a", "b"}[(w+i)%2]].base
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/"+saleID+"/purchases", nil)
				req.Header.Set("X-User-ID", fmt.Sprintf("u%d-%d", w, i%400))
				if res, err := hc.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				} else {
					time.Sleep(10 * time.Millisecond) // the killed node
				}
			}
		})
	}
	stopBuyers := sync.OnceFunc(func() { close(stop); buyers.Wait() })
	defer stopBuyers()

	db := servicetest.Conn(t, ns)
	holder := func() string {
		var h string
		err := db.QueryRow(context.Background(), `SELECT holder FROM leases WHERE name = 'outbox' AND expires_at > now()`).Scan(&h)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		// The node id, without the store's own suffix (cluster.leaseHolder).
		if i := strings.LastIndexByte(h, '/'); i >= 0 {
			h = h[:i]
		}
		return h
	}
	// Once the holder has published part of the spike, it is killed.
	published := func() int { return len(servicetest.ReadStream(t, nc, outbox.DefaultStream, filter)) }
	waitUntil(t, "the outbox lease holder to publish 200 events", time.Minute, func() bool {
		return holder() != "" && published() >= 200
	})
	killed := holder()
	survivor := map[string]string{"a": "b", "b": "a"}[killed]
	if st := nodes[killed].stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
	t.Logf("stopped (SIGTERM) the publishing node %s after %d messages", killed, published())
	waitUntil(t, "the survivor to take the outbox lease", time.Minute, func() bool { return holder() == survivor })
	stopBuyers()

	base := nodes[survivor].base
	settleSome(t, base, token, saleID, 40)
	orders := exportOrders(t, base, token, saleID)
	msgs := wantOneMessageEach(t, nc, filter, orders, false)
	t.Logf("%d orders, %d messages", len(orders), len(msgs))
	if st := nodes[survivor].stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
}
