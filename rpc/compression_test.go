package rpc_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// gzipBomb is a gzip stream of n zero bytes: about n/1000 bytes sent.
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	chunk := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := zw.Write(chunk[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCompressedMessageInflatedOnlyToTheBound: a request message is bounded
// at 64 KiB (docs/api.md#grpc, "a message over 64 KiB, RESOURCE_EXHAUSTED
// (too_large)"), and the bound must bound the work too: a gzip-compressed
// message under 64 KiB on the wire that inflates to 60 MiB must be refused
// once it passes the bound, not inflated to its end first. Otherwise each
// 60 KiB request costs the server 60 MiB of inflating, a thousand times the
// work of any message it accepts, and a few clients take every core.
func TestCompressedMessageInflatedOnlyToTheBound(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 10)
	const inflated = 60 << 20
	bomb := gzipBomb(t, inflated)
	if len(bomb) > surgehttp.MaxSaleBody {
		t.Fatalf("bomb of %d bytes is over the bound itself", len(bomb))
	}
	frame := func(flags byte, msg []byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{flags}, uint32(len(msg))), msg...)
	}
	// A compressed message within the bound still buys.
	c := surgev1connect.NewSaleServiceClient(h2cClient(), base, connect.WithSendGzip(), connect.WithGRPC())
	preq := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: strings.Repeat("k", 100)})
	preq.Header().Set("X-User-ID", "bob")
	if _, err := c.Purchase(context.Background(), preq); err != nil {
		t.Fatalf("a gzip-compressed purchase within the bound: %v", err)
	}
	sizeRE := regexp.MustCompile(`message size (\d+) is larger`)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		body []byte
	}{
		{"Connect", map[string]string{"Content-Type": "application/proto", "Content-Encoding": "gzip"}, bomb},
		{"gRPC", map[string]string{"Content-Type": "application/grpc", "Grpc-Encoding": "gzip", "Te": "trailers"}, frame(1, bomb)},
		{"gRPC-Web", map[string]string{"Content-Type": "application/grpc-web+proto", "Grpc-Encoding": "gzip"}, frame(1, bomb)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+surgev1connect.SaleServicePurchaseProcedure, bytes.NewReader(tc.body))
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			req.Header.Set("X-User-ID", "alice")
			start := time.Now()
			resp, err := h2cClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			msg := string(body) + " " + resp.Header.Get("Grpc-Message") + " " + resp.Trailer.Get("Grpc-Message")
			code := resp.Header.Get(rpc.CodeHeader) + resp.Trailer.Get(rpc.CodeHeader)
			if code != "too_large" {
				t.Fatalf("a %d-byte gzip body inflating to %d bytes: Surge-Code %q (%s), want too_large", len(tc.body), inflated, code, msg)
			}
			m := sizeRE.FindStringSubmatch(strings.ReplaceAll(msg, "%20", " "))
			if m == nil {
				t.Fatalf("refusal names no inflated size: %s", msg)
			}
			if n, _ := strconv.Atoi(m[1]); n > 2*surgehttp.MaxSaleBody {
				t.Errorf("a %d-byte gzip message was inflated to all its %d bytes (in %v) before being refused as over the %d-byte bound: each such request costs the server a thousand times the work it sent",
					len(tc.body), n, took.Round(time.Millisecond), surgehttp.MaxSaleBody)
			}
		})
	}
}
