package http_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client may send its request and then shut its side of the connection
// for writing (a half-close: shutdown(SHUT_WR), nc -N), still reading
// the answer. net/http takes the end of the request stream for the
// client's leaving and ends the request's context, and the purchase,
// which answers nothing to a client gone, returned without writing: net/
// http then answered 200 with an empty body, read by the client as a
// success of a purchase that may never have been made. The purchase
// either commits and is answered, or is not answered at all, and then a
// retry with its Idempotency-Key replays it if it committed; never both
// a success and nothing bought, never two orders.
func TestHalfClosedPurchase(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":10,"per_user_limit":1}`)
	for _, tc := range []struct {
		name, user string
		body       []byte
	}{
		{"no body", "hana", nil},
		{"with a body", "ivo", []byte(`{"quantity":1}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "half-close-" + tc.user
			conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			raw := rawRequest("POST", "/v1/sales/s/purchases", []string{
				"Authorization: Bearer " + userToken(t, tc.user), "Idempotency-Key: " + key}, tc.body)
			if _, err := conn.Write(raw); err != nil {
				t.Fatal(err)
			}
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			ans, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			t.Logf("answered %d bytes", len(ans))
			if len(ans) > 0 {
				resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(ans)), nil)
				if err != nil {
					t.Fatalf("answer %q: %v", ans, err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode/100 == 2 && (resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"order"`)) {
					t.Fatalf("a half-closed purchase was answered %s with body %q; want 201 with its order, or no answer", resp.Status, b)
				}
			}
			// However it was answered, the key gives the buyer one order.
			r := e.do(t, "POST", "/v1/sales/s/purchases", "", asUser(t, tc.user), idemKey(key))
			wantStatus(t, r, http.StatusCreated)
			n := 0
			for _, o := range e.export(t, "s") {
				if o.UserID == tc.user {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s has %d orders after the half-closed purchase and its retry; want 1", tc.user, n)
			}
		})
	}
}

// A read of an order by a client that half-closed its connection (or
// left) failed at the store with the request's context, and was answered
// 503 unavailable "the service is shutting down or its storage failed":
// false, and counted as such in the access log, though the store was
// well. The client gone, the connection is closed unanswered, as for a
// purchase; a client still there is answered the order.
func TestHalfClosedOrderRead(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":10}`)
	o := e.buy(t, "s", asUser(t, "ann"))
	for range 50 {
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.Write(rawRequest("GET", "/v1/orders/"+o.ID, []string{"Authorization: Bearer " + userToken(t, "ann")}, nil)); err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		ans, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("read the answer: %v", err)
		}
		if len(ans) == 0 {
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(ans)), nil)
		if err != nil {
			t.Fatalf("answer %q: %v", ans, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), o.ID) {
			t.Fatalf("a half-closed read of order %s was answered %s %q; want 200 with the order, or no answer", o.ID, resp.Status, b)
		}
	}
}
