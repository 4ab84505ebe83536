package http_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestSoldOutReplayWhileCreationStalls: the replay of a bought key on a
// sold-out sale is answered on the engine's fast path, from memory. While
// the embedded store's commit in progress stalled (a disk that stops
// answering), a sale's creation queued behind it held the store's map lock
// and every such replay, of every sale, waited for as long as the stall
// lasted: the request got no answer.
func TestSoldOutReplayWhileCreationStalls(t *testing.T) {
	commithook.Install() // before the store opens its connections
	// A purchase timeout long enough for the creation to wait out the
	// replays below (it gives up at that timeout).
	e := newEnv(t, envOptions{insecureUserHeader: true, purchaseTimeout: time.Minute})
	e.createSale(t, `{"id":"a","name":"A","stock":1,"per_user_limit":1}`)
	e.createSale(t, `{"id":"b","name":"B","stock":5,"per_user_limit":1}`)
	buy := func() response {
		return e.do(t, "POST", "/v1/sales/a/purchases", "", header(userHeader, "alice"), idemKey("k1"))
	}
	wantStatus(t, buy(), http.StatusCreated) // sale a is sold out

	release, bought := e.stallPurchase(t, "b", "bob")
	created := make(chan response, 1)
	go func() {
		created <- e.do(t, "POST", "/v1/sales", `{"id":"c","name":"C","stock":5,"per_user_limit":1}`, asAdmin())
	}()

	// Replays of alice's key, for a while after the creation went in (it
	// waits for the stalled commit): each answered at once.
	for start := time.Now(); time.Since(start) < 2*time.Second; {
		replayed := make(chan response, 1)
		go func() { replayed <- buy() }()
		select {
		case r := <-replayed:
			wantStatus(t, r, http.StatusCreated)
			if r.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("the key's purchase again: %v, want its replay", r)
			}
		case <-time.After(10 * time.Second):
			release()
			t.Fatalf("the replay of a bought key on sold-out sale a got no answer 10s later, while the creation of sale c waited for a stalled commit; once the disk went on: %v",
				<-replayed)
		}
	}
	select {
	case r := <-created:
		t.Fatalf("sale c was created (%v) while the writer was stalled", r)
	default:
	}
	release()
	<-bought
	wantStatus(t, <-created, http.StatusCreated)
}

// TestCreateAnswersWhileStoreStalls: creating a sale while the embedded
// store's commit in progress stalled got no answer for as long as the
// stall lasted, however long its client waited. It must be answered 503
// with Retry-After within the purchase timeout, and create nothing: a
// retry once the disk answers again creates it.
func TestCreateAnswersWhileStoreStalls(t *testing.T) {
	commithook.Install() // before the store opens its connections
	e := newEnv(t, envOptions{insecureUserHeader: true, purchaseTimeout: 2 * time.Second})
	e.createSale(t, `{"id":"b","name":"B","stock":5,"per_user_limit":1}`)

	release, bought := e.stallPurchase(t, "b", "u")

	const body = `{"id":"c","name":"C","stock":5,"per_user_limit":1}`
	created := make(chan response, 1)
	go func() { created <- e.do(t, "POST", "/v1/sales", body, asAdmin()) }()
	unavailableWhileStalled(t, created, release, "creating a sale")
	release()
	<-bought
	wantError(t, e.do(t, "GET", "/v1/sales/c", ""), http.StatusNotFound, string(surge.CodeSaleNotFound))
	wantStatus(t, e.do(t, "POST", "/v1/sales", body, asAdmin()), http.StatusCreated)
}
