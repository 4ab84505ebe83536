package http_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"
)

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestContentEncodedBodyRefused: the API decodes no content coding. A
// gzip body labelled gzip was refused as "malformed JSON at byte 0:
// invalid character '\x1f'", which sends its client after its JSON; and
// a plain body labelled gzip was read as plain and bought, a mislabelled
// input guessed at. Both must be 400 invalid_request naming the header,
// with nothing changed; "identity" is no coding.
func TestContentEncodedBodyRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	sale := e.createSale(t, `{"id":"enc","name":"Encoded","stock":10,"per_user_limit":5}`)
	before := e.snapshot(t, sale.ID)
	buyer := asUser(t, "kim")
	for _, tc := range []struct {
		name, method, path, body, encoding string
		who                                opt
	}{
		{"purchase gzip", "POST", "/v1/sales/enc/purchases", gzipped(t, `{"quantity":2}`), "gzip", buyer},
		{"purchase plain labelled gzip", "POST", "/v1/sales/enc/purchases", `{"quantity":2}`, "gzip", buyer},
		{"purchase plain labelled identity, br", "POST", "/v1/sales/enc/purchases", `{"quantity":2}`, "identity, br", buyer},
		{"create gzip", "POST", "/v1/sales", gzipped(t, `{"id":"enc2","name":"Two","stock":1}`), "gzip", asAdmin()},
		{"create plain labelled deflate", "POST", "/v1/sales", `{"id":"enc2","name":"Two","stock":1}`, "deflate", asAdmin()},
		{"update plain labelled gzip", "PATCH", "/v1/sales/enc", `{"stock":3}`, "GZIP", asAdmin()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.body, tc.who, header("Content-Encoding", tc.encoding))
			wantError(t, r, http.StatusBadRequest, "invalid_request")
			if !strings.Contains(string(r.body), "Content-Encoding") {
				t.Errorf("%v: want the message to name Content-Encoding", r)
			}
		})
	}
	e.wantUnchanged(t, sale.ID, before)
	if r := e.do(t, "GET", "/v1/sales/enc2", ""); r.status != http.StatusNotFound {
		t.Errorf("GET the sale a refused create named: %v, want 404", r)
	}
	// identity is no coding: the body is read as sent.
	r := e.do(t, "POST", "/v1/sales/enc/purchases", `{"quantity":2}`, buyer, header("Content-Encoding", "identity"))
	wantStatus(t, r, http.StatusCreated)
}
