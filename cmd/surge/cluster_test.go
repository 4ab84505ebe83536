package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// clusterArgs gives a test its own PostgreSQL schema and Redis prefix and
// returns the serve flags of a node on them. It fails, never skips, when
// the servers are down (scripts/services.sh starts them).
func clusterArgs(t *testing.T) []string {
	t.Helper()
	ns := servicetest.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, servicetest.PostgresURL(), postgres.Options{Schema: ns})
	if err != nil {
		t.Fatalf("PostgreSQL (run scripts/services.sh): %v", err)
	}
	db.Close()
	return []string{
		"--redis-url", servicetest.RedisURL(),
		"--postgres-url", servicetest.PostgresURL() + "&search_path=" + ns,
		"--redis-prefix", ns,
		"--cluster-lease-ttl", "2s",
		"--cluster-confirm-after", "2s",
	}
}

// TestClusterNodeKilled: two nodes serve one sale to one crowd; one is
// killed with SIGKILL mid-spike. Every 201 either node gave is in
// PostgreSQL, the other node keeps serving until the sale sells out, and
// the buyers whose answers died with the node get exactly one order when
// they retry their key on the survivor.
func TestClusterNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	const (
		stock   = 2000
		limit   = 3
		users   = 1000
		workers = 32
		pace    = 500 * time.Microsecond
	)
	args := clusterArgs(t)
	token := "cluster-admin-token"
	a := startProc(t, t.TempDir(), token, append(args, "--node-id", "a")...)
	b := startProc(t, t.TempDir(), token, append(args, "--node-id", "b")...)
	saleID := createSale(t, a.base, token, stock, limit)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(b.base + "/v1/sales/" + saleID)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b does not serve the sale created on a")
		}
		time.Sleep(20 * time.Millisecond)
	}

	rng := newRand(t)
	s := newShopper(t, saleID, stock, limit, users, rng)
	s.refusalsFinal = false // a refusal may count a killed node's reservation (see shopper)
	s.pace = pacer(t, pace)
	// An answer lost with the killed node leaves its reservation
	// unconfirmed until the leader reconciles it (lease and confirm-after
	// of 2s each): retries of that key answer 503 meanwhile.
	s.maxTries = 5000
	delay := time.Duration(200+rng.IntN(300)) * time.Millisecond
	killed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s.fire(b.base, workers/2, func() {
			<-killed
			time.Sleep(300 * time.Millisecond) // b serves on alone
		})
	})
	s.fire(a.base, workers/2, func() {
		time.Sleep(delay)
		if st := a.stop(t, syscall.SIGKILL, 10*time.Second); st.Success() {
			t.Errorf("surge exited successfully after SIGKILL: %v", st)
		}
		time.Sleep(100 * time.Millisecond) // and its clients go on trying
	})
	close(killed)
	wg.Wait()
	t.Logf("node a killed after %v: %s", delay, s.counters())

	// Units the killed node took in Redis for batches it never committed
	// come back once the leader reconciles (lease and confirm-after of 2s).
	reconciled(t, b.base, token, saleID, stock, 15*time.Second)
	// Every 201 so far, from either node, is durable.
	sale := s.verify(t, b.base, token, false)
	if t.Failed() {
		s.checkAnswers(t)
		return
	}
	if sale.Remaining == 0 {
		t.Errorf("sold out before the kill: it did not land mid-spike")
	}
	if s.dialErrs.Load()+s.broken.Load() == 0 {
		t.Errorf("no connection error at all: no client met the killed node")
	}

	// The survivor serves the rest of the crowd.
	s.pace = nil
	drained := s.drainFor(t, b.base, workers, 60*time.Second)
	s.topUp(t, b.base)
	t.Logf("final: %s", s.counters())
	sale = s.verify(t, b.base, token, drained)
	s.checkAnswers(t)
	if sale.Remaining != 0 || sale.Status != "sold_out" {
		t.Errorf("sale not sold out at the end: remaining %d, status %q", sale.Remaining, sale.Status)
	}
	if st := b.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
}

// reconciled waits until the sale's remaining stock equals the stock less
// the units its orders hold.
func reconciled(t *testing.T, base, token, saleID string, stock int64, within time.Duration) {
	t.Helper()
	c := client.New(base, token)
	deadline := time.Now().Add(within)
	// A match counts once it has held, unchanged, for settle: a client
	// that gave up on a purchase leaves it in flight in the node, which
	// takes its units in Redis before it commits the order, so one
	// matching read may come just before such a batch, and the next read
	// in the middle of it.
	const settle = 500 * time.Millisecond
	var (
		matched    bool
		since      time.Time
		lastRemain int64
		lastLive   int64
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var live int64
		err := c.Orders(ctx, saleID, func(o api.Order) error {
			if o.Status == "reserved" || o.Status == "paid" {
				live += o.Quantity
			}
			return nil
		})
		sale, err2 := c.Sale(ctx, saleID)
		cancel()
		switch {
		case err != nil || err2 != nil || sale.Remaining != stock-live:
			matched = false
		case !matched || sale.Remaining != lastRemain || live != lastLive:
			matched, since, lastRemain, lastLive = true, time.Now(), sale.Remaining, live
		case time.Since(since) >= settle:
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("remaining %d never matched the orders (%d live of %d): %v %v", sale.Remaining, live, stock, err, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterWaitingRoom: a buyer joins a sale's waiting room on one node
// and buys on another with the ticket: the queue lives in Redis and the
// ticket key is shared.
func TestClusterWaitingRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	args := append(clusterArgs(t), "--waiting-room-secret", "0123456789abcdef0123456789abcdef-shared")
	token := "cluster-admin-token"
	a := startProc(t, t.TempDir(), token, append(args, "--node-id", "a")...)
	b := startProc(t, t.TempDir(), token, append(args, "--node-id", "b")...)
	do := func(method, url string, hdr map[string]string, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, _ := do("POST", a.base+"/v1/sales", map[string]string{"Authorization": "Bearer " + token},
		`{"id":"queued","name":"queued","stock":5,"waiting_room":{"admit_per_second":1000,"order":"fifo","ticket_seconds":60}}`)
	if code != http.StatusCreated {
		t.Fatalf("create sale: %d", code)
	}
	var first map[string]any
	for _, u := range []string{"alice", "bob"} {
		code, m := do("POST", a.base+"/v1/sales/queued/queue", map[string]string{"X-User-ID": u}, "")
		if code != http.StatusCreated {
			t.Fatalf("join as %s on a: %d %v", u, code, m)
		}
		if first == nil {
			first = m
		}
	}
	ticket, _ := first["ticket"].(string)
	// b sees alice's place, from the same queue.
	var m map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, m = do("GET", b.base+"/v1/sales/queued/queue", map[string]string{"Waiting-Room-Ticket": ticket}, "")
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != http.StatusOK || m["status"] != "admitted" {
		t.Fatalf("alice's place read on b: %d %v", code, m)
	}
	// Joining again on b keeps alice's place.
	if code, again := do("POST", b.base+"/v1/sales/queued/queue", map[string]string{"X-User-ID": "alice"}, ""); code != http.StatusOK || again["admitted_at"] != first["admitted_at"] {
		t.Errorf("alice joining again on b: %d %v, first %v", code, again, first)
	}
	// The ticket buys on b; without it b refuses.
	if code, m := do("POST", b.base+"/v1/sales/queued/purchases", map[string]string{"X-User-ID": "alice", "Waiting-Room-Ticket": ticket}, ""); code != http.StatusCreated {
		t.Errorf("purchase with the ticket on b: %d %v", code, m)
	}
	if code, m := do("POST", b.base+"/v1/sales/queued/purchases", map[string]string{"X-User-ID": "carol"}, ""); code != http.StatusForbidden || m["error"].(map[string]any)["code"] != "not_admitted" {
		t.Errorf("purchase without a ticket: %d %v", code, m)
	}
}

// TestClusterStalledPostgresAnswers: with PostgreSQL stalled (every
// connection open, no byte through: a network path that hangs, not one
// that is cut), every request path of a node still answers within its
// timeout, a 503 with Retry-After the client can retry, never a
// connection closed without a word.
func TestClusterStalledPostgresAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	// A sale change alone: with the other requests in flight, its
	// connection is a new one, whose dial the connect timeout cuts.
	for _, only := range [][]string{{"patch"}, {"purchase", "order", "cancel", "export", "archive", "pay"}} {
		t.Run(strings.Join(only, "+"), func(t *testing.T) { stalledPostgres(t, only) })
	}
}

func stalledPostgres(t *testing.T, only []string) {
	const secret = "whsec_crash_mixed_0123456789"
	args := clusterArgs(t)
	pgp := servicetest.NewProxy(t, "127.0.0.1:5432")
	i := slices.Index(args, "--postgres-url") + 1
	args[i] = strings.Replace(args[i], "127.0.0.1:5432", pgp.Addr, 1)
	token := "stalled-pg-token"
	p := startProc(t, t.TempDir(), token, append(args, "--node-id", "a", "--payment-webhook-secret", secret)...)
	c := client.New(p.base, token)
	ctx := context.Background()
	sale, err := c.CreateSale(ctx, api.NewSale{Name: new("stall"), Stock: new(int64(100)), PerUserLimit: new(int64(2)),
		HoldSeconds: new(int64(3600)), PriceCents: new(int64(100)), Currency: new("EUR")})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	o1, err := purchase(ctx, hc, p.base, sale.ID, intent{user: "u1", key: "k1", qty: 1})
	if err != nil || o1.status != http.StatusCreated {
		t.Fatalf("purchase: %+v %v", o1, err)
	}
	ended, err := c.CreateSale(ctx, api.NewSale{Name: new("ended"), StartsAt: new(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)), Stock: new(int64(5)), PerUserLimit: new(int64(1))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSale(ctx, ended.ID, api.SalePatch{EndsAt: new(api.EndsAt(time.Now().UTC().Format(time.RFC3339Nano)))}); err != nil {
		t.Fatal(err)
	}
	pgp.Pause()
	defer pgp.Resume()

	// Above every timeout of the path: the call timeout (2 s), a sale
	// change's 20 s.
	const callBound, steerBound = 10 * time.Second, 35 * time.Second
	type req struct{ name, method, path, user, body string }
	reqs := []req{
		{"purchase", "POST", "/v1/sales/" + sale.ID + "/purchases", "u2", `{"quantity":1}`},
		{"order", "GET", "/v1/orders/" + o1.order.ID, "u1", ""},
		{"cancel", "POST", "/v1/orders/" + o1.order.ID + "/cancel", "u1", ""},
		{"export", "GET", "/v1/sales/" + sale.ID + "/orders", "", ""},
		{"patch", "PATCH", "/v1/sales/" + sale.ID, "", `{"stock":101}`},
		{"archive", "POST", "/v1/sales/" + ended.ID + "/archive", "", ""},
		{"pay", "POST", "/v1/orders/" + o1.order.ID + "/pay", "", ""},
	}
	reqs = slices.DeleteFunc(reqs, func(r req) bool { return !slices.Contains(only, r.name) })
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Go(func() {
			bound := callBound
			if r.name == "patch" || r.name == "archive" {
				bound = steerBound
			}
			slow := &http.Client{Timeout: bound + 5*time.Second}
			rq, _ := http.NewRequest(r.method, p.base+r.path, strings.NewReader(r.body))
			if r.body != "" {
				rq.Header.Set("Content-Type", "application/json")
			}
			if r.user != "" {
				rq.Header.Set("X-User-ID", r.user)
			} else {
				rq.Header.Set("Authorization", "Bearer "+token)
			}
			start := time.Now()
			res, err := slow.Do(rq)
			took := time.Since(start)
			if err != nil {
				t.Errorf("%s %s while PostgreSQL stalls: no answer after %v (%v): the client got neither a 503 to retry nor any answer", r.method, r.path, took.Round(time.Millisecond), err)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			t.Logf("%s: %d after %v: %.120s", r.name, res.StatusCode, took.Round(time.Millisecond), b)
			if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
				t.Errorf("%s %s while PostgreSQL stalls: 503 without Retry-After", r.method, r.path)
			}
			if took > bound {
				t.Errorf("%s %s while PostgreSQL stalls: answered %d only after %v", r.method, r.path, res.StatusCode, took.Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
}
