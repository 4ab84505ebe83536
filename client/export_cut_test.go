package client_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// Surge ends every order of the export with a newline, and an export that
// fails midway is cut. A proxy relaying it may end its own answer cleanly
// at the cut (a body delimited by the connection's close): the client
// then sees the export end in the middle of a line. When the cut fell
// right after an order's closing brace, before its newline, Orders handed
// that order to fn and returned nil, a shorter list taken for the whole
// export. A last line without its newline is a cut, whether or not it
// parses.
func TestExportCutBeforeANewlineIsAnError(t *testing.T) {
	s := newServer(t, serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/orders") {
				next.ServeHTTP(w, r)
				return
			}
			// The real export, cut after the last order's closing brace.
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if rec.Code != http.StatusOK || !bytes.HasSuffix(body, []byte("}\n")) {
				t.Errorf("the export answered %d %q; want 200 and orders ending in a newline", rec.Code, body)
			}
			w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
			w.Write(bytes.TrimSuffix(body, []byte("\n")))
		})
	}})
	admin := client.New(s.url, token)
	createSale(t, admin, "hats", 10, 1)
	for _, u := range []string{"ann", "bob", "cat"} {
		if _, err := admin.AsUser(u).Purchase(t.Context(), "hats", client.PurchaseOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := admin.Orders(t.Context(), "hats", func(o api.Order) error { got = append(got, o.UserID); return nil })
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != 2 {
		t.Errorf("an export cut before the newline of its third order: fn had %v, err %v; want the two whole orders and an error that is io.ErrUnexpectedEOF, as for any cut",
			got, err)
	}
}
