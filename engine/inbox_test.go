package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// stubInbox is an InboxManager whose answers the test sets, and which
// records what the owner reported.
type stubInbox struct {
	mu     sync.Mutex
	admit  bool
	cutoff time.Time
	taken  [][2]int // shed, left of each batch
}

func (q *stubInbox) Admit(int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.admit
}

func (q *stubInbox) Begin(time.Time) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cutoff
}

func (q *stubInbox) Taken(_ time.Time, shed, left int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.taken = append(q.taken, [2]int{shed, left})
}

// TestInboxAdmitGuardsOnlyTheSlowPath: an inbox manager that refuses
// answers overloaded before the purchase queues, reserves nothing, and
// never stands in the way of the sold-out fast path.
func TestInboxAdmitGuardsOnlyTheSlowPath(t *testing.T) {
	q := &stubInbox{admit: false}
	cfg := testConfig(fixedClock())
	cfg.InboxManager = func() InboxManager { return q }
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 1, 1))
	ctx := context.Background()

	if _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "a", Quantity: 1}}); !surge.HasCode(err, surge.CodeOverloaded) {
		t.Fatalf("purchase refused by the inbox: %v, want overloaded", err)
	}
	if got := e.Stats().Shed; got != 1 {
		t.Errorf("Stats().Shed = %d, want 1", got)
	}
	q.mu.Lock()
	q.admit = true
	q.mu.Unlock()
	mustReserve(t, e, "s", surge.Purchase{UserID: "a", Quantity: 1})
	q.mu.Lock()
	q.admit = false
	q.mu.Unlock()
	out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "b", Quantity: 1}})
	if err != nil || out.Code != surge.CodeSoldOut {
		t.Fatalf("sold-out purchase with the inbox refusing: (%v, %v), want sold_out", out.Code, err)
	}
}

// TestInboxShedsBeforeCutoff: when the owner takes a batch, purchases
// queued before the manager's cutoff are answered overloaded and the
// batch is filled from the rest; the manager hears how many were shed and
// left.
func TestInboxShedsBeforeCutoff(t *testing.T) {
	g := newGate()
	st := &hookStore{Store: openStore(t, t.TempDir())}
	st.before = func(n int64) {
		if n == 1 {
			g.wait()
		}
	}
	q := &stubInbox{admit: true}
	cfg := testConfig(fixedClock())
	cfg.InboxManager = func() InboxManager { return q }
	e := openEngine(t, st, cfg)
	defer g.open()
	mustCreate(t, e, input("s", 10, 1))
	ctx := context.Background()

	// a's batch holds the store while b and c queue, then d.
	a := goPurchase(ctx, e, "s", surge.Purchase{UserID: "a", Quantity: 1})
	<-g.entered
	b := goPurchase(ctx, e, "s", surge.Purchase{UserID: "b", Quantity: 1})
	c := goPurchase(ctx, e, "s", surge.Purchase{UserID: "c", Quantity: 1})
	waitFor(t, "b and c queued", func() bool { return inboxLen(e, "s") == 2 })
	cutoff := time.Now()
	time.Sleep(2 * time.Millisecond) // d is queued strictly after the cutoff
	d := goPurchase(ctx, e, "s", surge.Purchase{UserID: "d", Quantity: 1})
	waitFor(t, "d queued", func() bool { return inboxLen(e, "s") == 3 })
	q.mu.Lock()
	q.cutoff = cutoff
	q.mu.Unlock()
	g.open()

	if r := <-a; r.err != nil || r.out.Code != surge.CodeReserved {
		t.Fatalf("a: (%v, %v), want reserved", r.out.Code, r.err)
	}
	for name, ch := range map[string]<-chan answer{"b": b, "c": c} {
		if r := <-ch; !surge.HasCode(r.err, surge.CodeOverloaded) {
			t.Errorf("%s, queued before the cutoff: (%v, %v), want overloaded", name, r.out.Code, r.err)
		}
	}
	if r := <-d; r.err != nil || r.out.Code != surge.CodeReserved {
		t.Fatalf("d, queued after the cutoff: (%v, %v), want reserved", r.out.Code, r.err)
	}
	if got := remaining(t, e, "s"); got != 8 {
		t.Errorf("remaining %d, want 8 (a and d)", got)
	}
	if got := e.Stats().Shed; got != 2 {
		t.Errorf("Stats().Shed = %d, want 2", got)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	want := [][2]int{{0, 0}, {2, 0}} // a's batch; then b, c shed and d taken
	if len(q.taken) != len(want) || q.taken[0] != want[0] || q.taken[1] != want[1] {
		t.Errorf("Taken reports (shed, left) %v, want %v", q.taken, want)
	}
}
