package rpc_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// TestOversizedMessageRefusedWithoutReadingItAll: a message over the
// 64 KiB bound is refused once the bound is passed (docs/api.md#grpc:
// RESOURCE_EXHAUSTED, too_large), as the HTTP API answers 413 having read
// at most its bound. connect-go read such a message to its end first, to
// report its size: a client declaring a gigabyte, or trickling one in,
// kept a handler reading for as long as it sent (on surge serve, up to the
// 15 s read timeout), and got no answer until then. Here the client sends
// a few bytes past the bound of a message it declares a megabyte long,
// then waits for the answer.
func TestOversizedMessageRefusedWithoutReadingItAll(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 10)
	sendOversized(t, base, surgev1connect.SaleServicePurchaseProcedure, surgehttp.MaxSaleBody, func(t *testing.T, _ string, resp *http.Response) {
		if code := resp.Header.Get(rpc.CodeHeader); code != "too_large" {
			t.Errorf("%d, %s %q (grpc-status %q), want too_large", resp.StatusCode, rpc.CodeHeader, code, resp.Header.Get("Grpc-Status"))
		}
	})
}

// TestOversizedHealthCheckRefusedWithoutReadingItAll: the health
// service's Check, whose message is a service name (bounded at 1 KiB), is
// refused RESOURCE_EXHAUSTED once past its bound, as SaleService's calls
// are. It was read to its end, however long the client declared it or
// trickled it in, and a check is exempt from the per-address limit, as
// /readyz is: anyone could hold handlers reading for as long as they sent.
func TestOversizedHealthCheckRefusedWithoutReadingItAll(t *testing.T) {
	base := server(t)
	sendOversized(t, base, "/grpc.health.v1.Health/Check", 1024, func(t *testing.T, protocol string, resp *http.Response) {
		if protocol == "Connect" && resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s, want 429 (resource_exhausted)", resp.Status)
		}
		if protocol == "gRPC-Web" && resp.Header.Get("Grpc-Status") != "8" {
			t.Errorf("%s, grpc-status %q, want 8 (RESOURCE_EXHAUSTED)", resp.Status, resp.Header.Get("Grpc-Status"))
		}
	})
}

// sendOversized sends procedure, over Connect and gRPC-Web on HTTP/1.1,
// the first bytes of a message it declares a megabyte long: a few past
// bound (and an envelope's 5 bytes), the rest never sent. It fails the
// test when no answer comes within 10 s, else hands each answer (its body
// closed) to check.
func sendOversized(t *testing.T, base, procedure string, bound int, check func(t *testing.T, protocol string, resp *http.Response)) {
	t.Helper()
	const declared = 1 << 20
	// Past the bound and the envelope's 5 bytes: enough for any reader to
	// know the message is over the bound.
	sent := bound + 6
	envelope := binary.BigEndian.AppendUint32([]byte{0}, declared)
	for _, tc := range []struct {
		name, contentType string
		prefix            []byte
		contentLength     int
	}{
		{"Connect", "application/proto", nil, declared},
		{"gRPC-Web", "application/grpc-web+proto", envelope, declared + len(envelope)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var req bytes.Buffer
			fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: surge\r\nContent-Type: %s\r\nX-User-ID: alice\r\nContent-Length: %d\r\n\r\n",
				procedure, tc.contentType, tc.contentLength)
			req.Write(tc.prefix)
			req.Write(bytes.Repeat([]byte{0}, sent-len(tc.prefix)))
			if _, err := conn.Write(req.Bytes()); err != nil {
				t.Fatal(err)
			}
			// The rest of the declared message never comes.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s: %d bytes sent of a message declared %d bytes long: no answer within 10 s (%v); want RESOURCE_EXHAUSTED once past the %d-byte bound, without waiting for the rest",
					procedure, sent, declared, err, bound)
			}
			resp.Body.Close()
			check(t, tc.name, resp)
		})
	}
}
