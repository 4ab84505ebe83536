package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// fault stands in front of the real API and spoils the answers of the
// requests it matches, one planned step each; once the plan is spent,
// they pass. It records when each matched request came and its key.
type fault struct {
	match func(*http.Request) bool
	mu    sync.Mutex
	plan  []step
	seen  []arrival
}

type step struct {
	status     int
	code       string
	retryAfter string // the header, "" for none
	// through: the request reaches the server and takes effect, and then
	// its answer is lost and replaced (a commit whose answer timed out).
	through bool
	// page, when set, is the answer's HTML body in place of the API's
	// error (a proxy's own page; code is then unused).
	page string
}

type arrival struct {
	at  time.Time
	key string
}

func (f *fault) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.match(r) {
			next.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		f.seen = append(f.seen, arrival{time.Now(), r.Header.Get("Idempotency-Key")})
		var st *step
		if len(f.plan) > 0 {
			st = &f.plan[0]
			f.plan = f.plan[1:]
		}
		f.mu.Unlock()
		if st == nil {
			next.ServeHTTP(w, r)
			return
		}
		if st.through {
			next.ServeHTTP(httptest.NewRecorder(), r)
		}
		if st.retryAfter != "" {
			w.Header().Set("Retry-After", st.retryAfter)
		}
		if st.page != "" {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(st.status)
			io.WriteString(w, st.page)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st.status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"injected by the test"}}`, st.code)
	})
}

func (f *fault) arrivals() []arrival {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]arrival(nil), f.seen...)
}

func purchases(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/purchases") }

func refusals(n int, status int, code, retryAfter string) []step {
	plan := make([]step, n)
	for i := range plan {
		plan[i] = step{status: status, code: code, retryAfter: retryAfter}
	}
	return plan
}

// A purchase refused with 429 or 503 is sent again after Retry-After
// (plus at most the first backoff), with the same Idempotency-Key, so a
// retry never buys twice, also when the refused attempt did commit. Past
// its bounds the client gives up with the last refusal.
func TestPurchaseRetry(t *testing.T) {
	for _, tt := range []struct {
		name    string
		plan    []step
		policy  client.RetryPolicy
		want    int           // attempts the server saw
		wantErr string        // code of the error returned; "" for a 201
		minWait time.Duration // between attempts, at least
		replay  bool          // the 201 is a replay of the lost commit
	}{
		{name: "503 overloaded, Retry-After 1, then 201", plan: refusals(1, 503, "overloaded", "1"), want: 2, minWait: time.Second},
		{name: "429, Retry-After 1, then 201", plan: refusals(1, 429, "rate_limited", "1"), want: 2, minWait: time.Second},
		{name: "503 without Retry-After: backoff only", plan: refusals(2, 503, "overloaded", ""), want: 3, minWait: client.DefaultBackoff / 2},
		{name: "committed, answer lost to 503 unavailable: the retry replays it",
			plan: []step{{status: 503, code: "unavailable", retryAfter: "1", through: true}}, want: 2, minWait: time.Second, replay: true},
		{name: "gives up after MaxAttempts", plan: refusals(10, 503, "overloaded", "1"), policy: client.RetryPolicy{MaxAttempts: 3},
			want: 3, wantErr: "overloaded", minWait: time.Second},
		{name: "gives up when Retry-After passes MaxElapsed", plan: refusals(10, 429, "rate_limited", "60"), want: 1, wantErr: "rate_limited"},
		{name: "retrying off", plan: refusals(1, 503, "overloaded", "1"), policy: client.RetryPolicy{MaxAttempts: 1}, want: 1, wantErr: "overloaded"},
		{name: "other refusals are not retried", plan: refusals(1, 500, "internal", "1"), want: 1, wantErr: "internal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fault{match: purchases, plan: tt.plan}
			s := newServer(t, serverOptions{wrap: f.wrap})
			admin := client.New(s.url, token)
			createSale(t, admin, "s", 10, 1)
			buyer := admin.AsUser("ann")
			buyer.Retry = tt.policy
			start := time.Now()
			p, err := buyer.Purchase(t.Context(), "s", client.PurchaseOptions{})
			took := time.Since(start)

			seen := f.arrivals()
			if len(seen) != tt.want {
				t.Fatalf("the server saw %d attempts, want %d (err %v)", len(seen), tt.want, err)
			}
			for i, a := range seen {
				if a.key == "" || a.key != p.IdempotencyKey {
					t.Errorf("attempt %d sent key %q, want the purchase's %q on every attempt", i+1, a.key, p.IdempotencyKey)
				}
				if i == 0 {
					continue
				}
				// The wait is Retry-After plus half to all of the backoff
				// (100 ms, doubling); the upper bound is generous for a
				// loaded machine.
				if gap := a.at.Sub(seen[i-1].at); gap < tt.minWait || gap > tt.minWait+10*time.Second {
					t.Errorf("attempt %d came %v after the previous one, want at least %v", i+1, gap, tt.minWait)
				}
			}
			orders := exported(t, admin, "s")
			if tt.wantErr != "" {
				var ae *client.APIError
				if !errors.As(err, &ae) || ae.Code != tt.wantErr || ae.Attempts != tt.want {
					t.Fatalf("err %#v, want %s after %d attempts", err, tt.wantErr, tt.want)
				}
				if tt.wantErr == "rate_limited" && (ae.RetryAfter != time.Minute || took > 5*time.Second) {
					t.Errorf("Retry-After %v, returned after %v; want 1m, at once", ae.RetryAfter, took)
				}
				if len(orders) != 0 {
					t.Errorf("export %+v, want no order", orders)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Replayed != tt.replay || len(orders) != 1 || orders[0].ID != p.Order.ID || orders[0].IdempotencyKey != p.IdempotencyKey {
				t.Errorf("purchase %+v (replayed %v), export %+v; want one order, replayed %v", p.Order, p.Replayed, orders, tt.replay)
			}
		})
	}
}

// A real 429 of the server's per-buyer rate limit (1 a second): the
// client waits for its Retry-After and the purchase goes through.
func TestPurchaseRetryRealRateLimit(t *testing.T) {
	limit := admission.NewKeyed(rate.Limit(1), 1, 100, time.Minute)
	s := newServer(t, serverOptions{buyerRate: limit})
	admin := client.New(s.url, token)
	createSale(t, admin, "s", 10, 5)
	buyer := admin.AsUser("ann")
	ctx := t.Context()
	if _, err := buyer.Purchase(ctx, "s", client.PurchaseOptions{}); err != nil {
		t.Fatal(err)
	}
	noRetry := *buyer
	noRetry.Retry = client.RetryPolicy{MaxAttempts: 1}
	if _, err := noRetry.Purchase(ctx, "s", client.PurchaseOptions{}); !surge.HasCode(err, surge.CodeRateLimited) {
		t.Fatalf("second purchase at once, without retries: %v, want rate_limited", err)
	}
	before := s.count("POST /v1/sales/s/purchases")
	p, err := buyer.Purchase(ctx, "s", client.PurchaseOptions{})
	if err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if n := s.count("POST /v1/sales/s/purchases") - before; n < 2 {
		t.Errorf("%d attempts, want a refusal and a retry", n)
	}
	if orders := exported(t, admin, "s"); len(orders) != 2 || orders[1].ID != p.Order.ID {
		t.Errorf("export %+v", orders)
	}
}

// Cancelling the context while the client waits to retry returns at once
// with both the context's error and the last refusal.
func TestRetryContextCancel(t *testing.T) {
	f := &fault{match: purchases, plan: refusals(10, 503, "overloaded", "5")}
	s := newServer(t, serverOptions{wrap: f.wrap})
	admin := client.New(s.url, token)
	createSale(t, admin, "s", 10, 1)
	ctx, cancel := context.WithCancel(t.Context())
	// Cancel once the first refusal has come back, body and all: the
	// client is then waiting to retry. (The server's seeing the request
	// is too early: the cancel would end the request itself.)
	buyer := admin.AsUser("ann")
	base := buyer.HTTP.Transport
	answered := make(chan struct{}, 1)
	buyer.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		res, err := base.RoundTrip(r)
		if err == nil {
			body, rerr := io.ReadAll(res.Body)
			res.Body.Close()
			if rerr != nil {
				return nil, rerr
			}
			res.Body = io.NopCloser(bytes.NewReader(body))
			select {
			case answered <- struct{}{}:
			default:
			}
		}
		return res, err
	})}
	go func() {
		<-answered
		cancel()
	}()
	start := time.Now()
	_, err := buyer.Purchase(ctx, "s", client.PurchaseOptions{})
	var ae *client.APIError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ae) || ae.Code != "overloaded" {
		t.Fatalf("err %v, want context.Canceled and the 503 overloaded", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("returned %v after the start, want well before the 5 s Retry-After", took)
	}
	if n := len(f.arrivals()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

// Calls that must not take effect twice (cancel, pay, create) are retried
// after refusals that did nothing (429, 503 overloaded) but not after 503
// unavailable, which may hide a commit; reads and steering are retried
// after any.
func TestRetryOnlyWhatIsSafe(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		path string // suffix of the path the fault spoils
		code string
		call func(c *client.Client, order string) error
		want int // attempts
	}{
		{"cancel after unavailable", "/cancel", "unavailable", func(c *client.Client, o string) error { _, err := c.CancelOrder(ctx, o); return err }, 1},
		{"cancel after overloaded", "/cancel", "overloaded", func(c *client.Client, o string) error { _, err := c.CancelOrder(ctx, o); return err }, 2},
		{"pay after unavailable", "/pay", "unavailable", func(c *client.Client, o string) error { _, err := c.PayOrder(ctx, o); return err }, 1},
		{"pay after overloaded", "/pay", "overloaded", func(c *client.Client, o string) error { _, err := c.PayOrder(ctx, o); return err }, 2},
		{"read after unavailable", "", "unavailable", func(c *client.Client, o string) error { _, err := c.Order(ctx, o); return err }, 2},
		{"steer after unavailable", "/v1/sales/s", "unavailable", func(c *client.Client, _ string) error {
			_, err := c.UpdateSale(ctx, "s", api.SalePatch{Name: new("renamed")})
			return err
		}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var on sync.Mutex // the fault starts once the order exists
			armed := false
			f := &fault{plan: []step{{status: 503, code: tt.code}}}
			f.match = func(r *http.Request) bool {
				on.Lock()
				defer on.Unlock()
				return armed && strings.HasSuffix(r.URL.Path, tt.path) && r.URL.Path != "/v1/sales/s/orders"
			}
			s := newServer(t, serverOptions{wrap: f.wrap})
			admin := client.New(s.url, token)
			createSale(t, admin, "s", 10, 1)
			p, err := admin.AsUser("ann").Purchase(ctx, "s", client.PurchaseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			on.Lock()
			armed = true
			on.Unlock()
			err = tt.call(admin, p.Order.ID)
			if n := len(f.arrivals()); n != tt.want {
				t.Fatalf("%d attempts (err %v), want %d", n, err, tt.want)
			}
			if (tt.want == 1) != (err != nil) {
				t.Errorf("err %v", err)
			}
		})
	}
}

// A Retry-After centuries away (a proxy's absurd answer), as an HTTP date
// or as seconds past 2^31 (or past what a Duration holds), is past
// MaxElapsed like any other long wait: the client gives up at once with
// the refusal, whose RetryAfter is capped at an hour as the server caps
// its own. It must not wrap the wait around to a negative one, nor read
// the seconds as no hint and send the purchase again after the backoff
// alone, over and over.
func TestPurchaseRetryAfterFarFuture(t *testing.T) {
	for _, far := range []string{"Fri, 31 Dec 9999 23:59:59 GMT", "2147483649", "99999999999", "99999999999999999999"} {
		t.Run(far, func(t *testing.T) {
			f := &fault{match: purchases, plan: refusals(10, 503, "overloaded", far)}
			s := newServer(t, serverOptions{wrap: f.wrap})
			admin := client.New(s.url, token)
			createSale(t, admin, "s", 10, 1)
			_, err := admin.AsUser("ann").Purchase(t.Context(), "s", client.PurchaseOptions{})
			seen := f.arrivals()
			var gaps []time.Duration
			for i := 1; i < len(seen); i++ {
				gaps = append(gaps, seen[i].at.Sub(seen[i-1].at).Round(time.Millisecond))
			}
			if len(seen) != 1 {
				t.Errorf("Retry-After %q (past MaxElapsed %v): the server saw %d attempts, %v apart; want 1 and the refusal returned",
					far, client.DefaultMaxElapsed, len(seen), gaps)
			}
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Code != "overloaded" {
				t.Fatalf("err %v, want the 503 overloaded", err)
			}
			if ae.RetryAfter != time.Hour {
				t.Errorf("Retry-After %q: the refusal's RetryAfter is %v; want an hour, the most a wait says", far, ae.RetryAfter)
			}
		})
	}
}

// A refusal whose wait (Retry-After, plus the backoff) would end after the
// caller's deadline cannot be followed by a retry: the client returns it
// at once, as it does past MaxElapsed. It slept until the deadline instead,
// spending all of the caller's time on a retry it could not make, and
// returned the deadline's error.
func TestRetryNotPastTheDeadline(t *testing.T) {
	f := &fault{match: purchases, plan: refusals(10, 503, "overloaded", "20")}
	s := newServer(t, serverOptions{wrap: f.wrap})
	admin := client.New(s.url, token)
	createSale(t, admin, "s", 10, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := admin.AsUser("ann").Purchase(ctx, "s", client.PurchaseOptions{})
	took := time.Since(start)
	var ae *client.APIError
	if errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ae) || ae.Code != "overloaded" || ae.RetryAfter != 20*time.Second {
		t.Errorf("err %v after %v; want the 503 overloaded (Retry-After 20 s, past the 10 s deadline), not the deadline's error",
			err, took.Round(time.Millisecond))
	}
	if n := len(f.arrivals()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}
