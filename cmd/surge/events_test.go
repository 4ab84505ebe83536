package main

import (
	"context"
	"encoding/json"
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
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
)

// TestCrashEvents kills the real binary (SIGKILL) twice mid-spike while
// it publishes order events to NATS JetStream; after a restart and the
// drain, every committed order change (the export's orders: reserved,
// then paid or cancelled) has exactly one message in the stream.
func TestCrashEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	const (
		stock   = 2000
		limit   = 3
		users   = 1000
		workers = 48
		kills   = 2
		pace    = 500 * time.Microsecond
	)
	nc, _, _ := servicetest.NATS(t)
	dataDir, token := t.TempDir(), "events-admin-token"
	nats := []string{"--nats-url", servicetest.NATSURL()}
	rng := newRand(t)

	p := startProc(t, dataDir, token, nats...)
	saleID := createSale(t, p.base, token, stock, limit)
	// The contract's stream, shared with other runs: this sale's subjects
	// are this test's own (sale ids are random).
	filter := saleSubjects(t, nc, saleID)
	s := newShopper(t, saleID, stock, limit, users, rng)
	s.pace = pacer(t, pace)
	for i := range kills {
		delay := time.Duration(150+rng.IntN(451)) * time.Millisecond
		s.fire(p.base, workers, func() {
			time.Sleep(delay)
			if st := p.stop(t, syscall.SIGKILL, 10*time.Second); st.Success() {
				t.Errorf("surge exited successfully after SIGKILL: %v", st)
			}
		})
		t.Logf("kill %d after %v: %s", i+1, delay, s.counters())
		p = startProc(t, dataDir, token, nats...)
	}
	s.pace = nil
	drained := s.drainFor(t, p.base, workers, 15*time.Second)
	s.verify(t, p.base, token, drained)
	if t.Failed() {
		return
	}

	settleSome(t, p.base, token, saleID, 40)
	orders := exportOrders(t, p.base, token, saleID)
	msgs := wantOneMessageEach(t, nc, filter, orders, true)
	t.Logf("%d orders, %d messages", len(orders), len(msgs))
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
}

// settleSome pays half of n of the sale's orders and cancels the other
// half: their events follow the reserved ones.
func settleSome(t *testing.T, base, token, saleID string, n int) {
	t.Helper()
	i := 0
	for _, o := range exportOrders(t, base, token, saleID) {
		if o.Status != "reserved" {
			continue
		}
		path, user := "/v1/orders/"+o.ID+"/pay", ""
		if i%2 == 1 {
			path, user = "/v1/orders/"+o.ID+"/cancel", o.UserID
		}
		post(t, base+path, token, user)
		if i++; i == n {
			break
		}
	}
}

// TestClusterEvents: two nodes over one PostgreSQL both run the relay
// (--nats-url with --postgres-url); one of them, the holder of the outbox
// lease, publishes. It is killed (SIGKILL) or stopped (SIGTERM, the
// handover) mid-spike: the other takes the lease over and publishes on,
// and in the end every change committed by either node has exactly one
// message in SURGE_ORDERS, each order's events in the order of its
// changes.
func TestClusterEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	t.Run("SIGKILL", func(t *testing.T) { clusterEvents(t, syscall.SIGKILL) })
	t.Run("SIGTERM", func(t *testing.T) { clusterEvents(t, syscall.SIGTERM) })
}

func clusterEvents(t *testing.T, sig syscall.Signal) {
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
	if st := nodes[killed].stop(t, sig, 15*time.Second); st.Success() != (sig == syscall.SIGTERM) {
		t.Errorf("surge exited with %v after %v", st, sig)
	}
	t.Logf("stopped the publishing node %s (%v) after %d messages", killed, sig, published())
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

// waitUntil polls cond until it holds, failing t after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// saleSubjects returns the filter of the sale's subjects in the contract's
// stream, shared with other runs (sale ids are random, so they are the
// test's own), and purges them when the test ends.
func saleSubjects(t *testing.T, nc *nats.Conn, saleID string) string {
	filter := outbox.DefaultSubject + "." + saleID + ".>"
	t.Cleanup(func() {
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if st, err := js.Stream(ctx, outbox.DefaultStream); err == nil {
			_ = st.Purge(ctx, jetstream.WithPurgeSubject(filter))
		}
	})
	return filter
}

// wantOneMessageEach waits (a minute at most) for the stream to hold a
// message per committed change of orders (reserved, then its status if it
// left reserved) and wants exactly one each, with the event id as
// Nats-Msg-Id, an order's events in the order of its changes, and, when
// inSeq, all of them in seq order.
func wantOneMessageEach(t *testing.T, nc *nats.Conn, filter string, orders map[string]api.Order, inSeq bool) []servicetest.StreamMsg {
	t.Helper()
	want := map[string]bool{}
	for _, o := range orders {
		want[o.ID+":reserved"] = true
		if o.Status != "reserved" {
			want[o.ID+":"+o.Status] = true
		}
	}
	deadline := time.Now().Add(time.Minute)
	var msgs []servicetest.StreamMsg
	for {
		msgs = servicetest.ReadStream(t, nc, outbox.DefaultStream, filter)
		if len(msgs) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]int{}
	reservedAt := map[string]int{} // an order's reserved event's place in the stream
	var lastSeq int64
	for i, m := range msgs {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("message %s: %v", m.Data, err)
		}
		seen[e.ID]++
		if m.MsgID != e.ID {
			t.Errorf("Nats-Msg-Id %q for event %q", m.MsgID, e.ID)
		}
		if e.Event == "reserved" {
			reservedAt[e.Order.ID] = i + 1
		} else if reservedAt[e.Order.ID] == 0 {
			t.Errorf("event %s before its order's reserved event", e.ID)
		}
		if inSeq && e.Seq <= lastSeq {
			t.Errorf("event %s (seq %d) after seq %d", e.ID, e.Seq, lastSeq)
		}
		lastSeq = e.Seq
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s: %d messages, want 1", id, seen[id])
		}
	}
	for id, n := range seen {
		if !want[id] {
			t.Errorf("event %s (%d messages) matches no committed change", id, n)
		}
	}
	return msgs
}

// post sends an order action as the admin, or as user when set.
func post(t *testing.T, url, token, user string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-User-ID", user)
	} else {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, res.Status)
	}
}
