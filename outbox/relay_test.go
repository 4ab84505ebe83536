package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

var t0 = time.Now().UTC().Truncate(time.Millisecond)

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createSale(t testing.TB, s surge.Store, id string, stock int64) {
	t.Helper()
	name, limit, hold := "Sale "+id, int64(2), int64(60)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, HoldSeconds: &hold}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(t.Context(), sl); err != nil {
		t.Fatal(err)
	}
}

// reserve buys n single units of sale in batches of batch, buyers prefix0…
func reserve(t testing.TB, s surge.Store, sale, prefix string, n, batch int) []surge.Order {
	t.Helper()
	var orders []surge.Order
	for i := 0; i < n; i += batch {
		var ps []surge.Purchase
		for j := i; j < min(n, i+batch); j++ {
			ps = append(ps, surge.Purchase{UserID: fmt.Sprintf("%s%d", prefix, j), Quantity: 1})
		}
		out, _, err := s.Reserve(t.Context(), sale, ps, surge.At(t0))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			if o.Code != surge.CodeReserved {
				t.Fatalf("reserve: %+v", o)
			}
			orders = append(orders, o.Order)
		}
	}
	return orders
}

// run starts a relay of src and stops it when the test ends.
func run(t *testing.T, src surge.Outbox, natsURL, stream, subject string, m *metrics.Outbox) {
	t.Helper()
	t.Cleanup(start(t, src, natsURL, stream, subject, m))
}

// runUntil starts a relay of src and returns what stops it (also called
// when the test ends).
func runUntil(t *testing.T, src surge.Outbox, natsURL, stream, subject string) func() {
	t.Helper()
	stop := sync.OnceFunc(start(t, src, natsURL, stream, subject, nil))
	t.Cleanup(stop)
	return stop
}

func start(t testing.TB, src surge.Outbox, natsURL, stream, subject string, m *metrics.Outbox) (stop func()) {
	t.Helper()
	nc, err := outbox.Connect(natsURL, "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := outbox.New(nc, src, outbox.Config{Stream: stream, Subject: subject, Metrics: m, LagEvery: 10 * time.Millisecond,
		Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.RunUntil(ctx, context.Background()) })
	return func() { cancel(); wg.Wait(); nc.Close() }
}

// drained waits until src's outbox is empty.
func drained(t testing.TB, src surge.Outbox) { drainedWithin(t, src, time.Minute) }

func drainedWithin(t testing.TB, src surge.Outbox, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n, _, err := src.OutboxBacklog(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d events", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantStream wants the stream to hold exactly one message per change of
// orders (reserved, then its status if it left reserved), each sale's in
// order, with the contract's subject, header and body.
func wantStream(t *testing.T, msgs []servicetest.StreamMsg, subject string, orders []surge.Order) {
	t.Helper()
	want := map[string]surge.Order{}
	for _, o := range orders {
		r := o
		r.Status = surge.OrderReserved
		want[o.ID+":reserved"] = r
		if o.Status != surge.OrderReserved {
			want[o.ID+":"+string(o.Status)] = o
		}
	}
	seen := map[string]bool{}
	lastSeq := map[string]int64{}
	for _, m := range msgs {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("body %s: %v", m.Data, err)
		}
		if m.MsgID != e.ID {
			t.Errorf("Nats-Msg-Id %q, body id %q", m.MsgID, e.ID)
		}
		if seen[e.ID] {
			t.Errorf("event %s twice in the stream", e.ID)
		}
		seen[e.ID] = true
		if wantSubject := subject + "." + e.SaleID + "." + e.Event; m.Subject != wantSubject {
			t.Errorf("subject %q, want %q", m.Subject, wantSubject)
		}
		if e.Seq <= lastSeq[e.SaleID] {
			t.Errorf("event %s (seq %d) after seq %d of its sale", e.ID, e.Seq, lastSeq[e.SaleID])
		}
		lastSeq[e.SaleID] = e.Seq
		o, ok := want[e.ID]
		if !ok {
			t.Errorf("unexpected event %s", e.ID)
			continue
		}
		if e.Order.ID != o.ID || e.Order.Status != string(o.Status) || e.Order.UserID != o.UserID || e.Order.Quantity != o.Quantity ||
			e.Order.SaleID != o.SaleID || e.Order.CreatedAt != surge.FormatTime(o.CreatedAt) {
			t.Errorf("event %s: order %+v, want %+v", e.ID, e.Order, o)
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("event %s missing from the stream", id)
		}
	}
}

// TestRelayPublishesEveryChange: reservations in batches, payments,
// cancels and expiries of two sales all reach the stream once, in order.
func TestRelayPublishesEveryChange(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 5000)
	createSale(t, s, "b", 5000)
	a := reserve(t, s, "a", "u", 3000, 200)
	b := reserve(t, s, "b", "v", 300, 7)
	for i := range 100 {
		o, err := s.Pay(t.Context(), a[i].ID, t0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		a[i] = o
		if o, err = s.Cancel(t.Context(), b[i].ID, t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		b[i] = o
	}
	run(t, s, servicetest.NATSURL(), stream, subject, nil)
	expired, err := s.Expire(t.Context(), t0.Add(time.Hour)) // while the relay runs
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]surge.Order{}
	for _, o := range expired {
		byID[o.ID] = o
	}
	all := append(a, b...)
	for i, o := range all {
		if x, ok := byID[o.ID]; ok {
			all[i] = x
		}
	}
	drained(t, s)
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, all)
}

// flaky fails the first EventsPublished: the relay crashed between the
// acknowledgements and the delete.
type flaky struct {
	surge.Outbox
	failed atomic.Bool
}

func (f *flaky) EventsPublished(ctx context.Context, evs []surge.OrderEvent) error {
	if !f.failed.Swap(true) {
		return errors.New("injected: the delete failed")
	}
	return f.Outbox.EventsPublished(ctx, evs)
}

// TestRelayRepeatDropped: events published twice (their removal failed
// after JetStream acknowledged them) are in the stream once.
func TestRelayRepeatDropped(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 100)
	orders := reserve(t, s, "a", "u", 50, 10)
	f := &flaky{Outbox: s}
	reg := prometheus.NewRegistry()
	m, err := metrics.NewOutbox(reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, f, servicetest.NATSURL(), stream, subject, m)
	drained(t, s)
	if !f.failed.Load() {
		t.Fatal("the injected failure did not happen")
	}
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
	if got := figure(t, reg, "surge_outbox_published_total"); got != 50 {
		t.Errorf("surge_outbox_published_total = %v, want 50", got)
	}
	if got := figure(t, reg, "surge_outbox_publish_failures_total"); got < 1 {
		t.Errorf("surge_outbox_publish_failures_total = %v, want at least 1", got)
	}
}

// figure reads a metric without labels from reg.
func figure(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRelayNATSDown: with NATS unreachable purchases go on as before, the
// outbox grows and the lag figures show it; when NATS returns the outbox
// drains and every event is in the stream once.
func TestRelayNATSDown(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	proxy := servicetest.NewProxy(t, strings.TrimPrefix(servicetest.NATSURL(), "nats://"))
	reg := prometheus.NewRegistry()
	m, err := metrics.NewOutbox(reg)
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, s, "a", 10000)
	run(t, s, "nats://"+proxy.Addr, stream, subject, m)
	orders := reserve(t, s, "a", "u", 100, 10)
	drained(t, s)

	proxy.Cut()
	orders = append(orders, reserve(t, s, "a", "w", 2000, 100)...)
	waitFor(t, "the lag figure to show the outbox", func() bool {
		return figure(t, reg, "surge_outbox_lag_events") == 2000 && figure(t, reg, "surge_outbox_oldest_age_seconds") > 0
	})
	if n, _, err := s.OutboxBacklog(t.Context()); err != nil || n != 2000 {
		t.Fatalf("backlog with NATS down = %d, %v; want 2000", n, err)
	}

	proxy.Restore()
	drained(t, s)
	waitFor(t, "the lag figure to fall to 0", func() bool { return figure(t, reg, "surge_outbox_lag_events") == 0 })
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
