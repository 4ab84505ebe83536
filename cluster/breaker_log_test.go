package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// TestBatchFailureLogLevel: the engine logs a failed batch at ERROR when
// Redis failed it, but at WARN when only the breaker, open since Redis
// went down (its own line said so), refused it: an outage is not an ERROR
// a batch, while the breaker's line, at WARN, is the outage's news.
func TestBatchFailureLogLevel(t *testing.T) {
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	s := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, BreakerOpen: time.Minute, NoExpiry: true, Interval: time.Hour})
	defer s.Close()
	// One sale a case: the engine's lines are limited per sale.
	failing, refused := mustSale(t, s, "failing", 10, 1), mustSale(t, s, "refused", 10, 1)
	var out servicetest.Log
	eng, err := engine.Open(context.Background(), s, engine.Config{Logger: slog.New(slog.NewJSONHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	buy := func(sale, user string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_, err := eng.Purchase(ctx, engine.PurchaseRequest{SaleID: sale, Purchase: surge.Purchase{UserID: user, Quantity: 1}})
		return err
	}

	rp.Pause()
	defer rp.Resume()
	// Redis itself fails the first batch (the breaker is still closed);
	// four more failures open the breaker.
	if err := buy(failing.ID, "u0"); surge.ErrorCode(err) != surge.CodeUnavailable {
		t.Fatalf("purchase with Redis stalled: %v, want unavailable", err)
	}
	for i := range 4 {
		if _, _, err := reserve(s, failing.ID, surge.Purchase{UserID: fmt.Sprint("v", i), Quantity: 1}); surge.ErrorCode(err) != surge.CodeUnavailable {
			t.Fatalf("purchase %d with Redis stalled: %v, want unavailable", i, err)
		}
	}
	if err := buy(refused.ID, "u1"); !strings.Contains(fmt.Sprint(err), "redis is unavailable") {
		t.Fatalf("purchase with the Redis breaker open: %v, want the breaker's refusal", err)
	}

	levels := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var rec struct{ Level, Msg, Sale string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec.Msg == "reserve batch failed" {
			levels[rec.Sale] = rec.Level
		}
	}
	for _, c := range []struct{ sale, why, want string }{
		{failing.ID, "Redis failed the batch", "ERROR"},
		{refused.ID, "the open breaker refused the batch", "WARN"},
	} {
		if got := levels[c.sale]; got != c.want {
			t.Errorf("%s: \"reserve batch failed\" logged at %q, want %s", c.why, got, c.want)
		}
	}
}
