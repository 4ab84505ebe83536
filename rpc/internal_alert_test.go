package rpc_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/servicetest"
)

// failingPurchases is the real engine whose purchases fail with an error
// no Surge code names (a bug): answered 500 internal.
type failingPurchases struct{ *engine.Engine }

func (failingPurchases) Purchase(context.Context, engine.PurchaseRequest) (surge.Outcome, error) {
	return surge.Outcome{}, errors.New("a bug: an error no code names")
}

// alertDescription is the description of alert name in the shipped rules.
func alertDescription(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../deploy/observability/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == name {
				return r.Annotations["description"]
			}
		}
	}
	t.Fatalf("alerts.yml has no alert %s", name)
	return ""
}

// TestInternalAlertNamesTheLog: SurgePurchaseInternalErrors tells the
// operator to look for the cause in the nodes' logs under a message it
// quotes. A purchase answered internal over HTTP or gRPC, failed or
// panicking, logs its cause at error level: the alert must quote each
// such message, or an operator grepping its words finds nothing.
func TestInternalAlertNamesTheLog(t *testing.T) {
	ctx := context.Background()
	desc := alertDescription(t, "SurgePurchaseInternalErrors")
	failing := func(e *engine.Engine) surgehttp.Service { return failingPurchases{e} }
	panicking := func(e *engine.Engine) surgehttp.Service { return panickingPurchases{e} }
	for _, c := range []struct {
		name string
		svc  func(*engine.Engine) surgehttp.Service
		grpc bool
	}{
		{"http failed", failing, false},
		{"grpc failed", failing, true},
		{"http panicked", panicking, false},
		{"grpc panicked", panicking, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			eng, _ := meteredEngine(t, reg)
			logs := &servicetest.Records{Level: slog.LevelError}
			log := slog.New(logs)
			svc := c.svc(eng)
			g := rpc.New(svc, rpc.Config{Logger: log})
			api := surgehttp.New(svc, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount, Gatherer: reg})
			srv := httptest.NewServer(api)
			defer srv.Close()
			createSale(t, srv.URL, "buggy", 5)
			if c.grpc {
				cl := surgev1connect.NewSaleServiceClient(srv.Client(), srv.URL, connect.WithGRPC())
				r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "buggy"})
				r.Header().Set("X-User-ID", "alice")
				if _, err := cl.Purchase(ctx, r); err == nil {
					t.Fatal("a failing purchase succeeded")
				}
			} else {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/sales/buggy/purchases", nil)
				req.Header.Set("X-User-ID", "alice")
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusInternalServerError {
					t.Fatalf("a failing purchase answered %d, want 500", resp.StatusCode)
				}
			}
			if got := scrapedOutcomes(t, srv.URL)["internal"]; got != 1 {
				t.Fatalf(`surge_purchases_total{outcome="internal"} = %v, want 1`, got)
			}
			msgs := logs.Messages()
			if len(msgs) == 0 {
				t.Fatal("an internal purchase logged nothing at error level")
			}
			for _, m := range msgs {
				if !strings.Contains(desc, `"`+m+`"`) {
					t.Errorf("an internal purchase (%s) logged %q, which SurgePurchaseInternalErrors does not quote: %s", c.name, m, desc)
				}
			}
		})
	}
}
