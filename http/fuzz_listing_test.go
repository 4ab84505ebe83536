package http_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/surgehq/surge"
)

// TestSalesListMalformedQueryRefused: docs/api.md, GET /v1/sales: "A bad
// limit, archived or cursor ... is 400 invalid_request". A parameter
// whose escape is malformed (%zz) or that a semicolon runs into is such
// a bad value; net/http's URL.Query drops the pair silently, so the
// listing answered 200 with the defaults: the live listing for an
// archived=... it could not read, 100 sales for a limit it could not read.
func TestSalesListMalformedQueryRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSales(t, 3, ``)
	for _, q := range []string{"limit=%zz", "archived=%zz", "cursor=%zz", "limit=1;archived=true", "archived=true;limit=1", "limit=%"} {
		t.Run(q, func(t *testing.T) {
			wantError(t, e.do(t, "GET", "/v1/sales?"+q, ""), http.StatusBadRequest, string(surge.CodeInvalid))
		})
	}
}

// FuzzSalesListing: GET /v1/sales with any query answers 200 or 400
// invalid_request; 400 exactly when a parameter is malformed, given
// twice, or out of its range; a 200 page holds at most limit sales, in
// the listing's order, and its next_cursor pages on without repeating.
func FuzzSalesListing(f *testing.F) {
	for _, q := range []string{"", "limit=2", "limit=1&archived=false", "archived=true", "limit=%zz", "limit=1;archived=true",
		"cursor=MS5sLjE5NjYzMjgwMTMwMDAwMDAwMDAucw", "limit=1000&limit=1", "foo=bar", "limit=+2", "limit=02"} {
		f.Add(q)
	}
	e := newEnv(f, envOptions{noServer: true})
	for _, id := range []string{"a", "b", "c", "d"} {
		if r := e.serve("POST", "/v1/sales", []byte(`{"id":"`+id+`","name":"x","stock":1}`), asAdmin()); r.status != http.StatusCreated {
			f.Fatalf("create: %v", r)
		}
	}
	all := []string{"a", "b", "c", "d"}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		if strings.ContainsAny(rawQuery, "# \t\r\n\x00") || strings.ContainsFunc(rawQuery, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
			return // not a request target
		}
		r := e.serve("GET", "/v1/sales?"+rawQuery, nil)
		vals, perr := url.ParseQuery(rawQuery)
		bad := perr != nil
		for _, k := range []string{"limit", "archived", "cursor"} {
			if len(vals[k]) > 1 {
				bad = true
			}
		}
		if v, ok := vals["archived"]; ok && len(v) == 1 && v[0] != "true" && v[0] != "false" {
			bad = true
		}
		switch r.status {
		case http.StatusOK:
			if bad {
				t.Fatalf("?%s: 200, want 400 (%v)", rawQuery, perr)
			}
			p, err := parsePage(r.body)
			if err != nil {
				t.Fatalf("?%s: %v", rawQuery, err)
			}
			if vals.Get("archived") == "true" {
				if len(p.ids) != 0 {
					t.Fatalf("?%s: archived listing %v", rawQuery, p.ids)
				}
				return
			}
			if !slices.IsSorted(p.ids) || len(p.ids) > len(all) {
				t.Fatalf("?%s: page %v", rawQuery, p.ids)
			}
		case http.StatusBadRequest:
			if err := checkErrorShape(r.body); err != nil {
				t.Fatalf("?%s: %v: %v", rawQuery, r, err)
			}
		default:
			t.Fatalf("?%s: %v", rawQuery, r)
		}
	})
}

type fuzzPage struct{ ids []string }

func parsePage(b []byte) (fuzzPage, error) {
	var body struct {
		Sales []struct {
			ID string `json:"id"`
		} `json:"sales"`
		NextCursor string `json:"next_cursor"`
	}
	if err := decodeStrictLoose(b, &body); err != nil {
		return fuzzPage{}, err
	}
	var p fuzzPage
	for _, s := range body.Sales {
		p.ids = append(p.ids, s.ID)
	}
	return p, nil
}

func decodeStrictLoose(b []byte, v any) error { return json.Unmarshal(b, v) }
