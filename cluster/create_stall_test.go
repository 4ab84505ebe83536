package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestCreateSaleWhileRedisStalls: a new sale's live state is installed in
// Redis inside its insert's transaction, and the sale commits whatever the
// install returns (the leader builds a state the install failed to write).
// But the install ran outside the Redis breaker and could use the whole
// call timeout of the insert's transaction: with Redis stalled and a URL
// read timeout at least the call timeout, the install used it up, the
// COMMIT then failed, and the cleanup that followed, outside the breaker
// and the call timeout too, waited out Redis's read timeout: every
// creation answered 503 after seconds while PostgreSQL was fine. The
// sale must be created, within about the call timeout.
func TestCreateSaleWhileRedisStalls(t *testing.T) {
	const (
		callTimeout = time.Second
		readTimeout = 5 * time.Second
	)
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	s := openStoreAt(t, "redis://"+rp.Addr+"/0?read_timeout="+readTimeout.String(), postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: time.Hour, CallTimeout: callTimeout})
	defer s.Close()
	mustSale(t, s, "before", 10, 1) // a pooled connection: the stall below is on a read

	rp.Pause()
	defer rp.Resume()
	id, name, stock, limit := "during", "made while Redis stalls", int64(10), int64(1)
	start := time.Now().Add(-time.Minute)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*readTimeout)
	defer cancel()
	began := time.Now()
	err = s.CreateSale(ctx, sl)
	took := time.Since(began)
	if err != nil || took > callTimeout+time.Second {
		t.Errorf("create a sale while Redis stalls: %v after %v; want it created within about the call timeout (%v)",
			err, took.Round(time.Millisecond), callTimeout)
	}
	got, err := s.Sale(ctx, id)
	if err != nil || got.Name != name {
		t.Errorf("the sale in PostgreSQL: %+v, %v; want it there", got, err)
	}
}
