package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/sqlite"
)

// listPage is a page of GET /v1/sales, its shape checked.
type listPage struct {
	ids  []string
	next string // "" when the answer has no next_cursor
}

// page reads one page of GET /v1/sales with the query q and checks that
// the body holds exactly "sales" and, when present, a non-empty
// "next_cursor".
func (e *env) page(tb testing.TB, q url.Values) listPage {
	tb.Helper()
	r := e.do(tb, "GET", "/v1/sales?"+q.Encode(), "")
	wantStatus(tb, r, http.StatusOK)
	checkJSONType(tb, r)
	var body map[string]json.RawMessage
	if err := decodeStrict(r.body, &body); err != nil {
		tb.Fatalf("GET /v1/sales?%s = %s (%v)", q.Encode(), r.body, err)
	}
	var p listPage
	for k, v := range body {
		switch k {
		case "sales":
			var list []json.RawMessage
			if err := json.Unmarshal(v, &list); err != nil || list == nil {
				tb.Fatalf("sales = %s (%v)", v, err)
			}
			for _, raw := range list {
				var s struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(raw, &s); err != nil {
					tb.Fatalf("sale %s: %v", raw, err)
				}
				p.ids = append(p.ids, s.ID)
			}
		case "next_cursor":
			if err := json.Unmarshal(v, &p.next); err != nil || p.next == "" {
				tb.Fatalf("next_cursor = %s, want a non-empty string (%v)", v, err)
			}
		default:
			tb.Fatalf("GET /v1/sales answered an unknown key %q: %s", k, r.body)
		}
	}
	if _, ok := body["sales"]; !ok {
		tb.Fatalf("GET /v1/sales without \"sales\": %s", r.body)
	}
	return p
}

// walk follows next_cursor from the first page and returns every page.
func (e *env) walk(tb testing.TB, q url.Values) []listPage {
	tb.Helper()
	var pages []listPage
	for {
		p := e.page(tb, q)
		pages = append(pages, p)
		if p.next == "" || len(pages) > 1000 {
			return pages
		}
		q = cloneValues(q)
		q.Set("cursor", p.next)
	}
}

func cloneValues(q url.Values) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = slices.Clone(v)
	}
	return c
}

// createSales creates n sales s000, s001, … one millisecond apart, so
// their listing order is their creation order.
func (e *env) createSales(tb testing.TB, n int, extra string) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%03d", i)
		e.createSale(tb, fmt.Sprintf(`{"id":%q,"name":"Sale %d","stock":5%s}`, ids[i], i, extra))
		e.clock.Advance(time.Millisecond)
	}
	return ids
}

// GET /v1/sales pages by cursor (issue 9, item 12): every sale once, in
// creation order, next_cursor on every page but the last.
func TestSalesPagination(t *testing.T) {
	e := newEnv(t, envOptions{})
	all := e.createSales(t, 7, "")
	cases := []struct {
		name  string
		limit string // "" leaves it out
		sizes []int  // the pages' lengths
	}{
		{"default limit", "", []int{7}},
		{"one per page", "1", []int{1, 1, 1, 1, 1, 1, 1}},
		{"uneven", "3", []int{3, 3, 1}},
		{"exact", "7", []int{7}},
		{"larger than the list", "1000", []int{7}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := url.Values{}
			if c.limit != "" {
				q.Set("limit", c.limit)
			}
			pages := e.walk(t, q)
			var ids []string
			var sizes []int
			for _, p := range pages {
				ids = append(ids, p.ids...)
				sizes = append(sizes, len(p.ids))
			}
			if !slices.Equal(ids, all) {
				t.Errorf("listed %v, want %v", ids, all)
			}
			if !slices.Equal(sizes, c.sizes) {
				t.Errorf("page sizes %v, want %v", sizes, c.sizes)
			}
		})
	}
	t.Run("no next_cursor on the last page", func(t *testing.T) {
		r := e.do(t, "GET", "/v1/sales?limit=7", "")
		wantStatus(t, r, http.StatusOK)
		var body map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 1 {
			t.Errorf("body = %s (%v), want only \"sales\"", r.body, err)
		}
	})
	t.Run("a sale created meanwhile comes on a later page", func(t *testing.T) {
		first := e.page(t, url.Values{"limit": {"4"}})
		e.createSale(t, `{"id":"late","name":"Late","stock":1}`)
		q := url.Values{"limit": {"4"}, "cursor": {first.next}}
		var rest []string
		for _, p := range e.walk(t, q) {
			rest = append(rest, p.ids...)
		}
		if want := append(slices.Clone(all[4:]), "late"); !slices.Equal(rest, want) {
			t.Errorf("after the first page: %v, want %v", rest, want)
		}
	})
}

// The default page is 100 sales.
func TestSalesPageDefault(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSales(t, surgehttp.DefaultSalesPage+1, "")
	p := e.page(t, url.Values{})
	if len(p.ids) != surgehttp.DefaultSalesPage || p.next == "" {
		t.Fatalf("first page: %d sales, next_cursor %q; want %d and a cursor", len(p.ids), p.next, surgehttp.DefaultSalesPage)
	}
	last := e.page(t, url.Values{"cursor": {p.next}})
	if !slices.Equal(last.ids, []string{fmt.Sprintf("s%03d", surgehttp.DefaultSalesPage)}) || last.next != "" {
		t.Errorf("second page %+v, want the last sale alone", last)
	}
}

// A bad limit, cursor or archived flag is 400 invalid_request.
func TestSalesListInvalid(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSales(t, 3, ` ,"ends_at":"2031-03-14T10:00:00Z"`)
	live := e.page(t, url.Values{"limit": {"1"}}).next
	e.clock.Advance(2 * time.Hour)
	wantStatus(t, e.do(t, "POST", "/v1/sales/s000/archive", "", asAdmin()), http.StatusOK)
	wantStatus(t, e.do(t, "POST", "/v1/sales/s001/archive", "", asAdmin()), http.StatusOK)
	archived := e.page(t, url.Values{"limit": {"1"}, "archived": {"true"}}).next
	if live == "" || archived == "" {
		t.Fatal("no cursors to test with")
	}
	for _, q := range []string{
		"limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=1.5", "limit=", "limit=1e2", "limit=%201",
		"limit=99999999999999999999", "limit=1&limit=2",
		"cursor=", "cursor=not-a-cursor", "cursor=%00", "cursor=" + live + "x", "cursor=" + live + "&cursor=" + live,
		"cursor=" + archived, // the archived listing's cursor on the live one
		"archived=true&cursor=" + live,
		"archived=yes", "archived=1", "archived=", "archived=true&archived=false",
	} {
		t.Run(q, func(t *testing.T) {
			wantError(t, e.do(t, "GET", "/v1/sales?"+q, ""), http.StatusBadRequest, string(surge.CodeInvalid))
		})
	}
	// Both listings still work with their own cursors.
	if p := e.page(t, url.Values{"cursor": {live}}); !slices.Equal(p.ids, []string{"s002"}) {
		t.Errorf("live listing after its cursor: %v", p.ids)
	}
	if p := e.page(t, url.Values{"cursor": {archived}, "archived": {"true"}}); !slices.Equal(p.ids, []string{"s001"}) {
		t.Errorf("archived listing after its cursor: %v", p.ids)
	}
}

// POST /v1/sales/{id}/archive: 200 with the archived sale, again 200;
// 409 not_archivable before the end or with held units; 404; 401.
func TestArchiveSale(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"done","name":"Done","stock":5,"ends_at":"2031-03-14T10:00:00Z","hold_seconds":7200}`)
	e.createSale(t, `{"id":"open","name":"Open","stock":5}`)
	paid := e.buy(t, "done", asUser(t, "alice"))
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+paid.ID+"/pay", "", asAdmin()), http.StatusOK)
	held := e.buy(t, "done", asUser(t, "bob"))

	archive := func(id string, opts ...opt) response {
		return e.do(t, "POST", "/v1/sales/"+id+"/archive", "", opts...)
	}
	notArchivable := func(r response, mentions string) {
		t.Helper()
		wantError(t, r, http.StatusConflict, string(surge.CodeNotArchivable))
		var body apiError
		_ = json.Unmarshal(r.body, &body)
		if !strings.Contains(body.Error.Message, mentions) {
			t.Errorf("message %q does not say %q", body.Error.Message, mentions)
		}
	}
	notArchivable(archive("done", asAdmin()), "has not ended")
	notArchivable(archive("open", asAdmin()), "has not ended")
	wantError(t, archive("nope", asAdmin()), http.StatusNotFound, string(surge.CodeSaleNotFound))
	wantError(t, archive("bad%20id", asAdmin()), http.StatusNotFound, string(surge.CodeSaleNotFound))
	wantError(t, archive("done"), http.StatusUnauthorized, "unauthenticated")
	wantError(t, archive("done", bearerAuth("wrong-token-wrong-token")), http.StatusUnauthorized, "unauthenticated")
	wantError(t, archive("done", asUser(t, "alice")), http.StatusUnauthorized, "unauthenticated")
	wantError(t, e.do(t, "GET", "/v1/sales/done/archive", "", asAdmin()), http.StatusMethodNotAllowed, "method_not_allowed")

	e.clock.Advance(time.Hour) // ended; bob's hold runs one more hour
	notArchivable(archive("done", asAdmin()), "reserved")
	if got := e.sale(t, "done"); got.Status != "ended" {
		t.Fatalf("a refused archive changed the sale: %+v", got)
	}
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+held.ID+"/cancel", "", asAdmin()), http.StatusOK)

	wantArchived := func(r response) {
		t.Helper()
		wantStatus(t, r, http.StatusOK)
		checkJSONType(t, r)
		var got struct {
			ID        string `json:"id"`
			Status    string `json:"status"`
			Remaining int64  `json:"remaining"`
			Archived  bool   `json:"archived"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil || got.ID != "done" || got.Status != "ended" ||
			got.Remaining != 4 || !got.Archived {
			t.Errorf("archived sale = %s (%v), want done, ended, 4 left, \"archived\":true", r.body, err)
		}
	}
	first := archive("done", asAdmin())
	wantArchived(first)
	again := archive("done", asAdmin())
	wantArchived(again)
	if string(again.body) != string(first.body) {
		t.Errorf("archiving again answered %s, first %s", again.body, first.body)
	}
	wantArchived(e.do(t, "GET", "/v1/sales/done", ""))

	if p := e.page(t, url.Values{}); !slices.Equal(p.ids, []string{"open"}) {
		t.Errorf("live listing %v, want [open]", p.ids)
	}
	if p := e.page(t, url.Values{"archived": {"true"}}); !slices.Equal(p.ids, []string{"done"}) {
		t.Errorf("archived listing %v, want [done]", p.ids)
	}
	if p := e.page(t, url.Values{"archived": {"false"}}); !slices.Equal(p.ids, []string{"open"}) {
		t.Errorf("archived=false listing %v, want [open]", p.ids)
	}
	if got := e.export(t, "done"); len(got) != 2 || got[0].ID != paid.ID || got[1].ID != held.ID {
		t.Errorf("export of the archived sale = %+v", got)
	}
	wantError(t, e.do(t, "POST", "/v1/sales/done/purchases", "", asUser(t, "carol")), http.StatusNotFound, string(surge.CodeSaleNotFound))
	// The other sale is untouched.
	e.buy(t, "open", asUser(t, "alice"))
}

// countingStore counts every call that reaches the store.
type countingStore struct {
	*sqlite.Store
	calls atomic.Int64
}

func (c *countingStore) CreateSale(ctx context.Context, s surge.Sale) error {
	c.calls.Add(1)
	return c.Store.CreateSale(ctx, s)
}

func (c *countingStore) Sales(ctx context.Context) ([]surge.Sale, error) {
	c.calls.Add(1)
	return c.Store.Sales(ctx)
}

func (c *countingStore) Reserve(ctx context.Context, id string, b []surge.Purchase, clock func() time.Time) ([]surge.Outcome, int64, error) {
	c.calls.Add(1)
	return c.Store.Reserve(ctx, id, b, clock)
}

func (c *countingStore) Cancel(ctx context.Context, id string, now time.Time) (surge.Order, error) {
	c.calls.Add(1)
	return c.Store.Cancel(ctx, id, now)
}

func (c *countingStore) Pay(ctx context.Context, id string, now time.Time) (surge.Order, error) {
	c.calls.Add(1)
	return c.Store.Pay(ctx, id, now)
}

func (c *countingStore) Expire(ctx context.Context, now time.Time) ([]surge.Order, error) {
	c.calls.Add(1)
	return c.Store.Expire(ctx, now)
}

func (c *countingStore) Order(ctx context.Context, id string) (surge.Order, error) {
	c.calls.Add(1)
	return c.Store.Order(ctx, id)
}

func (c *countingStore) Orders(ctx context.Context, id string, fn func(surge.Order) error) error {
	c.calls.Add(1)
	return c.Store.Orders(ctx, id, fn)
}

func (c *countingStore) Remaining(ctx context.Context, id string) (int64, error) {
	c.calls.Add(1)
	return c.Store.Remaining(ctx, id)
}

func (c *countingStore) ArchiveSale(ctx context.Context, id string, now time.Time) (surge.ArchivedSale, error) {
	c.calls.Add(1)
	return c.Store.ArchiveSale(ctx, id, now)
}

func (c *countingStore) ArchivedSales(ctx context.Context) ([]surge.ArchivedSale, error) {
	c.calls.Add(1)
	return c.Store.ArchivedSales(ctx)
}

// A flood of listings, live and archived, every page, makes no store call:
// they are served from the engine's memory (issue 9, item 12: a flood of
// GET /v1/sales pushed purchase p50 from 2.8 to 349 ms).
func TestSalesListFloodNoStoreCalls(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	clk := testclock.New(epoch)
	eng, err := engine.Open(ctx, cs, engine.Config{Now: clk.Now, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{eng: eng, store: st, clock: clk,
		handler: surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, Logger: quietLog})}
	e.srv = httptest.NewServer(e.handler)
	t.Cleanup(func() {
		e.srv.Close()
		if err := eng.Close(); err != nil {
			t.Error(err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	e.createSales(t, 30, ` ,"ends_at":"2031-03-14T10:00:00Z"`)
	clk.Advance(2 * time.Hour)
	for _, id := range []string{"s003", "s010", "s020"} {
		wantStatus(t, e.do(t, "POST", "/v1/sales/"+id+"/archive", "", asAdmin()), http.StatusOK)
	}
	before := cs.calls.Load()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				q := url.Values{"limit": {fmt.Sprint(1 + (g+i)%9)}}
				if i%3 == 0 {
					q.Set("archived", "true")
				}
				n := 0
				for _, p := range e.walk(t, q) {
					n += len(p.ids)
				}
				if want := map[bool]int{true: 3, false: 27}[q.Get("archived") == "true"]; n != want {
					t.Errorf("listing %v saw %d sales, want %d", q, n, want)
				}
				wantStatus(t, e.do(t, "GET", "/v1/sales/s005", ""), http.StatusOK)
				wantStatus(t, e.do(t, "GET", "/v1/sales/s010", ""), http.StatusOK)
			}
		}()
	}
	wg.Wait()
	if n := cs.calls.Load() - before; n != 0 {
		t.Errorf("the listings made %d store calls, want 0", n)
	}
}

// A waiting-room sale whose starts_at lies 200 years back is refused: the
// schedule counts admissions from it in a time.Duration, which would
// overflow (issue 9, item 13).
func TestWaitingRoomAncientStart(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, start := range []string{"1831-03-14T09:26:53Z", "2231-03-14T09:26:53Z", "0001-01-01T00:00:00Z"} {
		r := e.do(t, "POST", "/v1/sales", `{"id":"wr","name":"Room","stock":10,"starts_at":"`+start+
			`","waiting_room":{"admit_per_second":10,"order":"fifo","ticket_seconds":60}}`, asAdmin())
		wantError(t, r, http.StatusBadRequest, string(surge.CodeInvalid))
	}
	wantError(t, e.do(t, "GET", "/v1/sales/wr", ""), http.StatusNotFound, string(surge.CodeSaleNotFound))
	// Within 100 years it is accepted.
	e.createSale(t, `{"id":"wr","name":"Room","stock":10,"starts_at":"1941-03-14T09:26:53Z",
		"waiting_room":{"admit_per_second":10,"order":"fifo","ticket_seconds":60}}`)
}

// BenchmarkListSales measures a page of GET /v1/sales over 1,000 sales
// (the page's cost does not grow with the sales before it: the cursor is
// found by binary search), to decide whether pages need a cache.
func BenchmarkListSales(b *testing.B) {
	h, eng, _ := benchAPI(b, 10)
	ctx := context.Background()
	for i := range 999 {
		id, name, stock := fmt.Sprintf("b%04d", i), "Bench sale", int64(10)
		if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
			b.Fatal(err)
		}
	}
	for _, limit := range []int{100, 1000} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			path := fmt.Sprintf("/v1/sales?limit=%d", limit)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		})
	}
}

// Times that are not RFC 3339 are refused, 400, and change nothing, even
// those Go's time.Parse accepts (go.dev/issue/54580): a time-zone offset
// hour of 24 or minute of 60 (RFC 3339's time-numoffset is 00-23:00-59),
// a comma before the fraction, a one-digit hour. Accepted, "+24:00" put
// the sale a whole day away from any instant the operator can have meant.
func TestNotRFC3339TimesRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	bad := []string{
		"2031-03-14T10:00:00+24:00",
		"2031-03-14T10:00:00-23:60",
		"2031-03-14T10:00:00,5Z",
		"2031-03-14T9:00:00Z",
	}
	for i, ts := range bad {
		id := fmt.Sprintf("x%d", i)
		r := e.do(t, "POST", "/v1/sales", `{"id":"`+id+`","name":"x","stock":1,"starts_at":"`+ts+`"}`, asAdmin())
		if r.status != http.StatusBadRequest {
			t.Errorf("POST /v1/sales with starts_at %q: status %d, want 400 (not RFC 3339); body %s", ts, r.status, r.body)
			continue
		}
		wantError(t, r, http.StatusBadRequest, string(surge.CodeInvalid))
		wantError(t, e.do(t, "GET", "/v1/sales/"+id, ""), http.StatusNotFound, string(surge.CodeSaleNotFound))
	}
	e.createSale(t, `{"id":"s","name":"s","stock":1,"starts_at":"2031-03-14T10:00:00Z"}`)
	for _, ts := range bad {
		r := e.do(t, "PATCH", "/v1/sales/s", `{"ends_at":"`+ts+`"}`, asAdmin())
		if r.status != http.StatusBadRequest {
			t.Errorf("PATCH ends_at %q: status %d, want 400 (not RFC 3339); body %s", ts, r.status, r.body)
		}
	}
	if got := e.sale(t, "s").EndsAt; got != nil {
		t.Errorf("ends_at after refused PATCHes = %s, want null (unchanged)", *got)
	}
	// RFC 3339's own forms stay accepted: offsets up to ±23:59, a
	// fraction after a period.
	e.createSale(t, `{"id":"ok","name":"ok","stock":1,"starts_at":"2031-03-14T10:00:00.5+23:59","ends_at":"2031-03-15T10:00:00-23:59"}`)
}
