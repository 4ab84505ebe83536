package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

type stubRate struct{ allow bool }

func (r stubRate) Allow(string, time.Time) (bool, time.Duration) {
	return r.allow, 3 * time.Second
}

// TestSaleRateLimitsTheSlowPath: a refused per-sale admission answers
// rate_limited with the limiter's wait, and reserves nothing.
func TestSaleRateLimitsTheSlowPath(t *testing.T) {
	cfg := testConfig(fixedClock())
	cfg.SaleRate = stubRate{allow: false}
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 5, 1))
	_, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "a", Quantity: 1}})
	var se *surge.Error
	if !errors.As(err, &se) || se.Code != surge.CodeRateLimited || se.RetryAfter != 3*time.Second {
		t.Fatalf("err = %#v, want rate_limited with a 3s wait", err)
	}
	if got := remaining(t, e, "s"); got != 5 {
		t.Errorf("a rate-limited purchase reserved: remaining %d", got)
	}
}
