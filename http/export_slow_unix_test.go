//go:build unix

package http_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// smallSendBuffers gives every accepted connection a small send buffer, so
// a client that stops reading stops the handler's writes after kilobytes,
// not megabytes of kernel buffers.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestSlowExportsLeaveOrderReadsAnswering: the order export streams while
// its client reads; eight admins' exports read slowly (a script piping
// into a slow consumer, a stalled client) held every connection of the
// embedded store's reader pool, and GET /v1/orders/{id} then waited with
// them, with no deadline of its own. Exports beyond their share are now
// refused 503 overloaded with Retry-After, and order reads answer.
func TestSlowExportsLeaveOrderReadsAnswering(t *testing.T) {
	const (
		exports = 8 // the store's reader connections
		orders  = 2000
	)
	e := newEnv(t, envOptions{noServer: true})
	e.srv = httptest.NewUnstartedServer(e.handler)
	e.srv.Listener = smallSendBuffers{e.srv.Listener}
	e.srv.Start()
	sale := e.createSale(t, fmt.Sprintf(`{"id":"drop","name":"Drop","stock":%d}`, orders))
	batch := make([]surge.Purchase, orders)
	for i := range batch {
		batch[i] = surge.Purchase{UserID: fmt.Sprintf("user-%d", i), Quantity: 1}
	}
	outs, _, err := e.store.Reserve(t.Context(), sale.ID, batch, surge.At(e.clock.Now()))
	if err != nil || outs[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %v", err)
	}
	order := outs[0].Order.ID

	// Slow clients: each reads its answer's status line, then nothing.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	streaming, refused := 0, 0
	for i := range exports {
		c, err := dialer.DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/sales/%s/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", sale.ID, adminToken)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 16), nil)
		if err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			streaming++
		case http.StatusServiceUnavailable:
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), `"overloaded"`) || resp.Header.Get("Retry-After") == "" {
				t.Errorf("export %d refused without overloaded and Retry-After: %s %s", i, resp.Header, b)
			}
			refused++
		default:
			t.Fatalf("export %d: status %d", i, resp.StatusCode)
		}
	}
	if streaming == 0 {
		t.Fatal("no export streaming")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/orders/"+order, nil)
	asAdmin()(req)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET /v1/orders/{id} while %d exports stream to slow clients (%d refused): %v", streaming, refused, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/orders/{id} while %d exports stream to slow clients: status %d, want 200", streaming, resp.StatusCode)
	}
}
