package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// outageStore fails every Reserve the way a cluster store does when Redis
// is down: an error of code unavailable that is not the engine's timeout.
type outageStore struct{ surge.Store }

func (outageStore) Reserve(context.Context, string, []surge.Purchase, func() time.Time) ([]surge.Outcome, int64, error) {
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

// TestTimeoutKeylessMessage: a purchase that outlived PurchaseTimeout was
// told to "retry with the same Idempotency-Key", also when it was sent
// without one (the advice the cluster's failed commit no longer gives such
// a buyer). It is told that only when it had a key, and stays ErrTimeout.
func TestTimeoutKeylessMessage(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(fixedClock())
	cfg.PurchaseTimeout = 50 * time.Millisecond
	e, _, _, g := stalledEngine(t, cfg)
	defer g.open()
	mustCreate(t, e, input("s", 10, 1))
	for _, p := range []surge.Purchase{{UserID: "keyless", Quantity: 1}, {UserID: "keyed", IdempotencyKey: "k1", Quantity: 1}} {
		_, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: p})
		var se *surge.Error
		if !errors.Is(err, ErrTimeout) || !errors.As(err, &se) || se.Code != surge.CodeUnavailable {
			t.Fatalf("purchase %+v past PurchaseTimeout: %v; want ErrTimeout", p, err)
		}
		if told := strings.Contains(se.Message, "Idempotency-Key"); told != (p.IdempotencyKey != "") {
			t.Errorf("purchase %+v past PurchaseTimeout was told %q", p, se.Message)
		}
	}
}
