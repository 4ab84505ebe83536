package rpc_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/sqlite"
)

// idleProxy forwards TCP connections to target and cuts one that carried
// no byte either way for idle, as a load balancer or proxy with an idle
// timeout does (an AWS ALB's 60 s, nginx's grpc_read_timeout).
func idleProxy(t *testing.T, target string, idle time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			pipe := func(dst, src net.Conn) {
				defer dst.Close()
				defer src.Close()
				buf := make([]byte, 32<<10)
				for {
					// Each direction alone must see a byte within idle: a
					// stream's request is sent once, its answers then flow.
					_ = src.SetReadDeadline(time.Now().Add(idle))
					n, err := src.Read(buf)
					if n > 0 {
						_ = c.SetReadDeadline(time.Now().Add(idle))
						_ = u.SetReadDeadline(time.Now().Add(idle))
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
			wg.Go(func() { pipe(u, c) })
			wg.Go(func() { pipe(c, u) })
		}
	})
	return ln.Addr().String()
}

// heartbeatServer is serverAt with WatchSale's heartbeat set to beat.
func heartbeatServer(t *testing.T, beat time.Duration) (base string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, st, engine.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	g := rpc.New(eng, rpc.Config{Logger: log, WatchTick: 10 * time.Millisecond, WatchHeartbeat: beat})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount})
	return serveH2C(t, api, g.Close, func() { eng.Close(); st.Close() }, false)
}

// TestWatchSaleHeartbeatKeepsIdleStreamOpen: a WatchSale stream of a sale
// whose figures do not change (scheduled, or sold out waiting for holds
// to expire) sent nothing after its first message, so a proxy or load
// balancer with an idle timeout between client and server cut it, and the
// client got an error long before the 15 minutes docs/api.md promises. The
// HTTP API's event streams send a heartbeat after 15 s of silence; a
// WatchSale stream now sends the current figures again.
func TestWatchSaleHeartbeatKeepsIdleStreamOpen(t *testing.T) {
	const idle = 400 * time.Millisecond
	base := heartbeatServer(t, 100*time.Millisecond)
	id := "later"
	create := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "Later", Stock: 10,
		StartsAt: timestamppb.New(time.Now().Add(time.Hour))})
	create.Header().Set("Authorization", "Bearer "+adminToken)
	if _, err := surgev1connect.NewSaleServiceClient(http.DefaultClient, base).CreateSale(context.Background(), create); err != nil {
		t.Fatal(err)
	}
	addr := idleProxy(t, base[len("http://"):], idle)

	for _, tc := range []struct {
		name string
		open func(ctx context.Context) (recv func() (*surgev1.WatchSaleResponse, error), err error)
	}{
		{"grpc-go", func(ctx context.Context) (func() (*surgev1.WatchSaleResponse, error), error) {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { conn.Close() })
			desc := &grpc.StreamDesc{StreamName: "WatchSale", ServerStreams: true}
			s, err := conn.NewStream(ctx, desc, svc+"WatchSale")
			if err != nil {
				return nil, err
			}
			if err := s.SendMsg(&surgev1.WatchSaleRequest{Id: id}); err != nil {
				return nil, err
			}
			if err := s.CloseSend(); err != nil {
				return nil, err
			}
			return func() (*surgev1.WatchSaleResponse, error) {
				m := new(surgev1.WatchSaleResponse)
				return m, s.RecvMsg(m)
			}, nil
		}},
		{"Connect over HTTP/1.1", func(ctx context.Context) (func() (*surgev1.WatchSaleResponse, error), error) {
			c := surgev1connect.NewSaleServiceClient(&http.Client{Transport: &http.Transport{}}, "http://"+addr)
			s, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: id}))
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { s.Close() })
			return func() (*surgev1.WatchSaleResponse, error) {
				if s.Receive() {
					return s.Msg(), nil
				}
				if s.Err() == nil {
					return nil, io.EOF
				}
				return nil, s.Err()
			}, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			recv, err := tc.open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for n := 0; time.Since(start) < 4*idle; n++ {
				m, err := recv()
				if err != nil {
					t.Fatalf("WatchSale of an unchanging sale through a proxy cutting %v of silence: %d messages, then %v after %v; want the stream kept open", idle, n, err, time.Since(start).Round(time.Millisecond))
				}
				if m.Status != "upcoming" || m.Remaining != 10 {
					t.Fatalf("message %d: %v; want upcoming, 10 left", n, m)
				}
			}
		})
	}
}
