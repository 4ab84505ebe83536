package client_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/client"
	surgehttp "github.com/surgehq/surge/http"
)

// Under connection pressure (80 % of --max-conns) the server closes
// keep-alive connections idle for 5 s to make room, while a client made
// by New kept its own for 90 s (net/http's default). A call the client
// may not send twice (a cancel, a payment, a sale's creation), written
// onto such a connection as the server closed it, failed with EOF: its
// request crossed the server's close on the way, which took the length
// of the network path (here 100 ms each way) to reach the client. The
// client now lets its connections go before the server would.
func TestCallOnAConnectionClosedUnderPressure(t *testing.T) {
	s := newServer(t, serverOptions{connLimits: &surgehttp.ConnLimits{Max: 10}})
	link := newSlowLink(t, strings.TrimPrefix(s.url, "http://"), 100*time.Millisecond)
	c := client.New("http://"+link, token)
	createSale(t, c, "s", 10, 5)
	ann := c.AsUser("ann")
	p, err := ann.Purchase(t.Context(), "s", client.PurchaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Past the server's idle bound under pressure.
	time.Sleep(surgehttp.DefaultPressureIdle + 300*time.Millisecond)
	// Other clients' connections, up to the pressure mark (8 of 10),
	// and then one more: the server makes room.
	var raw []net.Conn
	defer func() {
		for _, rc := range raw {
			rc.Close()
		}
	}()
	dial := func() {
		rc, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, rc)
	}
	for s.conns.Stats().Open < 8 {
		dial()
		time.Sleep(20 * time.Millisecond)
	}
	dial()
	for deadline := time.Now().Add(time.Second); s.conns.Stats().Reclaimed == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if _, err := ann.CancelOrder(t.Context(), p.Order.ID); err != nil {
		t.Errorf("cancel after %v idle, the server under connection pressure (%+v): %v; want it cancelled",
			surgehttp.DefaultPressureIdle+300*time.Millisecond, s.conns.Stats(), err)
	}
}

// newSlowLink forwards a loopback address to target, each way delayed
// by d: a network path (its closes delayed too), where loopback would
// tell a client of the server's close at once. servicetest.Proxy slows
// the bytes (Throttle), not their latency.
func newSlowLink(t *testing.T, target string, d time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); delayed(up, c, d) }()
			go func() { defer wg.Done(); delayed(c, up, d) }()
		}
	}()
	return ln.Addr().String()
}

// delayed copies src to dst, each read and the end of src reaching dst d
// later, in order.
func delayed(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		at  time.Time
		b   []byte
		end bool
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{at: time.Now().Add(d), b: buf[:n]}
			}
			if err != nil {
				ch <- chunk{at: time.Now().Add(d), end: true}
				return
			}
		}
	}()
	for k := range ch {
		time.Sleep(time.Until(k.at))
		if k.end {
			// The end passed on as it came: a close both ways.
			dst.Close()
			src.Close()
			continue
		}
		if _, err := dst.Write(k.b); err != nil {
			src.Close()
			io.Copy(io.Discard, src)
		}
	}
}
