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
	const declared = 1 << 20
	// Past the bound and the envelope's 5 bytes: enough for any reader to
	// know the message is over the bound.
	sent := surgehttp.MaxSaleBody + 6
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
				surgev1connect.SaleServicePurchaseProcedure, tc.contentType, tc.contentLength)
			req.Write(tc.prefix)
			req.Write(bytes.Repeat([]byte{0}, sent-len(tc.prefix)))
			if _, err := conn.Write(req.Bytes()); err != nil {
				t.Fatal(err)
			}
			// The rest of the declared message never comes.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%d bytes sent of a message declared %d bytes long: no answer within 10 s (%v); want RESOURCE_EXHAUSTED (too_large) once past the %d-byte bound, without waiting for the rest",
					sent, declared, err, surgehttp.MaxSaleBody)
			}
			resp.Body.Close()
			if code := resp.Header.Get(rpc.CodeHeader); code != "too_large" {
				t.Errorf("%d bytes sent of a message declared %d bytes long: %d, %s %q (grpc-status %q), want too_large",
					sent, declared, resp.StatusCode, rpc.CodeHeader, code, resp.Header.Get("Grpc-Status"))
			}
		})
	}
}
