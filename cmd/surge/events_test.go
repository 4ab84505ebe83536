package main

import (
	"context"
	"encoding/json"
	"net/http"
	"syscall"
	"testing"
	"time"

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

	// Some orders are paid and some cancelled: their events follow.
	i := 0
	for _, o := range exportOrders(t, p.base, token, saleID) {
		path, user := "/v1/orders/"+o.ID+"/pay", ""
		if i%2 == 1 {
			path, user = "/v1/orders/"+o.ID+"/cancel", o.UserID
		}
		post(t, p.base+path, token, user)
		if i++; i == 40 {
			break
		}
	}
	orders := exportOrders(t, p.base, token, saleID)
	want := map[string]bool{}
	for _, o := range orders {
		want[o.ID+":reserved"] = true
		if o.Status != "reserved" {
			want[o.ID+":"+o.Status] = true
		}
	}

	// The relay drains: the stream ends up with one message per change.
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
	var lastSeq int64
	for _, m := range msgs {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("message %s: %v", m.Data, err)
		}
		seen[e.ID]++
		if m.MsgID != e.ID {
			t.Errorf("Nats-Msg-Id %q for event %q", m.MsgID, e.ID)
		}
		if e.Seq <= lastSeq {
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
	t.Logf("%d orders, %d events, %d messages", len(orders), len(want), len(msgs))
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("surge exited with %v after SIGTERM", st)
	}
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
