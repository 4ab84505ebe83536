package http_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// stallPurchase buys a unit of sale as buyer, a purchase whose commit is
// the store's next one, and returns once that commit stalls: release lets
// it go on (at the latest when the test ends), and bought has its answer.
func (e *env) stallPurchase(t *testing.T, sale, buyer string) (release func(), bought <-chan response) {
	t.Helper()
	stalled, let := make(chan struct{}), make(chan struct{})
	stall := func() {
		close(stalled)
		<-let
	}
	commithook.OnNext(stall)
	answer := make(chan response, 1)
	go func() { answer <- e.do(t, "POST", "/v1/sales/"+sale+"/purchases", "", header(userHeader, buyer)) }()
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		commithook.OnNext(nil)
		t.Fatal("the purchase's commit never began")
	}
	var once sync.Once
	release = func() { once.Do(func() { close(let) }) }
	t.Cleanup(release)
	return release, answer
}

// unavailableWhileStalled waits up to 15 s for the answer of what, a
// request sent while the store's commit stalled (under a 2 s purchase
// timeout), and wants it 503 unavailable with Retry-After; should none
// come, it releases the stall and fails the test with the answer after.
func unavailableWhileStalled(t *testing.T, answer <-chan response, release func(), what string) response {
	t.Helper()
	var r response
	select {
	case r = <-answer:
	case <-time.After(15 * time.Second):
		release()
		t.Fatalf("%s while the store's commit was stalled: no answer 15s later (with a 2s purchase timeout); once the disk went on: %v",
			what, <-answer)
	}
	wantError(t, r, http.StatusServiceUnavailable, string(surge.CodeUnavailable))
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %v", r)
	}
	return r
}

// TestPatchAnswersWhileStoreStalls: a PATCH of a sale while the embedded
// store's commit in progress stalls (a purchase's, on a disk that stops
// answering) got no answer for as long as the stall lasted, however long
// its client waited. It must be answered 503 with Retry-After within the
// purchase timeout, as a purchase is, and change nothing: a retry once the
// disk answers again applies it.
func TestPatchAnswersWhileStoreStalls(t *testing.T) {
	commithook.Install() // before the store opens its connections
	for _, buying := range []string{"b", "a"} {
		t.Run("stalled by a purchase of "+buying, func(t *testing.T) {
			e := newEnv(t, envOptions{insecureUserHeader: true, purchaseTimeout: 2 * time.Second})
			e.createSale(t, `{"id":"a","name":"A","stock":5,"per_user_limit":1}`)
			e.createSale(t, `{"id":"b","name":"B","stock":5,"per_user_limit":1}`)
			release, bought := e.stallPurchase(t, buying, "u-"+buying)

			// The admin's client waits as long as it takes.
			patched := make(chan response, 1)
			go func() { patched <- e.do(t, "PATCH", "/v1/sales/a", `{"paused":true}`, asAdmin()) }()
			r := unavailableWhileStalled(t, patched, release, "PATCH")
			release()
			<-bought
			if got := e.sale(t, "a"); got.Status == "paused" {
				t.Fatalf("the PATCH answered %d, yet sale a is paused", r.status)
			}
			// The client's retry applies it.
			wantStatus(t, e.do(t, "PATCH", "/v1/sales/a", `{"paused":true}`, asAdmin()), http.StatusOK)
		})
	}
}

// TestArchiveAnswersWhileStoreStalls: archiving an ended sale while the
// embedded store's commit in progress stalled got no answer for as long
// as the stall lasted, however long its client waited. As a PATCH, it
// must be answered 503 with Retry-After within the purchase timeout, and
// archive nothing: a retry once the disk answers again archives it.
func TestArchiveAnswersWhileStoreStalls(t *testing.T) {
	commithook.Install() // before the store opens its connections
	e := newEnv(t, envOptions{insecureUserHeader: true, purchaseTimeout: 2 * time.Second})
	e.createSale(t, `{"id":"a","name":"A","stock":5,"per_user_limit":1,"ends_at":"`+epoch.Add(time.Hour).Format(time.RFC3339)+`"}`)
	e.createSale(t, `{"id":"b","name":"B","stock":5,"per_user_limit":1}`)
	e.clock.Advance(2 * time.Hour)

	release, bought := e.stallPurchase(t, "b", "u")

	archived := make(chan response, 1)
	go func() { archived <- e.do(t, "POST", "/v1/sales/a/archive", "", asAdmin()) }()
	r := unavailableWhileStalled(t, archived, release, "archive")
	release()
	<-bought
	if list, err := e.store.ArchivedSales(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("the archive answered %d, yet the store holds archived sales %+v (%v)", r.status, list, err)
	}
	wantStatus(t, e.do(t, "POST", "/v1/sales/a/archive", "", asAdmin()), http.StatusOK)
}
