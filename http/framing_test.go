package http_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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

// h2Request is one HTTP/2 request written frame by frame, for framings a
// client library would never send.
type h2Request struct {
	method, path string
	fields       [][2]string // regular fields, in order (names lower case)
	// data, when not nil, is sent in DATA frames after the HEADERS frame,
	// the last one ending the stream; nil ends the stream on HEADERS.
	data []byte
}

// h2Exchange sends req over a new plain-text HTTP/2 connection (prior
// knowledge, as on surge serve's listener) and reads its answer: the
// status and body, or the error code of a stream reset (reset > 0).
func h2Exchange(t *testing.T, addr string, req h2Request) (r response, reset http2.ErrCode) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a safety net against a hang
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range append([][2]string{{":method", req.method}, {":scheme", "http"}, {":authority", "surge"}, {":path", req.path}}, req.fields...) {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: req.data == nil, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if req.data != nil {
		if err := fr.WriteData(1, true, req.data); err != nil {
			t.Fatal(err)
		}
	}
	r.header = http.Header{}
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			r.status, _ = strconv.Atoi(f.Value)
		} else {
			r.header.Add(f.Name, f.Value)
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("%s %s over HTTP/2: %v", req.method, req.path, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				t.Fatal(err)
			}
			if f.StreamEnded() {
				return r, 0
			}
		case *http2.DataFrame:
			r.body = append(r.body, f.Data()...)
			if f.StreamEnded() {
				return r, 0
			}
		case *http2.RSTStreamFrame:
			return r, f.ErrCode
		case *http2.GoAwayFrame:
			t.Fatalf("%s %s over HTTP/2: GOAWAY %v", req.method, req.path, f.ErrCode)
		}
	}
}

// TestHTTP2ContentLengthAsHTTP1: over HTTP/1.1 a Content-Length that is
// not one number of bytes is refused 400 before the API sees the request
// (docs/api.md). Over plain-text HTTP/2, served on the same listener, Go's
// server reads such a value (and one naming a body the stream then never
// carries: RFC 9113 §8.1.1 calls that request malformed) as a length of
// 0, so a purchase went on as one without a body: one unit bought where
// HTTP/1.1 refused the same request and nothing changed.
func TestHTTP2ContentLengthAsHTTP1(t *testing.T) {
	e := newEnv(t, envOptions{h2c: true})
	srv := e.srv
	e.createSale(t, `{"id":"s","name":"Target","stock":100,"per_user_limit":5}`)
	addr := srv.Listener.Addr().String()
	const body = `{"quantity":2}`
	for i, c := range []struct {
		name   string
		cl     []string // content-length fields
		data   []byte   // nil: the stream ends with its HEADERS
		status int      // over HTTP/2
		units  int64    // bought
	}{
		{"not a number", []string{"abc"}, nil, 400, 0},
		{"negative", []string{"-1"}, nil, 400, 0},
		{"a list", []string{"14, 14"}, nil, 400, 0},
		{"a sign", []string{"+14"}, nil, 400, 0},
		{"two different values", []string{"0", "14"}, nil, 400, 0},
		{"not a number, empty body", []string{"abc"}, []byte{}, 400, 0},
		{"a length, no body", []string{"14"}, nil, 400, 0},
		{"a length and its body", []string{"14"}, []byte(body), 201, 2},
		{"two equal values and their body", []string{"14", "14"}, []byte(body), 201, 2},
		{"zero, no body", []string{"0"}, nil, 201, 1},
		{"none, a body", nil, []byte(body), 201, 2},
		{"none, no body", nil, nil, 201, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			user := fmt.Sprintf("h2cl-%d", i)
			before := e.sale(t, "s").Remaining
			fields := [][2]string{{"authorization", "Bearer " + userToken(t, user)}, {"idempotency-key", "k1"}}
			for _, v := range c.cl {
				fields = append(fields, [2]string{"content-length", v})
			}
			r, reset := h2Exchange(t, addr, h2Request{method: "POST", path: "/v1/sales/s/purchases", fields: fields, data: c.data})
			if reset != 0 {
				t.Fatalf("Content-Length %q: the stream was reset (%v), want %d", c.cl, reset, c.status)
			}
			if c.status == http.StatusCreated {
				if r.status != c.status {
					t.Fatalf("Content-Length %q over HTTP/2: %s, want %d", c.cl, r, c.status)
				}
				if o := mustOrder(t, r); o.Quantity != c.units {
					t.Errorf("Content-Length %q over HTTP/2: bought %d units, want %d", c.cl, o.Quantity, c.units)
				}
				return
			}
			if r.status == http.StatusCreated {
				t.Errorf("Content-Length %q over HTTP/2 bought a unit (%s): a request whose framing HTTP/1.1 refuses 400 "+
					"must be refused over HTTP/2 too, and change nothing", c.cl, r)
			} else {
				wantError(t, r, c.status, "invalid_request")
			}
			if after := e.sale(t, "s").Remaining; after != before {
				t.Errorf("Content-Length %q over HTTP/2: remaining %d -> %d: bad input changed the sale", c.cl, before, after)
			}
			// The premise: HTTP/1.1 refuses the same header (a length whose
			// body never comes would only wait for it there).
			if c.cl[0] != "14" {
				raw := "POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + userToken(t, user+"-h1") + "\r\n"
				for _, v := range c.cl {
					raw += "Content-Length: " + v + "\r\n"
				}
				if h1, err := rawExchange(addr, raw+"\r\n"+string(c.data)); err != nil || h1.status != http.StatusBadRequest {
					t.Errorf("Content-Length %q over HTTP/1.1: %v %v, want 400", c.cl, h1, err)
				}
			}
		})
	}
}
