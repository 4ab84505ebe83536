package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPrivateListenersTimeOutStalledReaders: the --admin-addr and
// --debug-addr listeners must bound an answer's writing as the public
// listener does (writeTimeout, 30 s), or a client that asks and then reads
// slower than a byte at a time holds the connection and the handler's
// goroutine, blocked in a write, for good. The client here pipelines more
// answers than the sockets' buffers hold and reads none of them for
// longer than the write timeout: the server must have given up on the
// connection by then, not answer every request once the client reads.
func TestPrivateListenersTimeOutStalledReaders(t *testing.T) {
	const token = "private-timeouts-admin-token"
	debug, admin := freeAddr(t), freeAddr(t)
	startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--debug-addr", debug, "--admin-addr", admin, "--log-level", "error")
	req := fmt.Sprintf("GET /debug/pprof/goroutine?debug=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", token)
	var wg sync.WaitGroup
	for _, tc := range []struct{ name, addr string }{{"admin listener", admin}, {"debug listener", debug}} {
		wg.Go(func() {
			// One answer's size (a goroutine dump: tens of KiB, made
			// fast), to ask for far more than the server's send buffer
			// (at most 4 MiB here) and this small receive buffer hold
			// within a few seconds.
			get, _ := http.NewRequest(http.MethodGet, "http://"+tc.addr+"/debug/pprof/goroutine?debug=2", nil)
			get.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(get)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s: GET /debug/pprof/goroutine?debug=2: %v %v", tc.name, resp, err)
				return
			}
			one, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			n := 12<<20/(len(one)+200) + 1
			d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			}}
			conn, err := d.Dial("tcp", tc.addr)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				return
			}
			defer conn.Close()
			go func() { _, _ = io.WriteString(conn, strings.Repeat(req, n)) }()
			time.Sleep(writeTimeout + 10*time.Second) // reading nothing
			// Now read: a connection the server ended gives what the
			// buffers held, then its end; one it still serves gives
			// every answer, or more than a minute of them.
			_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
			br := bufio.NewReader(conn)
			answered := 0
			for ; answered < n; answered++ {
				resp, err := http.ReadResponse(br, nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if err != nil {
					return // ended by the server: its write timed out
				}
			}
			t.Errorf("%s: a client that read nothing of %d pipelined answers (%d bytes each) for %v was still being answered (%d answers) when it read; want the connection ended after the write timeout (%v)",
				tc.name, n, len(one), writeTimeout+10*time.Second, answered, writeTimeout)
		})
	}
	wg.Wait()
}
