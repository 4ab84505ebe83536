package http_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/surgehq/surge"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/commithook"
	"github.com/surgehq/surge/payments"
)

// TestCancelFloodLeavesWebhooksTheirBudget: cancels by the thousand (the
// operator's, which no buyer's share bounds), while the store is slow,
// must not make the payment provider's deliveries be refused. Cancels
// and payments shared one budget of 1,024 changes waiting for the store,
// so the cancels spent it and a signed webhook got 503 overloaded at
// once: the provider retries late, after the hold the payment was for
// had ended, and a paid order turns into a refund.
func TestCancelFloodLeavesWebhooksTheirBudget(t *testing.T) {
	commithook.Install() // before the store opens its connections
	e := newEnv(t, envOptions{insecureUserHeader: true, purchaseTimeout: time.Second,
		payments: surgehttp.Payments{Provider: payments.Generic, Secrets: []string{hookSecret}}})
	e.createSale(t, `{"id":"s","name":"Sneakers","stock":10,"per_user_limit":2,"price_cents":12999,"currency":"EUR","hold_seconds":600}`)
	spam := e.buy(t, "s", header(userHeader, "mallory"))
	pat := e.buy(t, "s", header(userHeader, "pat"))

	// The first cancel's commit stalls (a slow disk); every later change
	// of the sale waits behind it, each holding a place in its budget.
	stalled, release := commithook.StallNext(t)

	const flood = 1024 + 100 // more than the budget holds
	answers := make(chan response, flood)
	for range flood {
		go func() {
			answers <- e.serve("POST", "/v1/orders/"+spam.ID+"/cancel", nil, asAdmin())
		}()
	}
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		commithook.OnNext(nil)
		t.Fatal("the first cancel's commit never began")
	}
	// The cancels' budget is spent once one of them is refused overloaded.
	got := 0
	for deadline := time.After(20 * time.Second); ; {
		select {
		case r := <-answers:
			got++
			if errorCode(t, r) != string(surge.CodeOverloaded) {
				continue
			}
		case <-deadline:
			t.Fatal("no cancel was refused overloaded: the flood never filled the budget")
		}
		break
	}

	body := hookBody("evt_pat", "payment.succeeded", pat.ID, 12999, "EUR")
	r := e.serve("POST", hookPath, []byte(body), signed(hookSecret, body))
	if r.status == http.StatusServiceUnavailable && errorCode(t, r) == string(surge.CodeOverloaded) {
		t.Errorf("signed webhook while a buyer's cancels waited for the store: %v; want it to wait its turn, not be refused", r)
	}
	release()
	for ; got < flood; got++ {
		select {
		case <-answers:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d cancels unanswered 30s after the store went on", flood-got, flood)
		}
	}
	// The delivery went on after its answer (a 503 unavailable when it
	// outlived the purchase timeout): the order ends paid.
	for deadline := time.Now().Add(20 * time.Second); ; {
		st := e.orderStatus(t, pat.ID)
		if st == "paid" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s is %s 20s after the store went on, want paid (the webhook's payment recorded)", pat.ID, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCancelFloodLeavesOtherBuyersTheirCancels: a buyer calling cancel
// on its own order by the thousand, while the store is slow, must not
// make another buyer's cancel be refused. The cancels of every buyer
// shared one budget of 1,024 waiting for the store, so one buyer's spent
// it and everyone else's cancel got 503 overloaded at once; the buyer's
// own beyond its share are refused 429 rate_limited instead.
func TestCancelFloodLeavesOtherBuyersTheirCancels(t *testing.T) {
	commithook.Install() // before the store opens its connections
	e := newEnv(t, envOptions{insecureUserHeader: true, purchaseTimeout: time.Second})
	e.createSale(t, `{"id":"s","name":"Sneakers","stock":10,"per_user_limit":2,"hold_seconds":600}`)
	spam := e.buy(t, "s", header(userHeader, "mallory"))
	pat := e.buy(t, "s", header(userHeader, "pat"))

	// The first cancel's commit stalls (a slow disk); every later change
	// of the sale waits behind it, each holding a place in its budget.
	stalled, release := commithook.StallNext(t)

	const flood = 1024 + 100 // more than the whole budget holds
	answers := make(chan response, flood)
	for range flood {
		go func() {
			answers <- e.serve("POST", "/v1/orders/"+spam.ID+"/cancel", nil, header(userHeader, "mallory"))
		}()
	}
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		commithook.OnNext(nil)
		t.Fatal("the first cancel's commit never began")
	}
	// The flood has taken all it can once one of its cancels is refused.
	got, refused := 0, map[string]int{}
	for deadline := time.After(20 * time.Second); len(refused) == 0; {
		select {
		case r := <-answers:
			got++
			if r.status == http.StatusOK {
				continue
			}
			if c := errorCode(t, r); c == string(surge.CodeOverloaded) || c == string(surge.CodeRateLimited) {
				refused[c]++
				if r.header.Get("Retry-After") == "" {
					t.Errorf("refused cancel without Retry-After: %v", r)
				}
			}
		case <-deadline:
			t.Fatal("no cancel of the flood was refused")
		}
	}

	patAnswer := make(chan response, 1)
	go func() {
		patAnswer <- e.serve("POST", "/v1/orders/"+pat.ID+"/cancel", nil, header(userHeader, "pat"))
	}()
	// Pat's cancel waits its turn behind the stall: 200, or 503
	// unavailable past the purchase timeout, the cancel going on.
	select {
	case r := <-patAnswer:
		if r.status != http.StatusOK && errorCode(t, r) != string(surge.CodeUnavailable) {
			t.Errorf("another buyer's cancel while mallory's waited for the store: %v; want it to wait its turn, not be refused", r)
		}
	case <-time.After(20 * time.Second):
		t.Error("another buyer's cancel unanswered 20s after it was sent")
	}
	release()
	for ; got < flood; got++ {
		select {
		case r := <-answers:
			if r.status == http.StatusOK {
				continue
			}
			if c := errorCode(t, r); c != string(surge.CodeNotCancellable) {
				refused[c]++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d cancels unanswered 30s after the store went on", flood-got, flood)
		}
	}
	if refused[string(surge.CodeOverloaded)] > 0 {
		t.Errorf("one buyer's flood spent the whole budget: %v refused", refused)
	}
	// The cancel went on after its answer (a 503 unavailable when it
	// outlived the purchase timeout): the order ends cancelled.
	for deadline := time.Now().Add(20 * time.Second); ; {
		st := e.orderStatus(t, pat.ID)
		if st == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s is %s 20s after the store went on, want cancelled", pat.ID, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
