package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// stubShedder admits while open and records what each release reported.
type stubShedder struct {
	mu       sync.Mutex
	open     bool
	releases []bool // dropped flags
}

func (s *stubShedder) Acquire() (func(time.Duration, bool), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return nil, false
	}
	return func(_ time.Duration, dropped bool) {
		s.mu.Lock()
		s.releases = append(s.releases, dropped)
		s.mu.Unlock()
	}, true
}

type stubRate struct{ allow bool }

func (r stubRate) Allow(string, time.Time) (bool, time.Duration) {
	return r.allow, 3 * time.Second
}

// TestShedderGuardsOnlyTheSlowPath: a closed shedder refuses purchases
// that would queue for the store, while the sold-out fast path still
// answers 409 and is never shed.
func TestShedderGuardsOnlyTheSlowPath(t *testing.T) {
	sh := &stubShedder{open: true}
	cfg := testConfig(fixedClock())
	cfg.Shedder = sh
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 1, 1))
	ctx := context.Background()

	mustReserve(t, e, "s", surge.Purchase{UserID: "a", Quantity: 1})
	if len(sh.releases) != 1 || sh.releases[0] {
		t.Fatalf("releases after a committed purchase: %v, want [false]", sh.releases)
	}

	sh.mu.Lock()
	sh.open = false
	sh.mu.Unlock()
	out, err := e.Purchase(ctx, "s", surge.Purchase{UserID: "b", Quantity: 1})
	if err != nil || out.Code != surge.CodeSoldOut {
		t.Fatalf("sold-out purchase with the shedder closed: (%v, %v), want sold_out", out.Code, err)
	}

	mustCreate(t, e, input("t", 5, 1))
	_, err = e.Purchase(ctx, "t", surge.Purchase{UserID: "c", Quantity: 1})
	if !surge.HasCode(err, surge.CodeOverloaded) {
		t.Fatalf("slow path with the shedder closed: %v, want overloaded", err)
	}
	if got := e.Stats().Shed; got != 1 {
		t.Errorf("Stats().Shed = %d, want 1", got)
	}
	if got := remaining(t, e, "t"); got != 5 {
		t.Errorf("a shed purchase reserved: remaining %d", got)
	}
}

// TestSaleRateLimitsTheSlowPath: a refused per-sale admission answers
// rate_limited with the limiter's wait, and reserves nothing.
func TestSaleRateLimitsTheSlowPath(t *testing.T) {
	cfg := testConfig(fixedClock())
	cfg.SaleRate = stubRate{allow: false}
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 5, 1))
	_, err := e.Purchase(context.Background(), "s", surge.Purchase{UserID: "a", Quantity: 1})
	var se *surge.Error
	if !errors.As(err, &se) || se.Code != surge.CodeRateLimited || se.RetryAfter != 3*time.Second {
		t.Fatalf("err = %#v, want rate_limited with a 3s wait", err)
	}
	if got := remaining(t, e, "s"); got != 5 {
		t.Errorf("a rate-limited purchase reserved: remaining %d", got)
	}
}
