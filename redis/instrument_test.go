package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
)

// TestSpansCarryNoBuyerData: Redis spans, like PostgreSQL's
// (docs/observability.md: "statements are recorded, their arguments
// not"), must not ship the buyers' user ids, Idempotency-Keys and order
// ids to the trace collector. A reservation's EVALSHA carries all three
// as arguments.
func TestSpansCarryNoBuyerData(t *testing.T) {
	st, l, c, _ := newSale(t, 5, 1)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	if err := redis.Instrument(c, tp, nil); err != nil {
		t.Fatal(err)
	}
	const user, key, order = "buyer-alice-7731", "idem-key-secret-4242", "o_orderid9999"
	now := time.Now()
	b := redis.Batch{Now: now, Expires: now.Add(time.Minute), IDs: []string{order},
		Purchases: []surge.Purchase{{UserID: user, Quantity: 1, IdempotencyKey: key}}}
	if _, err := st.Reserve(context.Background(), l, b); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) == 0 {
		t.Fatal("the reservation made no Redis span")
	}
	for _, s := range spans {
		for _, a := range s.Attributes() {
			v := a.Value.Emit()
			for what, secret := range map[string]string{"user id": user, "Idempotency-Key": key, "order id": order} {
				if strings.Contains(v, secret) {
					t.Errorf("span %q attribute %s carries the buyer's %s %q: %.200s", s.Name(), a.Key, what, secret, v)
				}
			}
		}
	}
}
