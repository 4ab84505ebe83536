package http_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// exchange writes raw to a new connection, with a request for /healthz
// pipelined behind it, and reads the first answer. The second answer
// tells whether the server kept the connection for another request:
// second is nil when the connection was closed after the first answer.
func exchange(t *testing.T, h *hostileEnv, raw string) (first response, second *response) {
	t.Helper()
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A safety net against a hang, not a synchronisation.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw+"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	read := func() (*response, error) {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return &response{status: resp.StatusCode, header: resp.Header, body: b, close: resp.Close}, err
	}
	r, err := read()
	if err != nil {
		t.Fatalf("first answer: %v", err)
	}
	next, err := read()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the first answer: %v", err)
	}
	return *r, next
}

// purchaseRaw is a purchase of one unit by user, with the framing headers
// given and the body as given (already chunked or not).
func purchaseRaw(t *testing.T, user string, framing []string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n", userToken(t, user))
	for _, f := range framing {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// TestChunkedRequestsCloseTheConnection: RFC 9112 §6.1 says a request with
// both Content-Length and Transfer-Encoding must be answered and the
// connection closed, since a proxy in front may have framed it by the
// other header (request smuggling). net/http serves it and keeps the
// connection, and removes Content-Length before any handler runs, so the
// handler cannot tell it from a plain chunked request: every request with
// a chunked body is answered with Connection: close. Bodies with a
// Content-Length keep the connection.
func TestChunkedRequestsCloseTheConnection(t *testing.T) {
	h := newHostileEnv(t)
	h.createSale(t, `{"id":"s","name":"Target","stock":100}`)
	const body = `{"quantity":1}`
	chunkedBody := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	for i, c := range []struct {
		name    string
		framing []string
		body    string
		status  int
		code    string // the JSON error code; "" for a 201
		close   bool
	}{
		{"Content-Length and Transfer-Encoding", []string{fmt.Sprintf("Content-Length: %d", len(chunkedBody)), "Transfer-Encoding: chunked"},
			chunkedBody, 201, "", true},
		{"Transfer-Encoding and a smuggling Content-Length", []string{"Transfer-Encoding: chunked", "Content-Length: 3"},
			chunkedBody, 201, "", true},
		{"Transfer-Encoding only", []string{"Transfer-Encoding: chunked"}, chunkedBody, 201, "", true},
		{"chunk lines ending in bare LF", []string{"Transfer-Encoding: chunked"},
			fmt.Sprintf("%x\n%s\n0\n\n", len(body), body), 400, "invalid_request", true},
		{"Content-Length only", []string{fmt.Sprintf("Content-Length: %d", len(body))}, body, 201, "", false},
		{"no body", nil, "", 201, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, next := exchange(t, h, purchaseRaw(t, fmt.Sprintf("framing-%d", i), c.framing, c.body))
			if r.status != c.status {
				t.Fatalf("%v, want %d", r, c.status)
			}
			if c.code != "" {
				wantError(t, r, c.status, c.code)
			} else {
				mustOrder(t, r)
			}
			if r.close != c.close {
				t.Errorf("Connection: close sent %v, want %v", r.close, c.close)
			}
			if c.close && next != nil {
				t.Errorf("the connection served another request after the answer: %v", *next)
			}
			if !c.close && (next == nil || next.status != http.StatusOK) {
				t.Errorf("the connection was not kept for the next request: %v", next)
			}
		})
	}
}

// TestOpsListenersAnswerJSON: the private listeners (--debug-addr,
// --admin-addr) route through a ServeMux of their own before the API; an
// unclean path or CONNECT is answered there in the JSON shape as well.
func TestOpsListenersAnswerJSON(t *testing.T) {
	e := newEnv(t, envOptions{})
	stats := prometheus.NewRegistry()
	for name, h := range map[string]http.Handler{
		"debug": e.handler.Ops(stats, nil),
		"admin": e.handler.Ops(stats, e.handler),
	} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		for _, c := range []struct {
			raw    string
			status int
			code   string
		}{
			{"GET /debug/../v1/sales HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
			{"GET //debug/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminToken + "\r\n\r\n", 404, "not_found"},
			{"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 404, "not_found"},
			{"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"},
		} {
			r, err := rawExchange(srv.Listener.Addr().String(), c.raw)
			if err != nil {
				t.Fatalf("%s: %q: %v", name, c.raw, err)
			}
			wantError(t, r, c.status, c.code)
			if loc := r.header.Get("Location"); loc != "" {
				t.Errorf("%s: %q redirected to %q", name, c.raw, loc)
			}
		}
	}
}

// rawExchange writes raw to a new connection to addr and reads one answer.
func rawExchange(addr, raw string) (response, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return response{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a safety net against a hang
	if _, err := io.WriteString(conn, raw); err != nil {
		return response{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, close: resp.Close}, err
}
