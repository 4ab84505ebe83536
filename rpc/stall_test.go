package rpc_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// smallSendBuffers has every accepted connection's send buffer small, so
// that the server's writes to a client that stops reading block soon.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestWatchSaleStalledReaderIsCut: a WatchSale stream's write deadline
// was set once, to its whole age and a minute (16 minutes), so a client
// that stopped reading held its stream, and its slot of the streams'
// bound, for that long: its writes blocked, unnoticed. The HTTP API's
// event streams move a 30 s deadline with each write; a WatchSale
// stream now does the same (WatchWriteTimeout), so the stalled stream is
// cut and its slot taken by the next caller.
func TestWatchSaleStalledReaderIsCut(t *testing.T) {
	const writeTimeout = 500 * time.Millisecond
	eng, log := meteredEngine(t, prometheus.NewRegistry())
	// Figures every millisecond (the heartbeat), so that a stalled
	// reader's buffers fill at once.
	g := rpc.New(eng, rpc.Config{Logger: log, WatchTick: time.Millisecond, WatchHeartbeat: time.Millisecond,
		WatchWriteTimeout: writeTimeout})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log,
		Mount: g.Mount, MaxQueueStreams: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, base := startH2C(t, api, smallSendBuffers{ln}, g.Close)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	createSale(t, base, "drop", 10)

	for _, tc := range []struct {
		name string
		// stall opens a WatchSale stream, reads its start, and reads no
		// more; the returned func lets the client go.
		stall func(t *testing.T) (closeClient func())
	}{
		{"Connect over HTTP/1.1, small TCP buffers", func(t *testing.T) func() {
			d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			}}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte(`{"id":"drop"}`)
			env := make([]byte, 5, 5+len(msg))
			binary.BigEndian.PutUint32(env[1:], uint32(len(msg)))
			env = append(env, msg...)
			fmt.Fprintf(c, "POST %sWatchSale HTTP/1.1\r\nHost: %s\r\nContent-Type: application/connect+json\r\nContent-Length: %d\r\n\r\n%s",
				svc, addr, len(env), env)
			status, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.Contains(status, " 200 ") {
				t.Fatalf("WatchSale: %q, %v; want 200", status, err)
			}
			return func() { c.Close() }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closeClient := tc.stall(t)
			defer closeClient()
			// The bound is one stream: the next caller gets the slot once
			// the stalled stream is cut.
			c := surgev1connect.NewSaleServiceClient(&http.Client{Transport: &http.Transport{}}, base)
			deadline := time.Now().Add(writeTimeout + 5*time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				s, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "drop"}))
				if err == nil && s.Receive() {
					s.Close()
					cancel()
					return
				}
				if err == nil {
					err = s.Err()
					s.Close()
				}
				cancel()
				if connect.CodeOf(err) != connect.CodeUnavailable {
					t.Fatalf("WatchSale beside the stalled stream: %v; want the stream or UNAVAILABLE (overloaded)", err)
				}
				if time.Now().After(deadline) {
					t.Fatalf("a client that stopped reading still holds its WatchSale stream's slot 5 s past its write timeout (%v): %v",
						writeTimeout, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
