package main

import (
	"bufio"
	"context"
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

	"golang.org/x/sys/unix"

	"github.com/surgehq/surge/servicetest"
)

// TestPrivateListenersTimeOutStalledReaders: the --admin-addr and
// --debug-addr listeners must bound an answer's writing as the public
// listener does (the write timeout, 30 s), or a client that asks and then
// reads slower than a byte at a time holds the connection and the
// handler's goroutine, blocked in a write, for good. The client here
// pipelines more answers than the sockets' buffers hold and reads none of
// them: the server must end the connection (its socket leaves ESTABLISHED)
// once the write timeout has passed, and must not answer every request
// once the client reads. The node runs with a write timeout of a second,
// so that the bound acts within the test's patience; without one, the
// connection stays open and the test fails.
func TestPrivateListenersTimeOutStalledReaders(t *testing.T) {
	const token = "private-timeouts-admin-token"
	const write = time.Second
	debug, admin := privateListeners(t, token, func(to *httpTimeouts) { to.write = write })

	req := fmt.Sprintf("GET /debug/pprof/goroutine?debug=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", token)
	var wg sync.WaitGroup
	for _, tc := range []struct{ name, addr string }{{"admin listener", admin}, {"debug listener", debug}} {
		wg.Go(func() {
			// One answer's size (a goroutine dump: tens of KiB, made
			// fast), to ask for far more than the server's send buffer
			// (at most 4 MiB here) and this small receive buffer hold.
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
			// Reading nothing, until the server ends the connection: the
			// kernel's state of this socket says so without reading.
			const patience = 20 * time.Second
			start := time.Now()
			for {
				open, err := established(conn)
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
					return
				}
				if !open {
					break
				}
				if time.Since(start) > patience {
					t.Errorf("%s: a client that read nothing of %d pipelined answers (%d bytes each) still held its connection after %v; want it ended after the write timeout (%v)",
						tc.name, n, len(one), patience, write)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
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
			t.Errorf("%s: a client that read nothing of %d pipelined answers (%d bytes each) until its connection left ESTABLISHED was still being answered (%d answers) when it read; want the connection ended after the write timeout (%v)",
				tc.name, n, len(one), answered, write)
		})
	}
	wg.Wait()
}

// established reports whether the kernel holds conn's TCP connection as
// established: neither end has closed it.
func established(conn net.Conn) (bool, error) {
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return false, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return false, err
	}
	if ierr != nil {
		return false, fmt.Errorf("TCP_INFO: %w", ierr)
	}
	return info.State == unix.BPF_TCP_ESTABLISHED, nil
}

// privateListeners starts a server in the test's process with token, a
// --debug-addr and an --admin-addr, its timeouts as set makes them, and
// returns the two addresses.
func privateListeners(t *testing.T, token string, set func(*httpTimeouts)) (debug, admin string) {
	t.Helper()
	debug, admin = freeAddr(t), freeAddr(t)
	l, err := loadServeConfig([]string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--debug-addr", debug, "--admin-addr", admin}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	set(&l.c.timeouts)
	log, _, err := newLogger(new(servicetest.Log), "error", "text")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(context.Background(), l.c, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.shutdown(10 * time.Second) })
	return debug, admin
}
