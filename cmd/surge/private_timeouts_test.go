package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// TestPrivateListenersTimeOutStalledRequests: the --admin-addr and
// --debug-addr listeners had a header timeout but no read or write
// timeout, so a client that sent its headers and then a body slower than
// a byte at a time held the connection, its goroutine (and on the admin
// listener the handler reading the body) for good. Each listener must end
// such a request within the read timeout. The node runs with a read
// timeout of a second (the public listener's is 15 s), so that the bound
// acts well within the test's patience; without one, the connection stays
// open and the test fails.
func TestPrivateListenersTimeOutStalledRequests(t *testing.T) {
	const token = "private-timeouts-admin-token"
	const read = time.Second
	debug, admin := privateListeners(t, token, func(to *httpTimeouts) { to.read = read })

	const within = 20 * time.Second // the read timeout, and a loaded machine's margin
	var wg sync.WaitGroup
	for _, tc := range []struct{ name, addr, path string }{
		{"admin listener, a sale's body", admin, "/v1/sales"},
		{"debug listener, a body nobody reads", debug, "/debug/stats"},
	} {
		wg.Go(func() {
			conn, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				return
			}
			defer conn.Close()
			// 100 bytes announced, one sent: the rest never comes.
			req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", tc.path, token)
			if _, err := io.WriteString(conn, req); err != nil {
				t.Errorf("%s: %v", tc.name, err)
				return
			}
			start := time.Now()
			_ = conn.SetReadDeadline(start.Add(within))
			_, err = io.ReadAll(conn)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%s: POST %s whose body stalled after its first byte still held its connection open after %v; want it answered and closed after the read timeout (%v)",
					tc.name, tc.path, time.Since(start).Round(time.Second), read)
			}
		})
	}
	wg.Wait()
}
