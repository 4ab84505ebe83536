package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	surgehttp "github.com/surgehq/surge/http"
)

const fuzzLimit = 3 // per-user limit of the fuzzed sale

// expectPurchase is the contract's answer to a purchase of a fresh buyer
// from a live sale with ample stock: the status and, for 201, the quantity.
func expectPurchase(body []byte, key string, hasKey bool) (int, int64) {
	if hasKey && !surge.ValidKey(key) {
		return http.StatusBadRequest, 0
	}
	if len(body) > surgehttp.MaxPurchaseBody {
		return http.StatusRequestEntityTooLarge, 0
	}
	trimmed := bytes.Trim(body, " \t\r\n") // JSON whitespace only
	if len(trimmed) == 0 {
		return http.StatusCreated, 1
	}
	if trimmed[0] != '{' {
		return http.StatusBadRequest, 0
	}
	// Strict JSON: valid UTF-8 throughout (encoding/json would replace
	// bad bytes), and names matched exactly, each at most once
	// (encoding/json takes the last duplicate and folds case).
	if !utf8.Valid(body) || !json.Valid(body) {
		return http.StatusBadRequest, 0
	}
	names, err := memberNames(body)
	if err != nil {
		return http.StatusBadRequest, 0
	}
	for i, n := range names {
		if n != "quantity" || slices.Contains(names[:i], n) {
			return http.StatusBadRequest, 0
		}
	}
	var req struct {
		Quantity json.RawMessage `json:"quantity"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return http.StatusBadRequest, 0
	}
	q := int64(1)
	if req.Quantity != nil {
		if string(req.Quantity) == "null" || json.Unmarshal(req.Quantity, &q) != nil {
			return http.StatusBadRequest, 0
		}
	}
	if q < 1 || q > fuzzLimit {
		return http.StatusBadRequest, 0
	}
	return http.StatusCreated, q
}

// memberNames returns the names of the members of the top-level object of
// a valid JSON text, unescaped, in order and with repeats, as
// encoding/json's tokenizer reads them: an oracle independent of the
// decoder under test.
func memberNames(body []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object: %v %v", tok, err)
	}
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		names = append(names, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func FuzzPurchaseBody(f *testing.F) {
	for _, seed := range []struct {
		body  string
		key   string
		chunk bool
	}{
		{"", "", false},
		{`{"quantity":1}`, "", false},
		{`{"quantity":3}`, "key-1", false},
		{`{"quantity":2}`, "k", true},
		{`{}`, "", false},
		{" \n", "", false},
		{"\v", "", false},
		{`{"quantity":0}`, "", false},
		{`{"quantity":-1}`, "", false},
		{`{"quantity":4}`, "", false},
		{`{"quantity":01}`, "", false},
		{`{"quantity":null}`, "", false},
		{`{"quantity":1.5}`, "", false},
		{`{"quantity":1e0}`, "", false},
		{`{"quantity":"1"}`, "", false},
		{`{"quantity":99999999999999999999}`, "", false},
		{`{"quantity":999999999999999999}`, "", false},
		{`{"Quantity":1}`, "", false},
		{`{"quantity":1,"quantity":2}`, "", false},
		{`{"quantity":2,"quantity":2}`, "", false},
		{`{"quantity":1,"Quantity":1}`, "", false},
		{`{"QUANTITY":1}`, "", false},
		{`{"quant\u0069ty":2}`, "", false},
		{`{"quant\u0049ty":2}`, "", false},
		{`{"quantity":1,"quant\u0069ty":1}`, "", false},
		{"{\"quantity\":1,\"\xff\":1}", "", true},
		{`{"quantity":1,"x":2}`, "", false},
		{`{"quantity":1}{}`, "", false},
		{`{"quantity":1} x`, "", false},
		{`{"quantity":`, "", false},
		{`null`, "", false},
		{`[]`, "", false},
		{`"x"`, "", false},
		{"\x00\xff", "", false},
		{`{"quantity":1}`, strings.Repeat("k", 129), false},
		{`{"quantity":1}`, "a\x00b", false},
		{`{"quantity":1}`, "a\x7fb", false},
		{`{"quantity":1}`, "clé", true},
		{`{"quantity":1}` + strings.Repeat(" ", 4082), "", false},
		{`{"quantity":1}` + strings.Repeat(" ", 4083), "", true},
	} {
		f.Add([]byte(seed.body), seed.key, seed.chunk)
	}
	e := newEnv(f, envOptions{noServer: true})
	r := e.serve("POST", "/v1/sales", []byte(fmt.Sprintf(
		`{"id":"fz","name":"Fuzz","stock":%d,"per_user_limit":%d}`, surge.MaxStock, fuzzLimit)), asAdmin())
	if r.status != http.StatusCreated {
		f.Fatalf("create sale: %v", r)
	}
	var buyers atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte, key string, chunk bool) {
		// A fresh buyer each time: no limit or replay interferes, so the
		// contract decides the answer from the request alone.
		user := fmt.Sprintf("fuzz-%d", buyers.Add(1))
		opts := []opt{asUser(t, user)}
		// An empty key stands for no header; a present empty header is
		// covered by TestPurchaseRejected.
		hasKey := key != ""
		if hasKey {
			opts = append(opts, idemKey(key))
		}
		if chunk {
			opts = append(opts, chunked())
		}
		r := e.serve("POST", "/v1/sales/fz/purchases", body, opts...)
		if r.status >= 500 {
			t.Fatalf("server error: %v (body %q, key %q)", r, body, key)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		status, quantity := expectPurchase(body, key, hasKey)
		if r.status != status {
			t.Fatalf("status %d, want %d: %v", r.status, status, r)
		}
		switch r.status {
		case http.StatusCreated:
			o, err := parseOrderBody(r.body)
			if err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			want := api.Order{ID: o.ID, SaleID: "fz", UserID: user, Quantity: quantity, Status: "reserved",
				CreatedAt: o.CreatedAt, ExpiresAt: o.ExpiresAt}
			if hasKey {
				want.IdempotencyKey = key
			}
			if o != want {
				t.Fatalf("order %+v, want %+v", o, want)
			}
			if r.header.Get("Idempotent-Replayed") != "" {
				t.Fatal("a fresh buyer's purchase was answered as a replay")
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if err := checkErrorShape(r.body); err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			want := map[int]string{400: "invalid_request", 413: "too_large"}[r.status]
			var e apiError
			_ = json.Unmarshal(r.body, &e)
			if e.Error.Code != want {
				t.Fatalf("code %q, want %q: %v", e.Error.Code, want, r)
			}
		}
	})
}

// unshowable is the oracle's list of what a sale name must not hold:
// control characters, line and paragraph separators, bidirectional
// marks, embeddings, overrides and isolates.
func unshowable(r rune) bool {
	return r < 0x20 || 0x7f <= r && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == 0x061c ||
		r == 0x200e || r == 0x200f || 0x202a <= r && r <= 0x202e || 0x2066 <= r && r <= 0x2069
}

// saleInputKeys are the members of a sale body.
var saleInputKeys = []string{"id", "name", "stock", "per_user_limit", "price_cents", "currency", "starts_at", "ends_at", "hold_seconds", "waiting_room"}

// waitingRoomKeys are the members of a sale body's waiting_room.
var waitingRoomKeys = []string{"admit_per_second", "order", "ticket_seconds"}

func FuzzSaleBody(f *testing.F) {
	for _, seed := range []string{
		``,
		`{"name":"x","stock":1}`,
		`{"id":"dup","name":"x","stock":1}`,
		`{"id":"a-b_C","name":"Sneakers","stock":100,"per_user_limit":3,"price_cents":12999,"currency":"EUR",` +
			`"starts_at":"2031-03-14T10:00:00+01:00","ends_at":"2031-03-15T09:26:53.123456789Z","hold_seconds":60}`,
		`{"name":"x","stock":1,"starts_at":"0000-01-01T00:00:00+00:01"}`,
		`{"name":"x","stock":1,"ends_at":"9999-12-31T23:59:59-23:00"}`,
		`{"name":"x","stock":1,"starts_at":"2031-03-14T10:00:00Z","ends_at":"2031-03-14T10:00:00Z"}`,
		`{"name":"x","stock":1,"ends_at":null,"id":null}`,
		`{"name":"x","stock":0}`,
		`{"name":"x","stock":1e2}`,
		`{"name":"x","stock":"1"}`,
		`{"name":"x","stock":1,"colour":"red"}`,
		`{"name":"x","stock":1,"waiting_room":{"admit_per_second":10,"order":"fifo","ticket_seconds":60}}`,
		`{"name":"x","stock":1,"waiting_room":{"admit_per_second":1000000,"order":"lottery","ticket_seconds":86400}}`,
		`{"name":"x","stock":1,"waiting_room":null}`,
		`{"name":"x","stock":1,"waiting_room":{"admit_per_second":10,"order":"fifo","order":"fifo","ticket_seconds":60}}`,
		`{"name":"x","stock":1,"waiting_room":{"Order":"fifo","admit_per_second":10,"ticket_seconds":60}}`,
		`{"name":"x","stock":1,"waiting_room":{"admit_per_second":0,"order":"fifo","ticket_seconds":60}}`,
		`{"name":"x","stock":1,"stock":2}`,
		`{"name":"x","Stock":1}`,
		`{"name":"x","\u017ftoc\u212a":1}`,
		`{"name":"x","st\u006fck":1}`,
		`{"name":"x","stock":1}{}`,
		`{"name":"\ud800","stock":1}`,
		`{"name":"a\u0000b","stock":1}`,
		`{"name":"\u001b[2J","stock":1}`,
		`{"name":"Phone \u202egnp","stock":1}`,
		`{"name":"\u2066x\u2069","stock":1}`,
		`{"name":"a\u2028b","stock":1}`,
		`{"name":"👩‍👩‍👧","stock":1}`,
		`{"name":"` + strings.Repeat("n", 201) + `","stock":1}`,
		`{"name":"x","stock":2,"per_user_limit":3}`,
		`{"name":"x","stock":1,"currency":"usd"}`,
		`{"name":"x","stock":1,"hold_seconds":604801}`,
		`null`,
		`[]`,
		"\x00",
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, envOptions{noServer: true, inboxSize: 1})
	if r := e.serve("POST", "/v1/sales", []byte(`{"id":"dup","name":"x","stock":1}`), asAdmin()); r.status != http.StatusCreated {
		f.Fatalf("create sale: %v", r)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := e.serve("POST", "/v1/sales", body, asAdmin())
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		switch r.status {
		case http.StatusCreated:
			s, err := parseSale(r.body)
			if err != nil {
				t.Fatalf("%v: %v (body %q)", r, err, body)
			}
			// Accepted means strict: every name exactly one of the
			// contract's, and none twice.
			names, err := memberNames(body)
			if err != nil || !utf8.Valid(body) {
				t.Fatalf("accepted %q: %v", body, err)
			}
			for i, n := range names {
				if !slices.Contains(saleInputKeys, n) || slices.Contains(names[:i], n) {
					t.Fatalf("accepted %q with member %q", body, n)
				}
			}
			var members map[string]json.RawMessage
			_ = json.Unmarshal(body, &members)
			if room := members["waiting_room"]; len(room) > 0 && room[0] == '{' {
				inner, err := memberNames(room)
				if err != nil || len(inner) != len(waitingRoomKeys) || s.WaitingRoom == nil {
					t.Fatalf("accepted %q with waiting_room members %q (%v), answered %+v", body, inner, err, s.WaitingRoom)
				}
				for i, n := range inner {
					if !slices.Contains(waitingRoomKeys, n) || slices.Contains(inner[:i], n) {
						t.Fatalf("accepted %q with waiting_room member %q", body, n)
					}
				}
			}
			if i := strings.IndexFunc(s.Name, unshowable); i >= 0 {
				t.Fatalf("accepted the name %+q, which holds a control character at byte %d", s.Name, i)
			}
			if s.Remaining != s.Stock {
				t.Fatalf("new sale has %d of %d remaining", s.Remaining, s.Stock)
			}
			got := e.serve("GET", "/v1/sales/"+s.ID, nil)
			if got.status != http.StatusOK || !bytes.Equal(got.body, r.body) {
				t.Fatalf("GET new sale = %v, want %s", got, r.body)
			}
			// Creating the same sale again is a conflict.
			if s.ID != "" && bytes.Contains(body, []byte(`"`+s.ID+`"`)) {
				again := e.serve("POST", "/v1/sales", body, asAdmin())
				if again.status != http.StatusConflict {
					t.Fatalf("second creation = %v, want 409", again)
				}
			}
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
			if err := checkErrorShape(r.body); err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			want := map[int]string{400: "invalid_request", 409: "sale_exists", 413: "too_large"}[r.status]
			var e apiError
			_ = json.Unmarshal(r.body, &e)
			if e.Error.Code != want {
				t.Fatalf("code %q, want %q: %v", e.Error.Code, want, r)
			}
			if r.status == http.StatusRequestEntityTooLarge && len(body) <= surgehttp.MaxSaleBody {
				t.Fatalf("413 for a body of %d bytes", len(body))
			}
		default:
			t.Fatalf("status %d: %v (body %q)", r.status, r, body)
		}
	})
}
