package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/waitroom"
)

// TestSpecScenario drives a real server (the embedded SQLite store, the
// engine, a waiting room, the payment webhook, the admin and ops
// listeners) through every operation of the spec and as many of its
// answers as a test can provoke, validating every request and answer
// against openapi.yaml.
func TestSpecScenario(t *testing.T) {
	raw, doc := readSpec(t)
	c := newChecker(t, raw)
	ctx := context.Background()

	store, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.New(epoch)
	room, err := waitroom.New(waitroom.Config{Secret: roomSecret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, store, engine.Config{Now: clk.Now, WaitingRoom: room, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := surgehttp.Config{
		AdminToken: adminToken, JWTSecret: jwtSecret, InsecureUserHeader: true, Logger: quietLog,
		WaitingRoom: room, Gatherer: reg,
		// One stream in all and per buyer, so that the limits can be met.
		MaxQueueStreams: 1, MaxQueueStreamsPerBuyer: 1,
		Payments: surgehttp.Payments{Secrets: []string{hookSecret}},
	}
	handler := surgehttp.New(eng, cfg)
	srv := httptest.NewServer(handler)
	public := httptest.NewServer(handler.Public())
	ops := httptest.NewServer(handler.Ops(reg, nil))
	limitedCfg := cfg
	limitedCfg.Protection.IP = admission.NewKeyed(rate.Limit(0.001), 1, 100, time.Hour)
	limited := httptest.NewServer(surgehttp.New(eng, limitedCfg))
	t.Cleanup(func() {
		handler.CloseStreams()
		for _, s := range []*httptest.Server{srv, public, ops, limited} {
			s.Close()
		}
		if eng.Ready() {
			if err := eng.Close(); err != nil {
				t.Errorf("close engine: %v", err)
			}
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	base := srv.URL
	do := func(method, path, body string, h http.Header, want int) answer {
		t.Helper()
		return c.do(call{base: base, method: method, path: path, body: body, header: h, want: want})
	}
	// bad sends a request that breaks the spec on purpose.
	bad := func(method, path, body string, h http.Header, want int) answer {
		t.Helper()
		return c.do(call{base: base, method: method, path: path, body: body, header: h, want: want, invalid: true})
	}
	wantCode := func(a answer, code string) {
		t.Helper()
		if got := a.errorCode(); got != code {
			t.Errorf("HTTP %d %s: code %q, want %q", a.status, a.body, got, code)
		}
	}
	at := func(d time.Duration) string { return epoch.Add(d).Format(time.RFC3339) }

	// Health.
	do("GET", "/healthz", "", nil, 200)
	do("GET", "/readyz", "", nil, 200)

	// Sales.
	bad("POST", "/v1/sales", `{"name":"Shoes","stock":3}`, nil, 401)
	do("POST", "/v1/sales", `{"id":"shoes","name":"Shoes","stock":3,"per_user_limit":2,"price_cents":1500,"currency":"EUR","hold_seconds":600}`, admin, 201)
	wantCode(do("POST", "/v1/sales", `{"id":"shoes","name":"Shoes","stock":3}`, admin, 409), "sale_exists")
	bad("POST", "/v1/sales", `{"name":"No stock"}`, admin, 400)
	bad("POST", "/v1/sales", `{"name":"Cased","Stock":1}`, admin, 400)
	bad("POST", "/v1/sales", `{"name":"Zero","stock":0}`, admin, 400)
	do("POST", "/v1/sales", `{"name":"Limit over stock","stock":1,"per_user_limit":2}`, admin, 400)
	wantCode(do("POST", "/v1/sales", `{"name":"`+strings.Repeat("x", 70<<10)+`","stock":1}`, admin, 413), "too_large")
	do("POST", "/v1/sales", `{"id":"later","name":"Later","stock":5,"starts_at":"`+at(time.Hour)+`"}`, admin, 201)
	do("POST", "/v1/sales", `{"id":"ending","name":"Ending","stock":1,"ends_at":"`+at(30*time.Second)+`"}`, admin, 201)
	do("POST", "/v1/sales", `{"id":"pay","name":"Paid","stock":5,"price_cents":1000,"currency":"EUR"}`, admin, 201)
	do("POST", "/v1/sales", `{"id":"queued","name":"Queued","stock":5,"starts_at":"`+at(0)+`","waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":300}}`, admin, 201)
	do("POST", "/v1/sales", `{"id":"queued-end","name":"Queued, ending","stock":5,"ends_at":"`+at(30*time.Second)+`","waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":300}}`, admin, 201)
	do("POST", "/v1/sales", `{"id":"lottery","name":"Lottery","stock":5,"starts_at":"`+at(time.Hour)+`","waiting_room":{"admit_per_second":1,"order":"lottery","ticket_seconds":300}}`, admin, 201)
	bad("POST", "/v1/sales", `{"name":"Bad room","stock":1,"waiting_room":{"admit_per_second":1}}`, admin, 400)

	page := mustDecode[api.SalesPage](t, do("GET", "/v1/sales?limit=2", "", nil, 200))
	if page.NextCursor == "" {
		t.Fatalf("a page of 2 of 7 sales has no next_cursor")
	}
	do("GET", "/v1/sales?limit=2&cursor="+url.QueryEscape(page.NextCursor), "", nil, 200)
	do("GET", "/v1/sales", "", nil, 200)
	bad("GET", "/v1/sales?limit=0", "", nil, 400)
	bad("GET", "/v1/sales?archived=maybe", "", nil, 400)
	do("GET", "/v1/sales?cursor=bogus", "", nil, 400)
	do("GET", "/v1/sales/shoes", "", nil, 200)
	wantCode(do("GET", "/v1/sales/nope", "", nil, 404), "sale_not_found")

	// Steering.
	do("PATCH", "/v1/sales/shoes", `{"paused":true}`, admin, 200)
	wantCode(do("POST", "/v1/sales/shoes/purchases", "", alice, 409), "paused")
	do("PATCH", "/v1/sales/shoes", `{"paused":false,"ends_at":null}`, admin, 200)
	bad("PATCH", "/v1/sales/shoes", `{"stock":null}`, admin, 400)
	bad("PATCH", "/v1/sales/shoes", `{"paused":false}`, nil, 401)
	wantCode(do("PATCH", "/v1/sales/nope", `{}`, admin, 404), "sale_not_found")
	wantCode(bad("PATCH", "/v1/sales/pay", `{"stock":10000000000}`, admin, 400), "invalid_request")
	wantCode(do("PATCH", "/v1/sales/pay", `{"per_user_limit":6}`, admin, 400), "invalid_request")

	// Purchases.
	key := func(k string) http.Header { h := alice.Clone(); h.Set("Idempotency-Key", k); return h }
	first := do("POST", "/v1/sales/shoes/purchases", `{"quantity":1}`, key("k1"), 201)
	aliceOrder := mustDecode[api.OrderBody](t, first).Order
	replay := do("POST", "/v1/sales/shoes/purchases", `{"quantity":1}`, key("k1"), 201)
	if replay.header.Get("Idempotent-Replayed") != "true" || string(replay.body) != string(first.body) {
		t.Errorf("replay: %v %s, want Idempotent-Replayed and %s", replay.header, replay.body, first.body)
	}
	wantCode(do("POST", "/v1/sales/shoes/purchases", `{"quantity":2}`, key("k1"), 422), "idempotency_mismatch")
	wantCode(do("POST", "/v1/sales/shoes/purchases", `{"quantity":2}`, alice, 409), "limit_reached")
	bad("POST", "/v1/sales/shoes/purchases", `{"quantity":1}`, nil, 401)
	bad("POST", "/v1/sales/shoes/purchases", `{"quantity":0}`, alice, 400)
	bad("POST", "/v1/sales/shoes/purchases", `{"quantity":"1"}`, alice, 400)
	do("POST", "/v1/sales/shoes/purchases", `{"quantity":3}`, alice, 400) // over the per-user limit
	wantCode(do("POST", "/v1/sales/shoes/purchases", `{"quantity":1}`+strings.Repeat(" ", 5000), alice, 413), "too_large")
	wantCode(do("POST", "/v1/sales/shoes/purchases?quantity=2", "", alice, 400), "invalid_request") // no query parameters
	bobToken := hdr("Authorization", "Bearer "+buyerJWT(t, "bob"))
	bobOrder := mustDecode[api.OrderBody](t, do("POST", "/v1/sales/shoes/purchases", `{"quantity":2}`, bobToken, 201)).Order
	wantCode(do("POST", "/v1/sales/shoes/purchases", "", user("carol"), 409), "sold_out")
	wantCode(do("POST", "/v1/sales/later/purchases", "", user("carol"), 409), "not_started")
	wantCode(do("POST", "/v1/sales/nope/purchases", "", user("carol"), 404), "sale_not_found")
	wantCode(do("PATCH", "/v1/sales/shoes", `{"stock":2}`, admin, 409), "stock_below_sold")

	// Orders.
	orderPath := "/v1/orders/" + aliceOrder.ID
	do("GET", orderPath, "", alice, 200)
	do("GET", orderPath, "", admin, 200)
	wantCode(do("GET", orderPath, "", bobToken, 404), "order_not_found")
	wantCode(do("GET", "/v1/orders/o_00000000000000000000000000", "", alice, 404), "order_not_found")
	bad("GET", orderPath, "", nil, 401)
	do("POST", orderPath+"/cancel", "", alice, 200)
	wantCode(do("POST", orderPath+"/cancel", "", alice, 409), "not_cancellable")
	bad("POST", orderPath+"/cancel", "", nil, 401)
	wantCode(bad("POST", orderPath+"/cancel", `{"quantity":1}`, alice, 400), "invalid_request") // no body but {}
	wantCode(do("POST", orderPath+"/cancel?x=1", "", alice, 400), "invalid_request")
	do("POST", "/v1/orders/"+bobOrder.ID+"/pay", "", admin, 200)
	wantCode(do("POST", "/v1/orders/"+bobOrder.ID+"/pay", "", admin, 409), "not_payable")
	wantCode(bad("POST", "/v1/orders/"+bobOrder.ID+"/pay", `{"amount_cents":1}`, admin, 400), "invalid_request")
	wantCode(do("POST", "/v1/orders/"+bobOrder.ID+"/pay", "", bobToken, 401), "unauthenticated")
	wantCode(do("POST", "/v1/orders/o_00000000000000000000000000/pay", "", admin, 404), "order_not_found")
	wantCode(do("POST", "/v1/orders/o_00000000000000000000000000/cancel", "", admin, 404), "order_not_found")

	// The payment webhook.
	dave := mustDecode[api.OrderBody](t, do("POST", "/v1/sales/pay/purchases", "", user("dave"), 201)).Order
	erin := mustDecode[api.OrderBody](t, do("POST", "/v1/sales/pay/purchases", "", user("erin"), 201)).Order
	event := func(id, typ, order string, cents int) string {
		return fmt.Sprintf(`{"id":%q,"type":%q,"order_id":%q,"amount_cents":%d,"currency":"EUR","created":1767225600}`, id, typ, order, cents)
	}
	hook := func(body string, h http.Header, want int) answer {
		t.Helper()
		return do("POST", "/v1/payments/webhook", body, h, want)
	}
	ev := event("evt_1", "payment.succeeded", dave.ID, 1000)
	paid := hook(ev, signature(ev), 200)
	if again := hook(ev, signature(ev), 200); string(again.body) != string(paid.body) {
		t.Errorf("a replayed event answered %s, first %s", again.body, paid.body)
	}
	ev = event("evt_2", "payment.succeeded", erin.ID, 999)
	wantCode(hook(ev, signature(ev), 422), "amount_mismatch")
	ev = event("evt_3", "payment.succeeded", aliceOrder.ID, 1500) // cancelled: refund_due
	if p := mustDecode[api.PaymentBody](t, hook(ev, signature(ev), 200)).Payment; p.Status != "refund_due" {
		t.Errorf("payment for a cancelled order: %+v, want refund_due", p)
	}
	ev = event("evt_4", "payment.failed", erin.ID, 1000)
	hook(ev, signature(ev), 200)
	ev = event("evt_5", "payment.succeeded", "o_00000000000000000000000000", 1000)
	wantCode(hook(ev, signature(ev), 404), "order_not_found")
	// A refund: its answer names the payment it settles.
	ev = event("evt_7", "refund.succeeded", aliceOrder.ID, 1500)
	if p := mustDecode[api.PaymentBody](t, hook(ev, signature(ev), 200)).Payment; p.Status != "refund" || p.Settles != "evt_3" {
		t.Errorf("refund of evt_3: %+v, want a refund settling evt_3", p)
	}
	// Refused by the server, so outside the spec: created in milliseconds
	// (the year 57971), and an id of the operator's settlements.
	ms := strings.Replace(event("evt_ms", "payment.succeeded", erin.ID, 1000), "1767225600", "1767225600000", 1)
	wantCode(bad("POST", "/v1/payments/webhook", ms, signature(ms), 400), "invalid_request")
	bc := strings.Replace(event("evt_bc", "payment.succeeded", erin.ID, 1000), "1767225600", "-62135596801", 1)
	wantCode(bad("POST", "/v1/payments/webhook", bc, signature(bc), 400), "invalid_request")
	manual := event("manual_"+erin.ID, "payment.failed", erin.ID, 1000)
	wantCode(bad("POST", "/v1/payments/webhook", manual, signature(manual), 400), "invalid_request")
	// The first and last seconds the server takes: inside the spec.
	for _, created := range []string{"-62135596800", "253402300799"} {
		ev = strings.Replace(event("evt_at"+created, "payment.failed", erin.ID, 1000), "1767225600", created, 1)
		hook(ev, signature(ev), 200)
	}
	wantCode(hook(ev, hdr("Surge-Signature", "t=1,v1=00"), 401), "invalid_signature")
	c.do(call{base: base, method: "POST", path: "/v1/payments/webhook", body: ev, want: 401, invalid: true})
	c.do(call{base: base, method: "POST", path: "/v1/payments/webhook", body: `{"id":"evt_6"}`, header: signature(`{"id":"evt_6"}`), want: 400, invalid: true})
	huge := event(strings.Repeat("e", 300<<10), "payment.failed", erin.ID, 1)
	c.do(call{base: base, method: "POST", path: "/v1/payments/webhook", body: huge, header: signature(huge), want: 413, invalid: true})

	// The waiting room (the clock stands at the sales' start: the first
	// in the FIFO queue is admitted at once, the second a second later).
	q := "/v1/sales/queued/queue"
	joined := do("POST", q, "", alice, 201)
	aliceQ := mustDecode[api.Queue](t, joined)
	do("POST", q, `{}`, alice, 200)
	bobQ := mustDecode[api.Queue](t, do("POST", q, "", bobToken, 201))
	bad("POST", q, `{"x":1}`, user("carol"), 400)
	bad("POST", q, "", nil, 401)
	wantCode(do("POST", "/v1/sales/shoes/queue", "", alice, 409), "no_waiting_room")
	wantCode(do("POST", "/v1/sales/nope/queue", "", alice, 404), "sale_not_found")
	wantCode(do("POST", q, "{}"+strings.Repeat(" ", 5000), user("carol"), 413), "too_large")
	ticket := func(tk string) http.Header { return hdr(surgehttp.TicketHeader, tk) }
	do("GET", q, "", ticket(aliceQ.Ticket), 200)
	wantCode(do("GET", q, "", nil, 403), "invalid_ticket")
	wantCode(do("GET", q, "", ticket("bogus"), 403), "invalid_ticket")
	wantCode(do("GET", "/v1/sales/shoes/queue", "", ticket(aliceQ.Ticket), 409), "no_waiting_room")
	wantCode(do("GET", "/v1/sales/nope/queue", "", ticket(aliceQ.Ticket), 404), "sale_not_found")
	wantCode(do("GET", q+"/events", "", ticket("bogus"), 403), "invalid_ticket")
	wantCode(do("GET", "/v1/sales/shoes/queue/events", "", nil, 409), "no_waiting_room")
	wantCode(do("GET", "/v1/sales/nope/queue/events", "", nil, 404), "sale_not_found")
	if aliceQ.Status != "admitted" {
		t.Fatalf("the first in a FIFO queue at the sale's start: %+v, want admitted", aliceQ)
	}
	wantCode(do("POST", "/v1/sales/queued/purchases", "", bobToken.Clone(), 403), "not_admitted")
	bobTicket := bobToken.Clone()
	bobTicket.Set(surgehttp.TicketHeader, bobQ.Ticket)
	wantCode(do("POST", "/v1/sales/queued/purchases", "", bobTicket, 403), "not_admitted")
	aliceTicket := alice.Clone()
	aliceTicket.Set(surgehttp.TicketHeader, aliceQ.Ticket)
	do("POST", "/v1/sales/queued/purchases", "", aliceTicket, 201)
	// An admitted ticket's stream is one event; it ends by itself.
	stream := do("GET", q+"/events?ticket="+url.QueryEscape(aliceQ.Ticket), "", nil, 200)
	if ev := c.validateEvents(base, "queued", stream.body); !slices.Equal(ev, []string{"admitted"}) {
		t.Errorf("the stream of an admitted ticket: events %v, want [admitted]", ev)
	}
	stream = do("GET", q, "", hdr(surgehttp.TicketHeader, aliceQ.Ticket, "Accept", "text/event-stream"), 200)
	c.validateEvents(base, "queued", stream.body)

	// A lottery before its draw: the place is unknown (null) and the
	// stream stays open; it takes the only stream slot.
	lq := "/v1/sales/lottery/queue"
	frank := mustDecode[api.Queue](t, do("POST", lq, "", user("frank"), 201))
	gina := mustDecode[api.Queue](t, do("POST", lq, "", user("gina"), 201))
	if frank.Position != nil || frank.Status != "waiting" {
		t.Errorf("a lottery's place before the draw: %+v", frank)
	}
	open, hangUp := c.open(call{base: base, method: "GET", path: lq + "/events", header: ticket(frank.Ticket), want: 200, stream: true})
	if ev := c.validateEvents(base, "lottery", open.body); !slices.Equal(ev, []string{"position"}) {
		t.Errorf("the stream of a waiting ticket begins with %v, want [position]", ev)
	}
	wantCode(do("GET", lq+"/events", "", ticket(frank.Ticket), 429), "rate_limited")
	wantCode(do("GET", lq+"/events", "", ticket(gina.Ticket), 503), "overloaded")
	hangUp()

	// The end of sales: the clock moves past ends_at.
	clk.Advance(31 * time.Second)
	wantCode(do("POST", "/v1/sales/ending/purchases", "", user("carol"), 409), "ended")
	wantCode(do("POST", "/v1/sales/queued-end/queue", "", user("carol"), 409), "ended")
	wantCode(do("POST", "/v1/sales/shoes/archive", "", admin, 409), "not_archivable")
	do("PATCH", "/v1/sales/ending", `{"ends_at":"now"}`, admin, 200) // ended: keeps its end
	wantCode(bad("POST", "/v1/sales/shoes/archive", `{"force":true}`, admin, 400), "invalid_request")
	do("POST", "/v1/sales/ending/archive", "", admin, 200)
	do("POST", "/v1/sales/ending/archive", "", admin, 200)
	wantCode(do("POST", "/v1/sales/nope/archive", "", admin, 404), "sale_not_found")
	bad("POST", "/v1/sales/ending/archive", "", nil, 401)
	do("GET", "/v1/sales?archived=true", "", nil, 200)
	wantCode(do("PATCH", "/v1/sales/ending", `{"name":"Archived"}`, admin, 404), "sale_not_found")

	// The export: each line is validated as the order object it is.
	export := do("GET", "/v1/sales/shoes/orders", "", admin, 200)
	lines := strings.Split(strings.TrimSpace(string(export.body)), "\n")
	if len(lines) != 2 {
		t.Errorf("export: %d lines, want 2:\n%s", len(lines), export.body)
	}
	wantCode(do("GET", "/v1/sales/nope/orders", "", admin, 404), "sale_not_found")
	bad("GET", "/v1/sales/shoes/orders", "", nil, 401)

	// Admin pages on the API's listener.
	do("GET", "/metrics", "", admin, 200)
	bad("GET", "/metrics", "", nil, 401)
	do("GET", "/dashboard", "", nil, 401)
	do("GET", "/dashboard", "", admin, 200)
	form := hdr("Content-Type", "application/x-www-form-urlencoded")
	do("POST", "/dashboard/login", "token=wrong", form, 401)
	login := do("POST", "/dashboard/login", "token="+url.QueryEscape(adminToken), form, 303)
	cookie := hdr("Cookie", strings.Split(login.header.Get("Set-Cookie"), ";")[0])
	do("GET", "/dashboard", "", cookie, 200)
	c.do(call{base: base, method: "GET", path: "/dashboard/events", header: admin, want: 200, stream: true})
	bad("GET", "/dashboard/events", "", nil, 401)
	c.do(call{base: base, method: "GET", path: "/dashboard/events?page=2", header: admin, want: 200, stream: true})
	wantCode(bad("GET", "/dashboard/events?page=0", "", admin, 400), "invalid_request")
	do("GET", "/dashboard/dashboard.js", "", nil, 200)
	do("GET", "/dashboard/dashboard.css", "", nil, 200)

	// The public listener of a split deployment hides them.
	for _, k := range []call{
		{method: "POST", path: "/v1/sales", body: `{"name":"x","stock":1}`},
		{method: "PATCH", path: "/v1/sales/shoes", body: `{}`},
		{method: "POST", path: "/v1/orders/" + bobOrder.ID + "/pay"},
		{method: "GET", path: "/metrics"},
		{method: "GET", path: "/dashboard"},
	} {
		k.base, k.header, k.want = public.URL, admin, 404
		wantCode(c.do(k), "not_found")
	}

	// The ops listener.
	c.do(call{base: ops.URL, method: "GET", path: "/debug/stats", header: admin, want: 200})
	c.do(call{base: ops.URL, method: "GET", path: "/debug/stats", want: 401, invalid: true})
	c.do(call{base: ops.URL, method: "GET", path: "/debug/pprof/", header: admin, want: 200})
	c.do(call{base: ops.URL, method: "GET", path: "/debug/pprof/heap?debug=1", header: admin, want: 200})
	c.do(call{base: ops.URL, method: "GET", path: "/debug/pprof/cmdline", header: admin, want: 404})

	// The per-address rate limit (a server of its own: it counts every request).
	c.do(call{base: limited.URL, method: "GET", path: "/v1/sales/shoes", want: 200})
	a := c.do(call{base: limited.URL, method: "GET", path: "/v1/sales/shoes", want: 429})
	wantCode(a, "rate_limited")

	// Shutting down.
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(do("GET", "/readyz", "", nil, 503), "unavailable")
	wantCode(do("POST", "/v1/sales/pay/purchases", "", user("hank"), 503), "unavailable")

	// Every operation answered at least once with success.
	routes, opsRoutes := specOps(doc)
	for op := range opsRoutes {
		routes[op] = true
	}
	var missed []string
	for op := range routes {
		ok := false
		for status := range c.answered[op] {
			ok = ok || status < 400
		}
		if !ok {
			missed = append(missed, op)
		}
	}
	slices.Sort(missed)
	if len(missed) > 0 {
		t.Errorf("the scenario never had a success from %v", missed)
	}
	n := 0
	for _, statuses := range c.answered {
		n += len(statuses)
	}
	t.Logf("%d operations, %d (operation, status) answers validated", len(routes), n)
}
