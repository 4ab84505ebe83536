package rpc_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// WatchSale streams last up to 15 minutes and need no credential, each
// holding a connection and a goroutine as a queue event stream does: they
// count against the queue streams' bounds of one address and of all, and
// are refused beyond them as the queue streams are (429 rate_limited, 503
// overloaded, with a wait): RESOURCE_EXHAUSTED or UNAVAILABLE with a
// RetryInfo. A stream that ends gives its slot back.
func TestWatchSaleStreamsAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tune      func(*surgehttp.Config)
		bound     int
		code      connect.Code
		surgeCode string
	}{
		{"per address", nil, surgehttp.DefaultMaxQueueStreamsPerAddress, connect.CodeResourceExhausted, "rate_limited"},
		{"in all", func(c *surgehttp.Config) { c.MaxQueueStreams = 3 }, 3, connect.CodeUnavailable, "overloaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := serverOver(t, nil, tc.tune)
			createSale(t, base, "drop", 10)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := surgev1connect.NewSaleServiceClient(h2cClient(), base, connect.WithGRPC())
			watch := func() (*connect.ServerStreamForClient[surgev1.WatchSaleResponse], error) {
				s, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "drop"}))
				if err == nil && s.Receive() {
					return s, nil
				}
				if err == nil {
					err = s.Err()
					s.Close()
				}
				return nil, err
			}
			var (
				mu      sync.Mutex
				streams []*connect.ServerStreamForClient[surgev1.WatchSaleResponse]
				refused []error
			)
			defer func() {
				for _, s := range streams {
					s.Close()
				}
			}()
			var wg sync.WaitGroup
			for range tc.bound * 2 {
				wg.Go(func() {
					s, err := watch()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						refused = append(refused, err)
						return
					}
					streams = append(streams, s)
				})
			}
			wg.Wait()
			if len(streams) != tc.bound || len(refused) != tc.bound {
				t.Fatalf("%d WatchSale streams open at once from one address, %d refused; want %d and %d", len(streams), len(refused), tc.bound, tc.bound)
			}
			for _, err := range refused {
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Code() != tc.code || ce.Meta().Get(rpc.CodeHeader) != tc.surgeCode || retryDelay(ce) <= 0 {
					t.Fatalf("a stream over the bound: %v, want %v %s with a RetryInfo", err, tc.code, tc.surgeCode)
				}
			}

			streams[0].Close()
			streams = streams[1:]
			deadline := time.Now().Add(5 * time.Second)
			for {
				s, err := watch()
				if err == nil {
					streams = append(streams, s)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no WatchSale slot back 5 s after a stream closed: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// A WatchSale that comes once the server is shutting down (or handing
// over to a new process) is refused UNAVAILABLE, as a queue event stream
// is refused 503 unavailable then, so that the client watches elsewhere
// or later; before, it got the current figures and an OK end, as if the
// stream had run its course.
func TestWatchSaleRefusedWhenClosing(t *testing.T) {
	eng, log := meteredEngine(t, prometheus.NewRegistry())
	g := rpc.New(eng, rpc.Config{Logger: log, WatchTick: 10 * time.Millisecond})
	srv := httptest.NewServer(surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount}))
	defer srv.Close()
	createSale(t, srv.URL, "drop", 10)
	g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := surgev1connect.NewSaleServiceClient(srv.Client(), srv.URL)
	s, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "drop"}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for s.Receive() {
		n++
	}
	if connect.CodeOf(s.Err()) != connect.CodeUnavailable {
		t.Errorf("a WatchSale after Close: %d messages, then %v; want unavailable", n, s.Err())
	}
}

// TestWatchSaleEndsUnavailableOnShutdown: an open WatchSale stream ended
// with OK when the server shut down or handed over, the end of a sale that
// ended or of a stream at its age, so a client could not tell that the
// server was going away and that it should call again (elsewhere). It now
// ends UNAVAILABLE (unavailable) with a RetryInfo, as gRPC clients expect
// of a draining server, as a new call is refused then.
func TestWatchSaleEndsUnavailableOnShutdown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client func() *http.Client
		opts   []connect.ClientOption
	}{
		{"Connect over HTTP/1.1", func() *http.Client { return &http.Client{Transport: &http.Transport{}} }, nil},
		{"gRPC over HTTP/2", h2cClient, []connect.ClientOption{connect.WithGRPC()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, log := meteredEngine(t, prometheus.NewRegistry())
			g := rpc.New(eng, rpc.Config{Logger: log, WatchTick: 10 * time.Millisecond})
			api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount})
			srv, base := startH2C(t, api, nil, g.Close)
			defer srv.Close()
			createSale(t, base, "drop", 10)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := surgev1connect.NewSaleServiceClient(tc.client(), base, tc.opts...)
			s, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "drop"}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !s.Receive() {
				t.Fatalf("WatchSale: %v; want the figures", s.Err())
			}
			go func() { _ = srv.Shutdown(ctx) }()
			for s.Receive() {
			}
			err = s.Err()
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable {
				t.Fatalf("a WatchSale stream open at shutdown ended with %v; want UNAVAILABLE (the server is going away)", err)
			}
			retry := false
			for _, d := range ce.Details() {
				if m, err := d.Value(); err == nil {
					_, retry = m.(*errdetails.RetryInfo)
					if retry {
						break
					}
				}
			}
			if !retry {
				t.Errorf("UNAVAILABLE at shutdown without a RetryInfo: %v", err)
			}
		})
	}
}
