package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// outageStore fails every Reserve the way a cluster store does when Redis
// is down: an error of code unavailable that is not the engine's timeout.
type outageStore struct{ surge.Store }

func (outageStore) Reserve(context.Context, string, []surge.Purchase, time.Time) ([]surge.Outcome, int64, error) {
	return nil, 0, surge.Errorf(surge.CodeUnavailable, "redis: connection refused")
}

// TestTimeoutIsNotUnavailability: a storage outage and a purchase that
// outlived PurchaseTimeout share a code (both 503) but not an identity, so
// whatever counts timeouts cannot mistake an outage for one.
func TestTimeoutIsNotUnavailability(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, outageStore{openStore(t, t.TempDir())}, testConfig(fixedClock()))
	mustCreate(t, e, input("s", 10, 1))
	_, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "a", Quantity: 1}})
	if !surge.HasCode(err, surge.CodeUnavailable) || errors.Is(err, ErrTimeout) {
		t.Errorf("purchase during an outage: %v; want unavailable, not ErrTimeout", err)
	}

	cfg := testConfig(fixedClock())
	cfg.PurchaseTimeout = 50 * time.Millisecond
	e2, _, _, g := stalledEngine(t, cfg)
	mustCreate(t, e2, input("s", 10, 1))
	_, err = e2.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "a", Quantity: 1}})
	g.open()
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("purchase past PurchaseTimeout: %v; want ErrTimeout", err)
	}
}
