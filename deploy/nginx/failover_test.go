package nginx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
)

// TestEdgeSkipsAVanishedNode: a node whose host is gone answers no SYN,
// and the edge gives up connecting to it after 2 s. A request that never
// reached it changed nothing there, so the edge must send it to another
// node, whatever its method: a buyer reading a sale, an order or their
// place in the line, a purchase (never sent, so never taken twice), a
// WatchSale stream, a gRPC call. Only a request already sent to a node
// that then fails to answer stays unresent when it is not idempotent
// (TestEdgePurchaseNotResent). With `proxy_next_upstream error` alone,
// each of these was answered 504 after the 2 s while the other node
// stood idle.
func TestEdgeSkipsAVanishedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx and a node")
	}
	nginx := nginxBinary(t)
	dir := edgeDir(t, "surge-edge-failover-")
	bin := filepath.Join(dir, "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	node := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--http-addr", node, "--data-dir", filepath.Join(dir, "data"),
		"--trusted-proxies", "127.0.0.1/32", "--insecure-user-header")
	cmd.Env = cleanEnv("SURGE_ADMIN_TOKEN=" + token)
	nodeLog := start(t, cmd, filepath.Join(dir, "node.log"))
	waitHTTP(t, "the node", "http://"+node+"/readyz", nodeLog)

	// What the buyers will read, made on the node itself: a sale with an
	// order, and a sale with a waiting room and a buyer in its line.
	direct := "http://" + node
	admin := []string{"Authorization", "Bearer " + token}
	for _, body := range []string{
		`{"id":"plain","name":"Plain","stock":100}`,
		`{"id":"line","name":"Line","stock":100,"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":60}}`,
	} {
		if code, b := send(t, http.MethodPost, direct+"/v1/sales", body, admin...); code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", body, code, b)
		}
	}
	var bought struct{ Order struct{ ID string } }
	code, b := send(t, http.MethodPost, direct+"/v1/sales/plain/purchases", `{}`, "X-User-ID", "reader")
	if err := json.Unmarshal([]byte(b), &bought); code != http.StatusCreated || err != nil || bought.Order.ID == "" {
		t.Fatalf("a purchase on the node: %d %s (%v)", code, b, err)
	}
	var place struct{ Ticket string }
	code, b = send(t, http.MethodPost, direct+"/v1/sales/line/queue", `{}`, "X-User-ID", "waiter")
	if err := json.Unmarshal([]byte(b), &place); code != http.StatusCreated || err != nil || place.Ticket == "" {
		t.Fatalf("joining the line on the node: %d %s (%v)", code, b, err)
	}

	// The shipped edge, the vanished node listed first: with no
	// connection open to either, least_conn takes it first.
	gone := blackhole(t)
	edge, grpcEdge, confPath := shippedConf(t, dir, gone, node)
	logs := start(t, exec.Command(nginx, "-p", dir, "-c", confPath, "-g", "daemon off;"), filepath.Join(dir, "nginx.log"))
	waitListen(t, edge, logs)

	// Each request twice in a row: least_conn then takes each node once.
	// The node's own answer is wanted within 10 s (a connect timeout of
	// 2 s, then the other node), never the edge's 502 or 504.
	const within = 10 * time.Second
	via := "http://" + edge
	buyer := 0
	for _, r := range []struct {
		what, method, path, body string
		hdr                      []string
		want                     int
	}{
		{"a sale read", http.MethodGet, "/v1/sales/plain", "", nil, http.StatusOK},
		{"an order read", http.MethodGet, "/v1/orders/" + bought.Order.ID, "", admin, http.StatusOK},
		{"a place in the line", http.MethodGet, "/v1/sales/line/queue", "", []string{"Waiting-Room-Ticket", place.Ticket}, http.StatusOK},
		{"a purchase", http.MethodPost, "/v1/sales/plain/purchases", `{}`, nil, http.StatusCreated},
	} {
		for range 2 {
			hdr := r.hdr
			if r.method == http.MethodPost {
				buyer++
				hdr = []string{"X-User-ID", fmt.Sprintf("buyer-%d", buyer), "Idempotency-Key", fmt.Sprintf("key-%d", buyer)}
			}
			began := time.Now()
			code, b := send(t, r.method, via+r.path, r.body, hdr...)
			if took := time.Since(began); code != r.want || took > within {
				t.Errorf("%s (%s %s) through the edge, one node's host gone: %d %s after %v; want the other node's %d within %v",
					r.what, r.method, r.path, code, strings.TrimSpace(b), took.Round(100*time.Millisecond), r.want, within)
			}
		}
	}

	// The gRPC API over Connect (POSTs on port 80) and gRPC (port 8081):
	// a sale read, and a WatchSale stream (a location of its own on each
	// port), sent to the other node as they have reached none.
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	for _, c := range []struct {
		what   string
		client surgev1connect.SaleServiceClient
	}{
		{"Connect", surgev1connect.NewSaleServiceClient(http.DefaultClient, via)},
		{"gRPC", surgev1connect.NewSaleServiceClient(&http.Client{Transport: &http.Transport{Protocols: &p}}, "http://"+grpcEdge, connect.WithGRPC())},
	} {
		for _, call := range []struct {
			what string
			do   func(ctx context.Context) error
		}{
			{"GetSale", func(ctx context.Context) error {
				_, err := c.client.GetSale(ctx, connect.NewRequest(&surgev1.GetSaleRequest{Id: "plain"}))
				return err
			}},
			{"WatchSale", func(ctx context.Context) error {
				stream, err := c.client.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "plain"}))
				if err != nil {
					return err
				}
				defer stream.Close()
				if !stream.Receive() {
					return fmt.Errorf("no first message: %w", stream.Err())
				}
				return nil
			}},
		} {
			for range 2 {
				ctx, cancel := context.WithTimeout(context.Background(), within)
				began := time.Now()
				if err := call.do(ctx); err != nil {
					t.Errorf("%s over %s through the edge, one node's host gone: %v after %v; want the other node's answer within %v",
						call.what, c.what, err, time.Since(began).Round(100*time.Millisecond), within)
				}
				cancel()
			}
		}
	}
	if t.Failed() {
		t.Logf("nginx:\n%s", logs())
	}
}
