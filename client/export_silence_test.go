package client_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// stallingWriter passes an answer on up to its first newline (the first
// order of an export), flushed, then holds every later write until the
// request ends: a server or proxy that stops sending mid-body.
type stallingWriter struct {
	http.ResponseWriter
	r      *http.Request
	passed bool
}

func (w *stallingWriter) Write(b []byte) (int, error) {
	if !w.passed {
		w.passed = true
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if _, err := w.ResponseWriter.Write(b[:i+1]); err != nil {
				return 0, err
			}
			_ = http.NewResponseController(w.ResponseWriter).Flush()
		}
	}
	<-w.r.Context().Done()
	return 0, w.r.Context().Err()
}

func (w *stallingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The order export is a stream without a timeout: a server or proxy that
// stopped sending, before the answer's header or in the middle of its
// body, held the caller of Orders for as long as its context allowed (for
// good with none). A silence longer than the client's stream bound is an
// error that says so; a caller slow to take each order is not silence.
func TestOrdersSilentServer(t *testing.T) {
	const silence = 300 * time.Millisecond
	for _, tc := range []struct {
		name      string
		stall     func(next http.Handler) http.Handler
		slowFn    time.Duration // fn's time per order
		wantErr   bool
		wantFirst int // orders fn must have had
	}{
		{name: "before the header", stall: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		}, wantErr: true},
		{name: "after the first order", stall: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(&stallingWriter{ResponseWriter: w, r: r}, r)
			})
		}, wantErr: true, wantFirst: 1},
		{name: "slow caller", slowFn: 2 * silence, wantFirst: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, serverOptions{wrap: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tc.stall != nil && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/orders") {
						tc.stall(next).ServeHTTP(w, r)
						return
					}
					next.ServeHTTP(w, r)
				})
			}})
			admin := client.New(s.url, token)
			createSale(t, admin, "hats", 10, 1)
			for _, u := range []string{"ann", "bob", "cat"} {
				if _, err := admin.AsUser(u).Purchase(t.Context(), "hats", client.PurchaseOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			client.SetStreamSilence(admin, silence)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			start := time.Now()
			got := 0
			err := admin.Orders(ctx, "hats", func(api.Order) error {
				got++
				time.Sleep(tc.slowFn)
				return nil
			})
			took := time.Since(start)
			if !tc.wantErr {
				if err != nil || got != tc.wantFirst {
					t.Fatalf("export read by a caller taking %v an order: %d orders, %v; want %d and no error", tc.slowFn, got, err, tc.wantFirst)
				}
				return
			}
			if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "the server sent nothing for 300ms") {
				t.Fatalf("export from a server silent %s: returned after %v with %v; want an error within about %v saying the server sent nothing",
					tc.name, took.Round(time.Millisecond), err, silence)
			}
			if got != tc.wantFirst {
				t.Errorf("fn had %d orders before the silence, want %d", got, tc.wantFirst)
			}
		})
	}
}
