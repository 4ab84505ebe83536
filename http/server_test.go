package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/sqlite"
)

// ts formats epoch+d the way the API sends times.
func ts(d time.Duration) string {
	return epoch.Add(d).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func ptr[T any](v T) *T { return &v }

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, path := range []string{"/healthz", "/readyz"} {
		r := e.do(t, "GET", path, "")
		wantStatus(t, r, http.StatusOK)
		checkJSONType(t, r)
	}

	// A sale to purchase from once the engine is closed.
	e.createSale(t, `{"id":"after-close","name":"After close","stock":5}`)
	if err := e.eng.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.do(t, "GET", "/readyz", "")
	wantError(t, r, http.StatusServiceUnavailable, "unavailable")
	if got := r.header.Get("Retry-After"); got == "" {
		t.Error("503 without Retry-After")
	}
	wantStatus(t, e.do(t, "GET", "/healthz", ""), http.StatusOK)
	// Purchases and new sales are refused while shutting down, in JSON.
	r = e.do(t, "POST", "/v1/sales/after-close/purchases", "", asUser(t, "alice"))
	wantError(t, r, http.StatusServiceUnavailable, "unavailable")
	r = e.do(t, "POST", "/v1/sales", `{"name":"late","stock":1}`, asAdmin())
	wantError(t, r, http.StatusServiceUnavailable, "unavailable")
	if s := e.sale(t, "after-close"); s.Remaining != 5 {
		t.Errorf("remaining = %d after refused purchase, want 5", s.Remaining)
	}
}

func TestCreateSaleDefaults(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(t, "POST", "/v1/sales", `{"name":"Drop","stock":10}`, asAdmin())
	wantStatus(t, r, http.StatusCreated)
	if !bytes.Contains(r.body, []byte(`"ends_at":null`)) {
		t.Errorf("ends_at is not null in %s", r.body)
	}
	got := mustSale(t, r)
	want := api.Sale{
		ID: got.ID, Name: "Drop", Stock: 10, Remaining: 10, PerUserLimit: 1, PriceCents: 0,
		Currency: "USD", StartsAt: ts(0), EndsAt: nil, HoldSeconds: 900, Status: "live",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("created sale = %+v\nwant %+v", got, want)
	}
	if fetched := e.sale(t, got.ID); !reflect.DeepEqual(fetched, want) {
		t.Errorf("GET sale = %+v\nwant %+v", fetched, want)
	}
	other := e.createSale(t, `{"name":"Drop","stock":10}`)
	if other.ID == got.ID {
		t.Errorf("two generated sale ids are equal: %s", got.ID)
	}
}

func TestCreateSale(t *testing.T) {
	long := strings.Repeat("x", surge.MaxIDLen)
	cases := []struct {
		name string
		body string
		want api.Sale
	}{{
		name: "every field",
		body: `{"id":"drop-1_A","name":"Sneakers","stock":100,"per_user_limit":3,"price_cents":12999,"currency":"EUR",` +
			`"starts_at":"2031-03-14T10:00:00+01:00","ends_at":"2031-03-15T09:26:53.123456789Z","hold_seconds":60}`,
		want: api.Sale{ID: "drop-1_A", Name: "Sneakers", Stock: 100, Remaining: 100, PerUserLimit: 3, PriceCents: 12999,
			Currency: "EUR", StartsAt: "2031-03-14T09:00:00.000Z", EndsAt: ptr("2031-03-15T09:26:53.123Z"),
			HoldSeconds: 60, Status: "live"},
	}, {
		name: "starts in the future",
		body: `{"id":"later","name":"Later","stock":5,"starts_at":"` + ts(time.Hour) + `"}`,
		want: api.Sale{ID: "later", Name: "Later", Stock: 5, Remaining: 5, PerUserLimit: 1, Currency: "USD",
			StartsAt: ts(time.Hour), HoldSeconds: 900, Status: "upcoming"},
	}, {
		name: "already ended",
		body: `{"id":"past","name":"Past","stock":5,"starts_at":"` + ts(-2*time.Hour) + `","ends_at":"` + ts(-time.Hour) + `"}`,
		want: api.Sale{ID: "past", Name: "Past", Stock: 5, Remaining: 5, PerUserLimit: 1, Currency: "USD",
			StartsAt: ts(-2 * time.Hour), EndsAt: ptr(ts(-time.Hour)), HoldSeconds: 900, Status: "ended"},
	}, {
		name: "explicit nulls take defaults",
		body: `{"id":null,"name":"Nulls","stock":2,"per_user_limit":null,"ends_at":null,"hold_seconds":null}`,
		want: api.Sale{Name: "Nulls", Stock: 2, Remaining: 2, PerUserLimit: 1, Currency: "USD",
			StartsAt: ts(0), HoldSeconds: 900, Status: "live"},
	}, {
		name: "limits at their bounds",
		body: fmt.Sprintf(`{"id":%q,"name":"Max","stock":%d,"per_user_limit":%d,"hold_seconds":%d,"price_cents":0}`,
			long, surge.MaxStock, surge.MaxStock, surge.MaxHoldSeconds),
		want: api.Sale{ID: long, Name: "Max", Stock: surge.MaxStock, Remaining: surge.MaxStock, PerUserLimit: surge.MaxStock,
			Currency: "USD", StartsAt: ts(0), HoldSeconds: surge.MaxHoldSeconds, Status: "live"},
	}, {
		name: "unicode and markup in the name",
		body: `{"id":"u","name":"Été <b>&</b> 🌞","stock":1,"hold_seconds":1}`,
		want: api.Sale{ID: "u", Name: "Été <b>&</b> 🌞", Stock: 1, Remaining: 1, PerUserLimit: 1, Currency: "USD",
			StartsAt: ts(0), HoldSeconds: 1, Status: "live"},
	}, {
		name: "times at the edges of RFC 3339",
		body: `{"id":"edges","name":"Edges","stock":1,"starts_at":"0001-01-01T00:00:00Z","ends_at":"9999-12-31T23:59:59.999Z"}`,
		want: api.Sale{ID: "edges", Name: "Edges", Stock: 1, Remaining: 1, PerUserLimit: 1, Currency: "USD",
			StartsAt: "0001-01-01T00:00:00.000Z", EndsAt: ptr("9999-12-31T23:59:59.999Z"), HoldSeconds: 900, Status: "live"},
	}}
	e := newEnv(t, envOptions{})
	var created []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.createSale(t, c.body)
			created = append(created, got.ID)
			want := c.want
			if want.ID == "" {
				want.ID = got.ID
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("created sale = %+v\nwant %+v", got, want)
			}
			if fetched := e.sale(t, got.ID); !reflect.DeepEqual(fetched, want) {
				t.Errorf("GET sale = %+v\nwant %+v", fetched, want)
			}
		})
	}

	// The list holds every sale, in the same shape.
	var listed []string
	for _, s := range e.list(t) {
		listed = append(listed, s.ID)
	}
	slices.Sort(listed)
	slices.Sort(created)
	if !slices.Equal(listed, created) {
		t.Errorf("listed sales %v, want %v", listed, created)
	}
}

func TestListSalesEmpty(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(t, "GET", "/v1/sales", "")
	wantStatus(t, r, http.StatusOK)
	checkJSONType(t, r)
	if got := string(bytes.TrimSpace(r.body)); got != `{"sales":[]}` {
		t.Errorf("empty list = %s, want {\"sales\":[]}", got)
	}
}

func TestCreateSaleRejected(t *testing.T) {
	e := newEnv(t, envOptions{})
	taken := e.createSale(t, `{"id":"taken","name":"Original","stock":3}`)
	list := func() []byte {
		r := e.do(t, "GET", "/v1/sales", "")
		wantStatus(t, r, http.StatusOK)
		return r.body
	}
	before := list()

	valid := `"name":"x","stock":1`
	cases := []struct {
		name   string
		body   string
		opts   []opt
		status int
		code   string
	}{
		{"empty body", ``, nil, 400, "invalid_request"},
		{"blank body", " \n\t", nil, 400, "invalid_request"},
		{"null body", `null`, nil, 400, "invalid_request"},
		{"array body", `[{` + valid + `}]`, nil, 400, "invalid_request"},
		{"string body", `"sale"`, nil, 400, "invalid_request"},
		{"truncated JSON", `{` + valid, nil, 400, "invalid_request"},
		{"unquoted key", `{name:"x","stock":1}`, nil, 400, "invalid_request"},
		{"not JSON", "\x00\xff\xfe", nil, 400, "invalid_request"},
		{"unknown field", `{` + valid + `,"colour":"red"}`, nil, 400, "invalid_request"},
		{"remaining is not an input", `{` + valid + `,"remaining":1}`, nil, 400, "invalid_request"},
		{"trailing object", `{` + valid + `}{}`, nil, 400, "invalid_request"},
		{"trailing garbage", `{` + valid + `} x`, nil, 400, "invalid_request"},
		{"duplicate name", `{` + valid + `,"stock":2}`, nil, 400, "invalid_request"},
		{"duplicate name, same value", `{` + valid + `,"stock":1}`, nil, 400, "invalid_request"},
		{"duplicate name, escaped", `{` + valid + `,"st\u006fck":1}`, nil, 400, "invalid_request"},
		{"name in upper case", `{"NAME":"x","stock":1}`, nil, 400, "invalid_request"},
		{"name in title case", `{"name":"x","Stock":1}`, nil, 400, "invalid_request"},
		{"name folding to stock", `{"name":"x","\u017ftoc\u212a":1}`, nil, 400, "invalid_request"},
		{"invalid UTF-8 in a string", "{\"name\":\"\xff\",\"stock\":1}", nil, 400, "invalid_request"},
		{"missing name", `{"stock":1}`, nil, 400, "invalid_request"},
		{"blank name", `{"name":"  ","stock":1}`, nil, 400, "invalid_request"},
		{"name too long", `{"name":"` + strings.Repeat("n", surge.MaxNameLen+1) + `","stock":1}`, nil, 400, "invalid_request"},
		{"name not a string", `{"name":5,"stock":1}`, nil, 400, "invalid_request"},
		{"name with NUL", `{"name":"a\u0000b","stock":1}`, nil, 400, "invalid_request"},
		{"name with a newline", `{"name":"a\nb","stock":1}`, nil, 400, "invalid_request"},
		{"name with an escape sequence", `{"name":"\u001b[31mred","stock":1}`, nil, 400, "invalid_request"},
		{"name with a C1 control", `{"name":"a\u0085b","stock":1}`, nil, 400, "invalid_request"},
		{"name with a right-to-left override", `{"name":"Phone \u202egnp.exe","stock":1}`, nil, 400, "invalid_request"},
		{"name with a bidi isolate", `{"name":"a\u2067b\u2069","stock":1}`, nil, 400, "invalid_request"},
		{"missing stock", `{"name":"x"}`, nil, 400, "invalid_request"},
		{"null stock", `{"name":"x","stock":null}`, nil, 400, "invalid_request"},
		{"zero stock", `{"name":"x","stock":0}`, nil, 400, "invalid_request"},
		{"negative stock", `{"name":"x","stock":-1}`, nil, 400, "invalid_request"},
		{"stock above maximum", `{"name":"x","stock":1000000001}`, nil, 400, "invalid_request"},
		{"stock overflows int64", `{"name":"x","stock":9223372036854775808}`, nil, 400, "invalid_request"},
		{"stock as string", `{"name":"x","stock":"5"}`, nil, 400, "invalid_request"},
		{"stock as float", `{"name":"x","stock":1.5}`, nil, 400, "invalid_request"},
		{"stock with exponent", `{"name":"x","stock":1e2}`, nil, 400, "invalid_request"},
		{"stock as bool", `{"name":"x","stock":true}`, nil, 400, "invalid_request"},
		{"zero per_user_limit", `{` + valid + `,"per_user_limit":0}`, nil, 400, "invalid_request"},
		{"per_user_limit above stock", `{"name":"x","stock":2,"per_user_limit":3}`, nil, 400, "invalid_request"},
		{"negative price", `{` + valid + `,"price_cents":-1}`, nil, 400, "invalid_request"},
		{"lower-case currency", `{` + valid + `,"currency":"usd"}`, nil, 400, "invalid_request"},
		{"two-letter currency", `{` + valid + `,"currency":"US"}`, nil, 400, "invalid_request"},
		{"currency digits", `{` + valid + `,"currency":"123"}`, nil, 400, "invalid_request"},
		{"zero hold", `{` + valid + `,"hold_seconds":0}`, nil, 400, "invalid_request"},
		{"negative hold", `{` + valid + `,"hold_seconds":-5}`, nil, 400, "invalid_request"},
		{"hold above a week", `{` + valid + `,"hold_seconds":604801}`, nil, 400, "invalid_request"},
		{"hold as string", `{` + valid + `,"hold_seconds":"900"}`, nil, 400, "invalid_request"},
		{"empty id", `{"id":"",` + valid + `}`, nil, 400, "invalid_request"},
		{"id with space", `{"id":"a b",` + valid + `}`, nil, 400, "invalid_request"},
		{"id with slash", `{"id":"a/b",` + valid + `}`, nil, 400, "invalid_request"},
		{"id with dot", `{"id":"a.b",` + valid + `}`, nil, 400, "invalid_request"},
		{"id non-ASCII", `{"id":"café",` + valid + `}`, nil, 400, "invalid_request"},
		{"id too long", `{"id":"` + strings.Repeat("a", 65) + `",` + valid + `}`, nil, 400, "invalid_request"},
		{"id as number", `{"id":42,` + valid + `}`, nil, 400, "invalid_request"},
		{"date without time", `{` + valid + `,"starts_at":"2031-03-14"}`, nil, 400, "invalid_request"},
		{"time without zone", `{` + valid + `,"starts_at":"2031-03-14T10:00:00"}`, nil, 400, "invalid_request"},
		{"time in words", `{` + valid + `,"starts_at":"tomorrow"}`, nil, 400, "invalid_request"},
		{"time as number", `{` + valid + `,"starts_at":1900000000}`, nil, 400, "invalid_request"},
		{"RFC 1123 time", `{` + valid + `,"ends_at":"Mon, 02 Jan 2040 15:04:05 GMT"}`, nil, 400, "invalid_request"},
		{"start before year 0 in UTC", `{` + valid + `,"starts_at":"0000-01-01T00:00:00+00:01"}`, nil, 400, "invalid_request"},
		// RFC 3339 has a year 0000, google.protobuf.Timestamp (the gRPC
		// API's times) does not: such a sale broke every gRPC list of it.
		{"start in year 0000", `{` + valid + `,"starts_at":"0000-06-01T00:00:00Z"}`, nil, 400, "invalid_request"},
		{"start in year 0000 in UTC", `{` + valid + `,"starts_at":"0001-01-01T00:00:00+00:01"}`, nil, 400, "invalid_request"},
		{"end after year 9999 in UTC", `{` + valid + `,"ends_at":"9999-12-31T23:59:59-23:00"}`, nil, 400, "invalid_request"},
		{"ends before it starts", `{` + valid + `,"starts_at":"` + ts(time.Hour) + `","ends_at":"` + ts(0) + `"}`, nil, 400, "invalid_request"},
		{"ends when it starts", `{` + valid + `,"starts_at":"` + ts(time.Hour) + `","ends_at":"` + ts(time.Hour) + `"}`, nil, 400, "invalid_request"},
		{"ends before the default start", `{` + valid + `,"ends_at":"` + ts(-time.Second) + `"}`, nil, 400, "invalid_request"},
		{"duplicate id", `{"id":"taken","name":"Impostor","stock":99}`, nil, 409, "sale_exists"},
		{"body over 64 KiB", `{"name":"` + strings.Repeat("x", surgehttp.MaxSaleBody) + `","stock":1}`, nil, 413, "too_large"},
		{"chunked body over 64 KiB", `{"name":"` + strings.Repeat("x", surgehttp.MaxSaleBody) + `","stock":1}`, []opt{chunked()}, 413, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/sales", c.body, append([]opt{asAdmin()}, c.opts...)...)
			wantError(t, r, c.status, c.code)
			if after := list(); !bytes.Equal(after, before) {
				t.Errorf("sales changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if got := e.sale(t, "taken"); !reflect.DeepEqual(got, taken) {
		t.Errorf("taken sale changed: %+v, want %+v", got, taken)
	}
}

func TestGetSaleNotFound(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"exists","name":"x","stock":1}`)
	for _, path := range []string{
		"/v1/sales/missing",
		"/v1/sales/EXISTS", // ids are case-sensitive
		"/v1/sales/bad.id",
		"/v1/sales/" + strings.Repeat("a", 65),
		"/v1/sales/%20",
	} {
		t.Run(path, func(t *testing.T) {
			wantError(t, e.do(t, "GET", path, ""), http.StatusNotFound, "sale_not_found")
		})
	}
}

// purchaseFixture is a store of sales in every state, for purchase tests.
func purchaseFixture(t *testing.T, e *env) {
	t.Helper()
	e.createSale(t, `{"id":"live","name":"Live","stock":10,"per_user_limit":2,"hold_seconds":120}`)
	e.createSale(t, `{"id":"gone","name":"Gone","stock":1}`)
	e.createSale(t, `{"id":"few","name":"Few","stock":3,"per_user_limit":3}`)
	e.createSale(t, `{"id":"soon","name":"Soon","stock":5,"starts_at":"`+ts(time.Hour)+`"}`)
	e.createSale(t, `{"id":"over","name":"Over","stock":5,"starts_at":"`+ts(-2*time.Hour)+`","ends_at":"`+ts(-time.Hour)+`"}`)
	buy := func(sale, user, body string) {
		r := e.do(t, "POST", "/v1/sales/"+sale+"/purchases", body, asUser(t, user))
		wantStatus(t, r, http.StatusCreated)
	}
	buy("live", "holder", `{"quantity":2}`) // holder is at the limit
	buy("live", "half", ``)                 // half holds 1 of 2
	buy("gone", "first", ``)                // gone is sold out
	buy("few", "first", `{"quantity":2}`)   // few has 1 left
}

func TestPurchase(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"bulk","name":"Bulk","stock":100,"per_user_limit":2,"hold_seconds":120}`)
	cases := []struct {
		name     string
		user     string
		body     string
		opts     []opt
		quantity int64
		key      string
	}{
		{name: "no body", user: "u1", quantity: 1},
		{name: "empty object", user: "u2", body: `{}`, quantity: 1},
		{name: "blank body", user: "u3", body: " \r\n\t", quantity: 1},
		{name: "quantity 1", user: "u4", body: `{"quantity":1}`, quantity: 1},
		{name: "quantity at the limit", user: "u5", body: `{"quantity":2}`, quantity: 2},
		{name: "chunked body", user: "u6", body: `{"quantity":2}`, opts: []opt{chunked()}, quantity: 2},
		{name: "body of exactly 4 KiB", user: "u7",
			body: `{"quantity":1}` + strings.Repeat(" ", surgehttp.MaxPurchaseBody-14), quantity: 1},
		{name: "chunked body of exactly 4 KiB", user: "u8",
			body: strings.Repeat("\n", surgehttp.MaxPurchaseBody-14) + `{"quantity":1}`, opts: []opt{chunked()}, quantity: 1},
		{name: "idempotency key", user: "u9", opts: []opt{idemKey("order-1")}, quantity: 1, key: "order-1"},
		{name: "key of 128 printable characters", user: "u10", opts: []opt{idemKey(strings.Repeat("~", 128))},
			quantity: 1, key: strings.Repeat("~", 128)},
		{name: "key with JSON metacharacters", user: "u11", opts: []opt{idemKey(`a"b\c<d>&e f`)},
			quantity: 1, key: `a"b\c<d>&e f`},
		{name: "user id of 64 characters", user: strings.Repeat("U", 64), quantity: 1},
		{name: "escaped name, strict decoder", user: "u12", body: `{"quant\u0069ty":2}`, quantity: 2},
		{name: "spaced out, strict decoder", user: "u13", body: "{\n  \"quantity\": 2\n}\n", quantity: 2},
	}
	remaining := int64(100)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/sales/bulk/purchases", c.body, append([]opt{asUser(t, c.user)}, c.opts...)...)
			wantStatus(t, r, http.StatusCreated)
			if r.header.Get("Idempotent-Replayed") != "" {
				t.Errorf("a first answer has Idempotent-Replayed: %q", r.header.Get("Idempotent-Replayed"))
			}
			o := mustOrder(t, r)
			want := api.Order{ID: o.ID, SaleID: "bulk", UserID: c.user, Quantity: c.quantity, Status: "reserved",
				IdempotencyKey: c.key, CreatedAt: ts(0), ExpiresAt: ts(120 * time.Second)}
			if o != want {
				t.Errorf("order = %+v\nwant  %+v", o, want)
			}
			if c.key == "" && bytes.Contains(r.body, []byte("idempotency_key")) {
				t.Errorf("order without a key has an idempotency_key: %s", r.body)
			}
			remaining -= c.quantity
			if s := e.sale(t, "bulk"); s.Remaining != remaining {
				t.Errorf("remaining = %d, want %d", s.Remaining, remaining)
			}
			// The buyer reads back the same bytes.
			got := e.do(t, "GET", "/v1/orders/"+o.ID, "", asUser(t, c.user))
			wantStatus(t, got, http.StatusOK)
			if !bytes.Equal(got.body, r.body) {
				t.Errorf("GET order = %s\nwant %s", got.body, r.body)
			}
		})
	}
}

func TestPurchaseRejected(t *testing.T) {
	e := newEnv(t, envOptions{})
	purchaseFixture(t, e)
	long := strings.Repeat("k", surge.MaxKeyLen+1)
	big := `{"quantity":1}` + strings.Repeat(" ", surgehttp.MaxPurchaseBody-13) // 4 KiB + 1
	cases := []struct {
		name   string
		sale   string // the sale purchased from; the fixture sale "live" if unknown
		user   string // "carol", who holds nothing, by default
		body   string
		opts   []opt
		status int
		code   string
	}{
		{name: "sold out", sale: "gone", status: 409, code: "sold_out"},
		{name: "fewer left than asked", sale: "few", body: `{"quantity":2}`, status: 409, code: "sold_out"},
		{name: "limit reached", sale: "live", user: "holder", status: 409, code: "limit_reached"},
		{name: "limit reached in part", sale: "live", user: "half", body: `{"quantity":2}`, status: 409, code: "limit_reached"},
		{name: "not started", sale: "soon", status: 409, code: "not_started"},
		{name: "ended", sale: "over", status: 409, code: "ended"},
		{name: "unknown sale", sale: "missing", status: 404, code: "sale_not_found"},
		{name: "invalid sale id", sale: "bad.id", status: 404, code: "sale_not_found"},
		{name: "sale id too long", sale: strings.Repeat("s", 65), status: 404, code: "sale_not_found"},
		{name: "truncated JSON", sale: "live", body: `{"quantity":`, status: 400, code: "invalid_request"},
		{name: "unquoted key", sale: "live", body: `{quantity:1}`, status: 400, code: "invalid_request"},
		{name: "binary body", sale: "live", body: "\x00\xff", status: 400, code: "invalid_request"},
		{name: "non-JSON whitespace", sale: "live", body: "\v\f", status: 400, code: "invalid_request"},
		{name: "unknown field", sale: "live", body: `{"quantity":1,"qty":1}`, status: 400, code: "invalid_request"},
		{name: "only an unknown field", sale: "live", body: `{"user_id":"holder"}`, status: 400, code: "invalid_request"},
		{name: "quantity 0", sale: "live", body: `{"quantity":0}`, status: 400, code: "invalid_request"},
		{name: "negative quantity", sale: "live", body: `{"quantity":-1}`, status: 400, code: "invalid_request"},
		{name: "quantity above the limit", sale: "live", body: `{"quantity":3}`, status: 400, code: "invalid_request"},
		{name: "quantity above the limit of a sold-out sale", sale: "gone", body: `{"quantity":2}`, status: 400, code: "invalid_request"},
		{name: "quantity overflows int64", sale: "live", body: `{"quantity":9223372036854775808}`, status: 400, code: "invalid_request"},
		{name: "quantity null", sale: "live", body: `{"quantity":null}`, status: 400, code: "invalid_request"},
		{name: "quantity float", sale: "live", body: `{"quantity":1.5}`, status: 400, code: "invalid_request"},
		{name: "quantity integral float", sale: "live", body: `{"quantity":1.0}`, status: 400, code: "invalid_request"},
		{name: "quantity exponent", sale: "live", body: `{"quantity":1e0}`, status: 400, code: "invalid_request"},
		{name: "quantity string", sale: "live", body: `{"quantity":"1"}`, status: 400, code: "invalid_request"},
		{name: "quantity bool", sale: "live", body: `{"quantity":true}`, status: 400, code: "invalid_request"},
		{name: "quantity array", sale: "live", body: `{"quantity":[1]}`, status: 400, code: "invalid_request"},
		{name: "null body", sale: "live", body: `null`, status: 400, code: "invalid_request"},
		{name: "array body", sale: "live", body: `[]`, status: 400, code: "invalid_request"},
		{name: "number body", sale: "live", body: `1`, status: 400, code: "invalid_request"},
		{name: "trailing object", sale: "live", body: `{"quantity":1}{}`, status: 400, code: "invalid_request"},
		{name: "trailing garbage", sale: "live", body: `{"quantity":1} 1`, status: 400, code: "invalid_request"},
		{name: "duplicate quantity", sale: "live", body: `{"quantity":1,"quantity":2}`, status: 400, code: "invalid_request"},
		{name: "duplicate quantity, same value", sale: "live", body: `{"quantity":1,"quantity":1}`, status: 400, code: "invalid_request"},
		{name: "duplicate quantity, escaped", sale: "live", body: `{"quantity":1,"quant\u0069ty":1}`, status: 400, code: "invalid_request"},
		{name: "Quantity", sale: "live", body: `{"Quantity":1}`, status: 400, code: "invalid_request"},
		{name: "QUANTITY", sale: "live", body: `{"QUANTITY":1}`, status: 400, code: "invalid_request"},
		{name: "quantity and Quantity", sale: "live", body: `{"quantity":1,"Quantity":2}`, status: 400, code: "invalid_request"},
		{name: "key of 129 characters", sale: "live", opts: []opt{idemKey(long)}, status: 400, code: "invalid_request"},
		{name: "empty key", sale: "live", opts: []opt{idemKey("")}, status: 400, code: "invalid_request"},
		{name: "key with a tab", sale: "live", opts: []opt{idemKey("a\tb")}, status: 400, code: "invalid_request"},
		{name: "key not ASCII", sale: "live", opts: []opt{idemKey("clé")}, status: 400, code: "invalid_request"},
		{name: "two keys", sale: "live", opts: []opt{idemKey("a"), idemKey("b")}, status: 400, code: "invalid_request"},
		{name: "bad key on a sold-out sale", sale: "gone", opts: []opt{idemKey(long)}, status: 400, code: "invalid_request"},
		{name: "body over 4 KiB", sale: "live", body: big, status: 413, code: "too_large"},
		{name: "chunked body over 4 KiB", sale: "live", body: big, opts: []opt{chunked()}, status: 413, code: "too_large"},
		{name: "body of 64 KiB", sale: "live", body: strings.Repeat(" ", 64<<10), status: 413, code: "too_large"},
		{name: "chunked body of 64 KiB", sale: "live", body: strings.Repeat(" ", 64<<10), opts: []opt{chunked()}, status: 413, code: "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := c.sale
			if _, err := e.eng.Sale(check); err != nil {
				check = "live"
			}
			user := c.user
			if user == "" {
				user = "carol"
			}
			before := e.snapshot(t, check)
			r := e.do(t, "POST", "/v1/sales/"+c.sale+"/purchases", c.body, append([]opt{asUser(t, user)}, c.opts...)...)
			wantError(t, r, c.status, c.code)
			e.wantUnchanged(t, check, before)
		})
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"pair","name":"Pair","stock":2,"hold_seconds":60}`)
	const key = `k-1 "quoted" \ <&>`
	buy := func(user string, opts ...opt) response {
		t.Helper()
		return e.do(t, "POST", "/v1/sales/pair/purchases", "", append([]opt{asUser(t, user)}, opts...)...)
	}
	wantReplay := func(r, first response) {
		t.Helper()
		if r.status != first.status || !bytes.Equal(r.body, first.body) {
			t.Errorf("replay = %v\nwant   %v", r, first)
		}
		if got := r.header.Get("Idempotent-Replayed"); got != "true" {
			t.Errorf("Idempotent-Replayed = %q, want true", got)
		}
		checkJSONType(t, r)
	}

	first := buy("alice", idemKey(key))
	wantStatus(t, first, http.StatusCreated)
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Error("first answer marked as replayed")
	}
	alice := mustOrder(t, first)
	if alice.IdempotencyKey != key {
		t.Errorf("idempotency_key = %q, want %q", alice.IdempotencyKey, key)
	}

	wantReplay(buy("alice", idemKey(key)), first)
	// The body does not matter to a replay: the first answer stands.
	wantReplay(e.do(t, "POST", "/v1/sales/pair/purchases", `{"quantity":1}`, asUser(t, "alice"), idemKey(key)), first)
	if s := e.sale(t, "pair"); s.Remaining != 1 {
		t.Fatalf("remaining after replays = %d, want 1", s.Remaining)
	}

	// Same key, another user: another order, which sells the sale out.
	other := buy("bob", idemKey(key))
	wantStatus(t, other, http.StatusCreated)
	bob := mustOrder(t, other)
	if bob.ID == alice.ID || bob.UserID != "bob" || bob.IdempotencyKey != key {
		t.Errorf("bob's order = %+v, alice's = %+v", bob, alice)
	}
	if s := e.sale(t, "pair"); s.Remaining != 0 || s.Status != "sold_out" {
		t.Fatalf("sale after two orders = %+v", s)
	}

	// Replays still answer once the sale is sold out; new keys do not.
	wantReplay(buy("alice", idemKey(key)), first)
	wantError(t, buy("carol", idemKey(key)), http.StatusConflict, "sold_out")
	wantError(t, buy("alice", idemKey("k-2")), http.StatusConflict, "sold_out")

	// A replay answers the first answer even after the order changed.
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+alice.ID+"/cancel", "", asUser(t, "alice")), http.StatusOK)
	wantReplay(buy("alice", idemKey(key)), first)
	if got := e.export(t, "pair"); len(got) != 2 {
		t.Errorf("export has %d orders, want 2: %+v", len(got), got)
	}
}

// TestIdempotencyMismatch: a key reused with another quantity answers 422
// idempotency_mismatch (decided by the store, and on the sold-out fast
// path), reserves nothing, and the first request still replays.
func TestIdempotencyMismatch(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"trio","name":"Trio","stock":3,"per_user_limit":2,"hold_seconds":60}`)
	buy := func(user, body string) response {
		t.Helper()
		return e.do(t, "POST", "/v1/sales/trio/purchases", body, asUser(t, user), idemKey("k"))
	}
	first := buy("alice", `{"quantity":1}`)
	wantStatus(t, first, http.StatusCreated)
	wantError(t, buy("alice", `{"quantity":2}`), http.StatusUnprocessableEntity, "idempotency_mismatch")
	wantStatus(t, buy("alice", ""), http.StatusCreated) // the default quantity is 1: a replay
	wantStatus(t, buy("bob", `{"quantity":2}`), http.StatusCreated)
	if s := e.sale(t, "trio"); s.Remaining != 0 {
		t.Fatalf("remaining = %d, want 0", s.Remaining)
	}
	r := buy("alice", `{"quantity":2}`) // sold out: the fast path decides
	wantError(t, r, http.StatusUnprocessableEntity, "idempotency_mismatch")
	checkJSONType(t, r)
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Error("a mismatch is marked as replayed")
	}
	if again := buy("alice", `{"quantity":1}`); again.status != http.StatusCreated || !bytes.Equal(again.body, first.body) {
		t.Errorf("replay after a mismatch = %v, want %v", again, first)
	}
	if got := e.export(t, "trio"); len(got) != 2 {
		t.Errorf("export has %d orders, want 2", len(got))
	}
}

// TestIdempotencyKeyOneOverHTTP1AndHTTP2: the API is served over HTTP/1.1
// and HTTP/2 on one listener (cmd/surge serveH2C, as here). An HTTP field
// value never holds the spaces and tabs around it (RFC 9110 §5.5):
// HTTP/1.1's reader drops them, HTTP/2's hands them over as sent. The
// header "Idempotency-Key: k1 " must be one key over both, or a buyer who
// bought over HTTP/2 and retried on a new HTTP/1.1 connection (or the
// other way round) buys twice (a limit of 2 lets the retry take a second
// unit).
func TestIdempotencyKeyOneOverHTTP1AndHTTP2(t *testing.T) {
	e := newEnv(t, envOptions{h2c: true})
	srv := e.srv
	e.createSale(t, `{"id":"drop","name":"Drop","stock":100,"per_user_limit":2,"hold_seconds":60}`)
	client := func(h2 bool) *http.Client {
		var cp http.Protocols
		if h2 {
			cp.SetUnencryptedHTTP2(true)
		} else {
			cp.SetHTTP1(true)
		}
		tr := &http.Transport{Protocols: &cp}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	h1, h2 := client(false), client(true)
	buy := func(c *http.Client, user, key string) (response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/v1/sales/drop/purchases", nil)
		asUser(t, user)(req)
		req.Header["Idempotency-Key"] = []string{key}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if want := map[bool]int{true: 2, false: 1}[c == h2]; resp.ProtoMajor != want {
			t.Fatalf("the purchase went over %s, want HTTP/%d: the test would prove nothing", resp.Proto, want)
		}
		b, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: b}, resp.Proto
	}
	n := 0
	for _, key := range []string{"k1 ", " k1", "\tk1", " k 1\t"} {
		for _, order := range [][2]*http.Client{{h2, h1}, {h1, h2}} {
			n++
			user := fmt.Sprintf("u%d", n)
			first, p1 := buy(order[0], user, key)
			if first.status != http.StatusCreated {
				t.Errorf("Idempotency-Key %q over %s: %s, want 201 as over the other protocol", key, p1, first)
				continue
			}
			retry, p2 := buy(order[1], user, key)
			if retry.status != http.StatusCreated || !bytes.Equal(retry.body, first.body) || retry.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("Idempotency-Key %q: bought over %s (%s); the retry with the same key over %s answered %s, "+
					"not the first answer again: the same key bought twice or refused its own retry", key, p1, first, p2, retry)
			}
		}
	}
	if s := e.sale(t, "drop"); s.Remaining != int64(100-n) {
		t.Errorf("remaining = %d after %d buyers each bought one unit and retried with its key: want %d (one unit each)",
			s.Remaining, n, 100-n)
	}
}

func TestOrderVisibility(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	bought := e.do(t, "POST", "/v1/sales/s/purchases", "", asUser(t, "alice"))
	wantStatus(t, bought, http.StatusCreated)
	o := mustOrder(t, bought)

	for name, who := range map[string]opt{"buyer": asUser(t, "alice"), "admin": asAdmin()} {
		r := e.do(t, "GET", "/v1/orders/"+o.ID, "", who)
		wantStatus(t, r, http.StatusOK)
		checkJSONType(t, r)
		if !bytes.Equal(r.body, bought.body) {
			t.Errorf("%s reads %s, want %s", name, r.body, bought.body)
		}
	}

	// Whoever may not see the order learns nothing: the answer is the one
	// for an order that does not exist.
	missing := e.do(t, "GET", "/v1/orders/o_doesnotexist", "", asUser(t, "alice"))
	wantError(t, missing, http.StatusNotFound, "order_not_found")
	for _, c := range []struct {
		name, method, path string
		who                opt
	}{
		{"other user reads", "GET", "/v1/orders/" + o.ID, asUser(t, "mallory")},
		{"other user cancels", "POST", "/v1/orders/" + o.ID + "/cancel", asUser(t, "mallory")},
		{"buyer reads a missing order", "GET", "/v1/orders/o_doesnotexist", asUser(t, "alice")},
		{"admin reads a missing order", "GET", "/v1/orders/o_doesnotexist", asAdmin()},
		{"buyer cancels a missing order", "POST", "/v1/orders/o_doesnotexist/cancel", asUser(t, "alice")},
		{"admin pays a missing order", "POST", "/v1/orders/o_doesnotexist/pay", asAdmin()},
		{"invalid order id", "GET", "/v1/orders/bad.id", asUser(t, "alice")},
		{"order id too long", "GET", "/v1/orders/" + strings.Repeat("o", 65), asAdmin()},
		{"cancel invalid order id", "POST", "/v1/orders/bad.id/cancel", asAdmin()},
		{"pay invalid order id", "POST", "/v1/orders/bad.id/pay", asAdmin()},
		{"a sale id is not an order id", "GET", "/v1/orders/s", asAdmin()},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, c.method, c.path, "", c.who)
			wantError(t, r, http.StatusNotFound, "order_not_found")
			if !bytes.Equal(r.body, missing.body) || r.header.Get("Content-Type") != missing.header.Get("Content-Type") {
				t.Errorf("answer %s differs from a missing order's %s", r.body, missing.body)
			}
		})
	}
	r := e.do(t, "GET", "/v1/orders/"+o.ID, "", asUser(t, "alice"))
	if got := mustOrder(t, r); got.Status != "reserved" {
		t.Errorf("order status = %s after others tried to cancel it, want reserved", got.Status)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"one","name":"One","stock":1,"hold_seconds":300}`)
	cancel := func(id string, who opt) response {
		t.Helper()
		return e.do(t, "POST", "/v1/orders/"+id+"/cancel", "", who)
	}
	wantSale := func(remaining int64, status string) {
		t.Helper()
		if s := e.sale(t, "one"); s.Remaining != remaining || s.Status != status {
			t.Errorf("sale remaining %d status %s, want %d %s", s.Remaining, s.Status, remaining, status)
		}
	}

	alice := e.buy(t, "one", asUser(t, "alice"))
	wantSale(0, "sold_out")
	wantError(t, e.do(t, "POST", "/v1/sales/one/purchases", "", asUser(t, "bob")), http.StatusConflict, "sold_out")

	r := cancel(alice.ID, asUser(t, "alice"))
	wantStatus(t, r, http.StatusOK)
	got := mustOrder(t, r)
	want := alice
	want.Status = "cancelled"
	if got != want {
		t.Errorf("cancelled order = %+v\nwant %+v", got, want)
	}
	wantSale(1, "live")
	if read := mustOrder(t, e.do(t, "GET", "/v1/orders/"+alice.ID, "", asUser(t, "alice"))); read != want {
		t.Errorf("GET cancelled order = %+v, want %+v", read, want)
	}

	for _, who := range []opt{asUser(t, "alice"), asAdmin()} {
		r := cancel(alice.ID, who)
		wantError(t, r, http.StatusConflict, "not_cancellable")
		// A buyer retrying a cancel whose answer was lost reads that it took.
		if !strings.Contains(string(r.body), "order "+alice.ID+" is already cancelled") {
			t.Errorf("second cancel's answer %s does not say the order is already cancelled", r.body)
		}
	}
	wantError(t, e.do(t, "POST", "/v1/orders/"+alice.ID+"/pay", "", asAdmin()), http.StatusConflict, "not_payable")

	// The unit is for sale again: bob buys it, the admin cancels his order,
	// and alice, back under her limit, buys it once more.
	bob := e.buy(t, "one", asUser(t, "bob"))
	wantSale(0, "sold_out")
	r = cancel(bob.ID, asAdmin())
	wantStatus(t, r, http.StatusOK)
	if got := mustOrder(t, r); got.Status != "cancelled" || got.UserID != "bob" {
		t.Errorf("admin cancel = %+v", got)
	}
	wantSale(1, "live")
	again := e.buy(t, "one", asUser(t, "alice"))
	if again.ID == alice.ID {
		t.Error("a new purchase reused the cancelled order's id")
	}
	wantSale(0, "sold_out")

	var statuses []string
	for _, o := range e.export(t, "one") {
		statuses = append(statuses, o.UserID+":"+o.Status)
	}
	if want := []string{"alice:cancelled", "bob:cancelled", "alice:reserved"}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("export = %v, want %v", statuses, want)
	}
}

func TestPay(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":3}`)
	o := e.buy(t, "s", asUser(t, "alice"))

	r := e.do(t, "POST", "/v1/orders/"+o.ID+"/pay", "", asAdmin())
	wantStatus(t, r, http.StatusOK)
	paid := o
	paid.Status = "paid"
	if got := mustOrder(t, r); got != paid {
		t.Errorf("paid order = %+v\nwant %+v", got, paid)
	}
	if got := mustOrder(t, e.do(t, "GET", "/v1/orders/"+o.ID, "", asUser(t, "alice"))); got != paid {
		t.Errorf("GET paid order = %+v", got)
	}
	before := e.snapshot(t, "s")
	if before.remaining != 2 {
		t.Errorf("remaining after payment = %d, want 2 (paid units stay sold)", before.remaining)
	}
	for _, c := range []struct {
		name, path string
		who        opt
		status     int
		code       string
	}{
		{"pay twice", "/pay", asAdmin(), 409, "not_payable"},
		{"buyer cancels a paid order", "/cancel", asUser(t, "alice"), 409, "not_cancellable"},
		{"admin cancels a paid order", "/cancel", asAdmin(), 409, "not_cancellable"},
		{"buyer pays", "/pay", asUser(t, "alice"), 401, "unauthenticated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do(t, "POST", "/v1/orders/"+o.ID+c.path, "", c.who), c.status, c.code)
			e.wantUnchanged(t, "s", before)
		})
	}
	// A paid unit counts toward the limit.
	wantError(t, e.do(t, "POST", "/v1/sales/s/purchases", "", asUser(t, "alice")), http.StatusConflict, "limit_reached")
}

// expire runs the store's expiry job at the engine's clock; the store
// tells the engine which sales got units back before it returns.
func (e *env) expire(t *testing.T) {
	t.Helper()
	if _, err := e.store.Expire(context.Background(), e.clock.Now()); err != nil {
		t.Fatalf("expire: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"quick","name":"Quick","stock":1,"hold_seconds":1}`)
	o := e.buy(t, "quick", asUser(t, "alice"), idemKey("k"))
	if o.ExpiresAt != ts(time.Second) {
		t.Fatalf("expires_at = %s, want %s", o.ExpiresAt, ts(time.Second))
	}
	status := func() string {
		t.Helper()
		return mustOrder(t, e.do(t, "GET", "/v1/orders/"+o.ID, "", asUser(t, "alice"))).Status
	}

	e.clock.Advance(999 * time.Millisecond)
	e.expire(t)
	if got := status(); got != "reserved" {
		t.Fatalf("status before the hold ran out = %s, want reserved", got)
	}
	if s := e.sale(t, "quick"); s.Remaining != 0 {
		t.Fatalf("remaining = %d, want 0", s.Remaining)
	}

	e.clock.Advance(time.Millisecond) // exactly expires_at
	e.expire(t)
	if got := status(); got != "expired" {
		t.Fatalf("status after the hold = %s, want expired", got)
	}
	if s := e.sale(t, "quick"); s.Remaining != 1 || s.Status != "live" {
		t.Errorf("sale after expiry = %+v, want 1 remaining, live", s)
	}
	before := e.snapshot(t, "quick")
	wantError(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", asUser(t, "alice")), http.StatusConflict, "not_cancellable")
	wantError(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", asAdmin()), http.StatusConflict, "not_cancellable")
	wantError(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/pay", "", asAdmin()), http.StatusConflict, "not_payable")
	e.wantUnchanged(t, "quick", before)

	// The unit is sold again.
	bob := e.buy(t, "quick", asUser(t, "bob"))
	var got []string
	for _, x := range e.export(t, "quick") {
		got = append(got, x.ID+":"+x.Status)
	}
	if want := []string{o.ID + ":expired", bob.ID + ":reserved"}; !reflect.DeepEqual(got, want) {
		t.Errorf("export = %v, want %v", got, want)
	}
}

func TestSaleStatusTransitions(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"w","name":"Window","stock":1,"starts_at":"`+ts(time.Hour)+`","ends_at":"`+ts(2*time.Hour)+`"}`)
	e.createSale(t, `{"id":"unsold","name":"Unsold","stock":4,"ends_at":"`+ts(2*time.Hour)+`"}`)
	wantStatuses := func(w, unsold string) {
		t.Helper()
		want := map[string]string{"w": w, "unsold": unsold}
		for id, status := range want {
			if got := e.sale(t, id).Status; got != status {
				t.Errorf("%s status = %s, want %s", id, got, status)
			}
		}
		listed := map[string]string{}
		for _, s := range e.list(t) {
			listed[s.ID] = s.Status
		}
		if !reflect.DeepEqual(listed, want) {
			t.Errorf("listed statuses = %v, want %v", listed, want)
		}
	}
	purchase := func(sale, user string) response {
		t.Helper()
		return e.do(t, "POST", "/v1/sales/"+sale+"/purchases", "", asUser(t, user))
	}

	wantStatuses("upcoming", "live")
	before := e.snapshot(t, "w")
	wantError(t, purchase("w", "alice"), http.StatusConflict, "not_started")
	e.wantUnchanged(t, "w", before)

	e.clock.Advance(time.Hour - time.Millisecond)
	wantError(t, purchase("w", "alice"), http.StatusConflict, "not_started")
	e.clock.Advance(time.Millisecond) // exactly starts_at
	wantStatuses("live", "live")
	e.buy(t, "w", asUser(t, "alice"))
	wantStatuses("sold_out", "live")
	wantError(t, purchase("w", "bob"), http.StatusConflict, "sold_out")

	e.clock.Advance(time.Hour - time.Millisecond)
	e.buy(t, "unsold", asUser(t, "bob"))
	e.clock.Advance(time.Millisecond) // exactly ends_at
	wantStatuses("ended", "ended")
	for _, sale := range []string{"w", "unsold"} {
		before := e.snapshot(t, sale)
		wantError(t, purchase(sale, "carol"), http.StatusConflict, "ended")
		e.wantUnchanged(t, sale, before)
	}
	if s := e.sale(t, "unsold"); s.Remaining != 3 {
		t.Errorf("unsold remaining = %d, want 3", s.Remaining)
	}
}

func TestExport(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"x","name":"X","stock":10,"per_user_limit":2}`)
	e.createSale(t, `{"id":"empty","name":"Empty","stock":1}`)

	if got := e.export(t, "empty"); len(got) != 0 {
		t.Errorf("export of a sale without orders = %+v", got)
	}
	for _, path := range []string{"/v1/sales/missing/orders", "/v1/sales/bad.id/orders"} {
		wantError(t, e.do(t, "GET", path, "", asAdmin()), http.StatusNotFound, "sale_not_found")
	}

	var want []api.Order
	for i, user := range []string{"a", "b", "c", "d"} {
		opts := []opt{asUser(t, user)}
		if i%2 == 0 {
			opts = append(opts, idemKey("key-"+user))
		}
		r := e.do(t, "POST", "/v1/sales/x/purchases", fmt.Sprintf(`{"quantity":%d}`, i%2+1), opts...)
		wantStatus(t, r, http.StatusCreated)
		want = append(want, mustOrder(t, r))
	}
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+want[1].ID+"/cancel", "", asUser(t, "b")), http.StatusOK)
	want[1].Status = "cancelled"
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+want[2].ID+"/pay", "", asAdmin()), http.StatusOK)
	want[2].Status = "paid"
	// Rejected purchases leave no order behind.
	wantError(t, e.do(t, "POST", "/v1/sales/x/purchases", `{"quantity":2}`, asUser(t, "a")), http.StatusConflict, "limit_reached")

	if got := e.export(t, "x"); !reflect.DeepEqual(got, want) {
		t.Errorf("export = %+v\nwant   %+v", got, want)
	}
	// Each line is the order object the order endpoint serves.
	r := e.do(t, "GET", "/v1/sales/x/orders", "", asAdmin())
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	for i, o := range want {
		one := e.do(t, "GET", "/v1/orders/"+o.ID, "", asAdmin())
		if wrapped := `{"order":` + lines[i] + "}\n"; wrapped != string(one.body) {
			t.Errorf("export line %d = %s, GET order = %s", i, lines[i], one.body)
		}
	}
}

func TestExportManyOrders(t *testing.T) {
	const n = 3000
	e := newEnv(t, envOptions{purchaseTimeout: 5 * time.Minute}) // the export is under test, not the wait
	e.createSale(t, fmt.Sprintf(`{"id":"big","name":"Big","stock":%d}`, n))

	// Orders are made through the engine, concurrently, so they commit in
	// large batches; the export under test is the HTTP one.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := e.eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: "big", Purchase: surge.Purchase{UserID: fmt.Sprintf("user-%d", i), Quantity: 1}})
			if err == nil && out.Code != surge.CodeReserved {
				err = fmt.Errorf("purchase %d: %s", i, out.Code)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := e.sale(t, "big"); s.Remaining != 0 || s.Status != "sold_out" {
		t.Fatalf("sale after %d purchases = %+v", n, s)
	}
	wantError(t, e.do(t, "POST", "/v1/sales/big/purchases", "", asUser(t, "late")), http.StatusConflict, "sold_out")

	// The export is streamed, not buffered whole: no Content-Length.
	if r := e.do(t, "GET", "/v1/sales/big/orders", "", asAdmin()); r.header.Get("Content-Length") != "" {
		t.Errorf("export of %d orders has Content-Length %s", n, r.header.Get("Content-Length"))
	}
	orders := e.export(t, "big")
	if len(orders) != n {
		t.Fatalf("export has %d orders, want %d", len(orders), n)
	}
	ids := make(map[string]bool, n)
	users := make(map[string]bool, n)
	for _, o := range orders {
		if o.SaleID != "big" || o.Status != "reserved" || o.Quantity != 1 {
			t.Fatalf("exported order %+v", o)
		}
		ids[o.ID], users[o.UserID] = true, true
	}
	if len(ids) != n || len(users) != n {
		t.Errorf("export has %d distinct ids and %d distinct users, want %d", len(ids), len(users), n)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":1}`)
	t.Run("unknown paths", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{"GET", "/"},
			{"GET", "/v1"},
			{"GET", "/v1/"},
			{"GET", "/v2/sales"},
			{"GET", "/v1/orders"},
			{"GET", "/v1/orders/"},
			{"GET", "/v1/sales/s/orders/extra"},
			{"POST", "/v1/sales/s/purchases/extra"},
			{"POST", "/v1/orders/o/refund"},
			{"GET", "/healthz/more"},
			{"DELETE", "/nope"},
			{"GET", "/favicon.ico"},
		} {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				wantError(t, e.do(t, c.method, c.path, "", asAdmin()), http.StatusNotFound, "not_found")
			})
		}
	})
	t.Run("wrong methods", func(t *testing.T) {
		for _, c := range []struct{ method, path, allow string }{
			{"DELETE", "/v1/sales", "GET, HEAD, POST"},
			{"PUT", "/v1/sales", "GET, HEAD, POST"},
			{"PUT", "/v1/sales/s", "GET, HEAD, PATCH"},
			{"POST", "/v1/sales/s", "GET, HEAD, PATCH"},
			{"DELETE", "/v1/sales/s", "GET, HEAD, PATCH"},
			{"POST", "/v1/sales/s/orders", "GET, HEAD"},
			{"GET", "/v1/sales/s/purchases", "POST"},
			{"PUT", "/v1/sales/s/purchases", "POST"},
			{"POST", "/v1/orders/o", "GET, HEAD"},
			{"DELETE", "/v1/orders/o", "GET, HEAD"},
			{"GET", "/v1/orders/o/cancel", "POST"},
			{"GET", "/v1/orders/o/pay", "POST"},
			{"POST", "/healthz", "GET, HEAD"},
			{"DELETE", "/readyz", "GET, HEAD"},
		} {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				r := e.do(t, c.method, c.path, `{"name":"x","stock":1}`, asAdmin())
				wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
				if got := r.header.Get("Allow"); got != c.allow {
					t.Errorf("Allow = %q, want %q", got, c.allow)
				}
			})
		}
	})
	if s := e.sale(t, "s"); s.Remaining != 1 {
		t.Errorf("remaining = %d, want 1", s.Remaining)
	}
	if r := e.do(t, "GET", "/v1/sales", ""); bytes.Count(r.body, []byte(`"id"`)) != 1 {
		t.Errorf("sales changed: %s", r.body)
	}
}

// TestNoServerErrors throws malformed requests at every endpoint, with
// every kind of caller, and checks each answer is a JSON error below 500
// and that nothing changed.
func TestNoServerErrors(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	e.createSale(t, `{"id":"s","name":"S","stock":5,"per_user_limit":2}`)
	o := e.buy(t, "s", asUser(t, "alice"))
	bodies := []string{
		"\x00", "\xff\xfe\xfd", "{", "}", `{"quantity":`, `{"quantity":1e309}`, `{"quantity":-0}`,
		`{"name":"x","stock":1,"starts_at":"2031-02-30T00:00:00Z"}`, `{"name":"x","stock":1,"starts_at":"2031-03-14T25:00:00Z"}`,
		`{"` + strings.Repeat("a", 5000) + `":1}`, strings.Repeat("[", 10000), `{"quantity":{"quantity":1}}`,
		"\"\\ud800\"", `{"name":"\ud800","stock":1}`,
	}
	callers := map[string][]opt{
		"nobody":       nil,
		"bad token":    {bearerAuth("x.y.z")},
		"bad header":   {header(userHeader, "no spaces allowed")},
		"other buyer":  {asUser(t, "mallory")},
		"header buyer": {header(userHeader, "mallory")},
	}
	paths := []struct{ method, path string }{
		{"POST", "/v1/sales"},
		{"GET", "/v1/sales/s"},
		{"GET", "/v1/sales/%00"},
		{"GET", "/v1/sales/s/orders"},
		{"POST", "/v1/sales/s/purchases"},
		{"POST", "/v1/sales/%ff/purchases"},
		{"GET", "/v1/orders/" + o.ID},
		{"POST", "/v1/orders/" + o.ID + "/cancel"},
		{"POST", "/v1/orders/" + o.ID + "/pay"},
		{"GET", "/v1/orders/%2e%2e"},
	}
	before := e.snapshot(t, "s")
	for _, p := range paths {
		for name, who := range callers {
			for _, body := range bodies {
				r := e.do(t, p.method, p.path, body, append(who, idemKey("k"))...)
				if r.status >= 500 {
					t.Fatalf("%s %s as %s with %q: %v", p.method, p.path, name, body, r)
				}
				if r.status >= 400 {
					if errorCode(t, r) == "" {
						t.Fatalf("%s %s as %s with %q: %v", p.method, p.path, name, body, r)
					}
				}
			}
		}
	}
	e.wantUnchanged(t, "s", before)
	// The one buyer who may mutate, with malformed bodies, changes nothing
	// either.
	for _, body := range bodies {
		r := e.do(t, "POST", "/v1/sales/s/purchases", body, header(userHeader, "bob"))
		if r.status != http.StatusBadRequest && r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("purchase with %.40q: %v", body, r)
		}
	}
	e.wantUnchanged(t, "s", before)
}

// TestSaleTimesSurviveRestart checks that every time the API accepts can
// be read back by the store after a restart.
func TestSaleTimesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() (*sqlite.Store, *engine.Engine, *surgehttp.Server) {
		st, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		eng, err := engine.Open(ctx, st, engine.Config{
			Now: func() time.Time { return epoch }, Logger: quietLog,
		})
		if err != nil {
			t.Fatalf("open engine: %v", err)
		}
		return st, eng, surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, JWTSecret: jwtSecret, Logger: quietLog})
	}
	st, eng, h := open()
	e := &env{handler: h}
	bodies := []string{
		`{"id":"a","name":"a","stock":1,"starts_at":"0001-01-01T00:00:00Z","ends_at":"9999-12-31T23:59:59.999999999Z"}`,
		`{"id":"b","name":"b","stock":1,"starts_at":"0001-01-01T23:59:59+23:59","ends_at":"9999-12-31T00:00:00-00:00"}`,
		`{"id":"c","name":"c","stock":1,"starts_at":"0001-01-01T00:00:00+00:01"}`,
		`{"id":"d","name":"d","stock":1,"ends_at":"9999-12-31T23:59:59-23:00"}`,
	}
	created := map[string][]byte{}
	for _, b := range bodies {
		r := e.serve("POST", "/v1/sales", []byte(b), asAdmin())
		if r.status == http.StatusCreated {
			s, err := parseSale(r.body)
			if err != nil {
				t.Errorf("%s: %v", b, err)
			}
			created[s.ID] = r.body
		} else {
			wantError(t, r, http.StatusBadRequest, "invalid_request")
		}
	}
	if len(created) != 2 {
		t.Errorf("created %d sales, want 2 (a and b)", len(created))
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, eng, h = open()
	defer st.Close()
	defer eng.Close()
	e.handler = h
	for id, body := range created {
		r := e.serve("GET", "/v1/sales/"+id, nil)
		if r.status != http.StatusOK || !bytes.Equal(r.body, body) {
			t.Errorf("after restart GET %s = %v, want %s", id, r, body)
		}
	}
}

// TestStrictBodyMessages checks that a duplicate or case-variant name is
// refused with a message that names it, on both bodies.
func TestStrictBodyMessages(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":10,"per_user_limit":2}`)
	for _, c := range []struct {
		path, body, want string
		opts             []opt
	}{
		{"/v1/sales/s/purchases", `{"quantity":1,"quantity":2}`, `field "quantity" appears more than once; each field may appear only once`, []opt{asUser(t, "u")}},
		{"/v1/sales/s/purchases", `{"Quantity":2}`, `unknown field "Quantity": field names are case-sensitive, did you mean "quantity"?`, []opt{asUser(t, "u")}},
		{"/v1/sales", `{"name":"x","stock":1,"stock":5}`, `field "stock" appears more than once; each field may appear only once`, []opt{asAdmin()}},
		{"/v1/sales", `{"name":"x","Stock":1}`, `unknown field "Stock": field names are case-sensitive, did you mean "stock"?`, []opt{asAdmin()}},
	} {
		r := e.do(t, "POST", c.path, c.body, c.opts...)
		wantError(t, r, http.StatusBadRequest, "invalid_request")
		var got apiError
		_ = json.Unmarshal(r.body, &got)
		if got.Error.Message != c.want {
			t.Errorf("%s %s: message %q, want %q", c.path, c.body, got.Error.Message, c.want)
		}
	}
}
