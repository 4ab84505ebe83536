package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
)

func TestAppendOrder(t *testing.T) {
	var printable strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		printable.WriteByte(c)
	}
	created := time.Date(2031, 3, 14, 10, 26, 53, 123_456_789, time.FixedZone("CET", 3600))
	base := surge.Order{
		ID: "o_abc", SaleID: "s-1", UserID: "User_9", Quantity: 3, Status: surge.OrderReserved,
		CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute),
	}
	for _, key := range []string{"", "k", printable.String(), `"\`, "<script>&</script>", strings.Repeat("~", surge.MaxKeyLen)} {
		o := base
		o.IdempotencyKey = key
		b := appendOrder(nil, &o)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("key %q: invalid JSON %s: %v", key, b, err)
		}
		want := map[string]any{
			"id": "o_abc", "sale_id": "s-1", "user_id": "User_9", "quantity": 3.0, "status": "reserved",
			"created_at": "2031-03-14T09:26:53.123Z", "expires_at": "2031-03-14T09:41:53.123Z",
		}
		if key != "" {
			want["idempotency_key"] = key
		}
		if !equalJSON(got, want) {
			t.Errorf("key %q: order = %v\nwant %v", key, got, want)
		}
		// The declared shape reads it back whole.
		var ord api.Order
		wantOrd := api.Order{ID: "o_abc", SaleID: "s-1", UserID: "User_9", Quantity: 3, Status: "reserved",
			CreatedAt: "2031-03-14T09:26:53.123Z", ExpiresAt: "2031-03-14T09:41:53.123Z", IdempotencyKey: key}
		if err := decodeStrict(b, &ord); err != nil || ord != wantOrd {
			t.Errorf("key %q: as api.Order %+v (%v), want %+v", key, ord, err, wantOrd)
		}
		body := orderBody(&o)
		if !bytes.Equal(body, []byte(`{"order":`+string(b)+"}\n")) {
			t.Errorf("orderBody = %s, want the order wrapped", body)
		}
	}
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestAppendJSONStringEscapes(t *testing.T) {
	// Keys are validated printable ASCII, but the encoder must still emit
	// valid JSON for any byte.
	for c := 0; c < 256; c++ {
		s := "a" + string([]byte{byte(c)}) + "b"
		b := appendJSONString(nil, s)
		if !json.Valid(b) {
			t.Errorf("byte %#x: invalid JSON %q", c, b)
			continue
		}
		if c < 0x20 || c > 0x7e {
			continue // escaped as \u00XX: not a round trip, but unreachable
		}
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("byte %#x: %q decodes to %q (%v)", c, b, back, err)
		}
	}
}

func TestToSaleJSON(t *testing.T) {
	start := time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC)
	st := engine.SaleState{
		Sale: surge.Sale{ID: "s", Name: "S", Stock: 5, PerUserLimit: 2, PriceCents: 100, Currency: "EUR",
			StartsAt: start, HoldSeconds: 60},
		Remaining: -1, // a hint that ran below zero is never shown
		Status:    surge.SaleSoldOut,
	}
	j := toSaleJSON(st)
	if j.Remaining != 0 || j.EndsAt != nil || j.StartsAt != "2031-03-14T09:00:00.000Z" || j.Status != "sold_out" {
		t.Errorf("toSaleJSON = %+v", j)
	}
	st.EndsAt = start.Add(time.Hour)
	if j := toSaleJSON(st); j.EndsAt == nil || *j.EndsAt != "2031-03-14T10:00:00.000Z" {
		t.Errorf("ends_at = %v", j.EndsAt)
	}
}

// TestStatusOf pins the HTTP status of every code of the contract.
func TestStatusOf(t *testing.T) {
	for code, want := range map[surge.Code]int{
		surge.CodeSoldOut:        409,
		surge.CodeLimitReached:   409,
		surge.CodeNotStarted:     409,
		surge.CodeEnded:          409,
		surge.CodeSaleExists:     409,
		surge.CodeNotCancellable: 409,
		surge.CodeNotPayable:     409,
		surge.CodeSaleNotFound:   404,
		surge.CodeOrderNotFound:  404,
		surge.CodeInvalid:        400,
		surge.CodeOverloaded:     503,
		surge.CodeUnavailable:    503,
		surge.CodeReserved:       500, // not an error
		"something_new":          500,
	} {
		if got := statusOf(code); got != want {
			t.Errorf("statusOf(%s) = %d, want %d", code, got, want)
		}
	}
}

func TestRejectionBodies(t *testing.T) {
	for _, code := range []surge.Code{surge.CodeSoldOut, surge.CodeLimitReached, surge.CodeNotStarted, surge.CodeEnded} {
		b, ok := rejectionBodies[code]
		if !ok {
			t.Errorf("no rejection body for %s", code)
			continue
		}
		var e api.ErrorBody
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.Error.Code != string(code) || e.Error.Message == "" {
			t.Errorf("rejection body for %s = %s (%v)", code, b, err)
		}
	}
}

// stubService answers what a test sets; any other call panics (the embedded
// interface is nil), which the server must turn into a JSON 500.
type stubService struct {
	Service
	purchase func() (surge.Outcome, error)
	sale     func() (engine.SaleState, error)
}

func (s *stubService) Purchase(context.Context, engine.PurchaseRequest) (surge.Outcome, error) {
	return s.purchase()
}

// Sale is a sale without a waiting room unless stubbed: the purchase
// handler asks for it once.
func (s *stubService) Sale(id string) (engine.SaleState, error) {
	if s.sale == nil {
		return engine.SaleState{Sale: surge.Sale{ID: id}}, nil
	}
	return s.sale()
}

func (s *stubService) Ready() bool { return true }

// TestServerErrors covers the answers an end-to-end test cannot provoke
// on demand: overload, storage failures and panics.
func TestServerErrors(t *testing.T) {
	var logs bytes.Buffer
	svc := &stubService{}
	srv := New(svc, Config{
		AdminToken: "admin", InsecureUserHeader: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	secret := errors.New("disk on fire at /var/lib/surge")
	cases := []struct {
		name     string
		method   string
		path     string
		purchase func() (surge.Outcome, error)
		sale     func() (engine.SaleState, error)
		status   int
		code     string
	}{
		{name: "overloaded", method: "POST", path: "/v1/sales/s/purchases",
			purchase: func() (surge.Outcome, error) { return surge.Outcome{}, surge.ErrOverloaded },
			status:   503, code: "overloaded"},
		{name: "unavailable", method: "POST", path: "/v1/sales/s/purchases",
			purchase: func() (surge.Outcome, error) { return surge.Outcome{}, surge.ErrUnavailable },
			status:   503, code: "unavailable"},
		{name: "wrapped domain error", method: "POST", path: "/v1/sales/s/purchases",
			purchase: func() (surge.Outcome, error) {
				return surge.Outcome{}, errors.Join(surge.ErrUnavailable, secret)
			},
			status: 503, code: "unavailable"},
		{name: "storage failure", method: "GET", path: "/v1/sales/s",
			sale:   func() (engine.SaleState, error) { return engine.SaleState{}, secret },
			status: 500, code: "internal"},
		{name: "panic", method: "GET", path: "/v1/sales", // Sales is not stubbed
			status: 500, code: "internal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc.purchase, svc.sale = c.purchase, c.sale
			req := httptest.NewRequest(c.method, c.path, nil)
			req.Header.Set("X-User-ID", "alice")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Errorf("status = %d, want %d (%s)", rec.Code, c.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var e api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != c.code || e.Error.Message == "" {
				t.Errorf("body = %s, want code %s (%v)", rec.Body, c.code, err)
			}
			if strings.Contains(rec.Body.String(), "fire") {
				t.Errorf("the answer leaks the internal error: %s", rec.Body)
			}
			if c.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	if !strings.Contains(logs.String(), "disk on fire") || !strings.Contains(logs.String(), "panic") {
		t.Errorf("internal errors were not logged:\n%s", logs.String())
	}
}
