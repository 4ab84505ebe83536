package http_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	surgehttp "github.com/surgehq/surge/http"
)

// TestConnLimitRefusalSpeaksTheClientsProtocol: a connection over its
// address's bound is refused in the protocol its client speaks. An
// HTTP/1.1 client gets 429 rate_limited with Retry-After, its request read
// first so that the close cannot reset the answer away; an HTTP/2 client
// with prior knowledge (as gRPC clients speak to the API's listener) gets
// a GOAWAY with ENHANCE_YOUR_CALM and the same message, not HTTP/1.1 text
// it cannot parse.
func TestConnLimitRefusalSpeaksTheClientsProtocol(t *testing.T) {
	_, addr := limitedServer(t, surgehttp.ConnLimits{Max: 100, PerAddr: 1})
	// The one connection the address may hold.
	hold := dialFrom(t, "127.0.0.5", addr)
	if code, err := hold.get(); err != nil || code != http.StatusOK {
		t.Fatalf("first connection: %d, %v", code, err)
	}

	t.Run("HTTP/1.1", func(t *testing.T) {
		for i := range 20 {
			k := dialFrom(t, "127.0.0.5", addr)
			code, err := k.get()
			if err != nil || code != http.StatusTooManyRequests {
				t.Fatalf("refusal %d: %d, %v; want 429", i, code, err)
			}
			k.c.Close()
		}
	})

	t.Run("HTTP/2, prior knowledge", func(t *testing.T) {
		for i := range 20 {
			// What a client reads: the server's preface, then the
			// GOAWAY, whose debug data is the API's error.
			c := dialFrom(t, "127.0.0.5", addr).c
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(c, c)
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			if f, err := fr.ReadFrame(); err != nil {
				t.Fatalf("refusal %d, first frame: %v", i, err)
			} else if _, ok := f.(*http2.SettingsFrame); !ok {
				t.Fatalf("refusal %d, first frame %v, want SETTINGS (the server's preface)", i, f)
			}
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("refusal %d, second frame: %v", i, err)
			}
			ga, ok := f.(*http2.GoAwayFrame)
			if !ok || ga.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(ga.DebugData()), `"code":"rate_limited"`) {
				t.Fatalf("refusal %d, second frame %v, want GOAWAY ENHANCE_YOUR_CALM with the rate_limited error", i, f)
			}
			c.Close()
		}
		// And an HTTP/2 client library is refused, not served.
		tr := &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}
				return d.DialContext(ctx, network, a)
			},
		}
		defer tr.CloseIdleConnections()
		if resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			t.Fatalf("an HTTP/2 connection over the bound was served: %d", resp.StatusCode)
		}
	})
}
