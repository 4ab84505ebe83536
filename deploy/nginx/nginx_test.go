// Package nginx_test runs the shipped edge config (nginx.conf) for real:
// Debian's nginx on loopback in front of two cluster-mode `surge serve`
// nodes on the real Redis and PostgreSQL, a spike through it with
// `surge bench` (whose verifier checks the sale), a client over its
// rate answered 429 by the edge, a quiet WatchSale stream, a large
// header and body, and a purchase a stalled node holds (never resent).
// scripts/services.sh installs nginx and
// starts Redis and PostgreSQL; without nginx the test skips on a
// developer's machine and fails under CI.
package nginx_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

const token = "edge-test-admin-token"

func TestEdge(t *testing.T) {
	e := startEdge(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, edge, logs, nginxLog := e.bin, e.addr, e.logs, e.nginxLog

	// A spike through the edge; bench verifies the sale from the export
	// (no oversell, every 201 present, per-buyer limits).
	out, err := exec.CommandContext(ctx, bin, "bench", "--server", "http://"+edge, "--admin-token", token,
		"--sale", "edge-drop", "--stock", "300", "--users", "1500", "--shape", "spike:1500:250ms:500ms:250ms",
		"--connections", "64", "--retry").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "VERDICT: PASS") {
		t.Fatalf("bench through the edge: %v\n%s\nnginx:\n%s", err, out, nginxLog())
	}
	t.Logf("bench through the edge:\n%s", out)
	// Both nodes took purchases.
	for id, l := range logs {
		if n := strings.Count(l(), "path=/v1/sales/edge-drop/purchases"); n == 0 {
			t.Errorf("node %s served no purchase: the edge did not balance", id)
		}
	}

	// A client from 127.0.0.2, over its rate: the edge answers 429 in
	// Surge's error shape with Retry-After, the nodes never see those; and
	// the nodes saw the client's own address (X-Forwarded-For), not the
	// one it wrote into its X-Forwarded-For.
	hc := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
	}).DialContext}}
	var ok, limited int
	for range 60 {
		req, err := http.NewRequest(http.MethodGet, "http://"+edge+"/v1/sales/edge-drop", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Its own X-Forwarded-For, a lie the nodes must not believe.
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if !strings.Contains(string(body), `"code":"rate_limited"`) || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("429 of the edge: %q, Retry-After %q", body, resp.Header.Get("Retry-After"))
			}
		default:
			t.Errorf("status %d: %s", resp.StatusCode, body)
		}
	}
	// 10/s with a burst of 20: about 21 pass in the first moments.
	if ok < 20 || limited < 20 {
		t.Errorf("60 requests at once from one address: %d answered, %d limited; want the burst through and the rest 429", ok, limited)
	}
	var seen int
	for _, l := range logs {
		seen += len(regexp.MustCompile(`path=/v1/sales/edge-drop status=200 .*client=127\.0\.0\.2`).FindAllString(l(), -1))
	}
	if seen != ok {
		t.Errorf("the nodes logged %d requests from 127.0.0.2 (X-Forwarded-For), the edge passed %d", seen, ok)
	}

	// A client's own X-Request-ID reaches the node, which keeps a sane
	// one (docs/observability.md) and answers it; one that sent none gets
	// the edge's.
	for _, sent := range []string{"client-chosen-0001", ""} {
		req, err := http.NewRequest(http.MethodGet, "http://"+edge+"/v1/sales/edge-drop", nil)
		if err != nil {
			t.Fatal(err)
		}
		if sent != "" {
			req.Header.Set("X-Request-ID", sent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("X-Request-ID")
		if sent != "" && got != sent || sent == "" && got == "" {
			t.Errorf("X-Request-ID %q sent through the edge: answered %q; want the client's own, or one of the edge's when it sent none", sent, got)
		}
	}
}

// edgeEnv is the shipped edge on loopback in front of two cluster nodes.
type edgeEnv struct {
	bin, addr string                   // surge binary, the edge's address
	grpcAddr  string                   // the edge's gRPC listener
	nodes     []string                 // the nodes' addresses
	logs      map[string]func() string // each node's log
	procs     map[string]*os.Process   // each node's process
	nginxLog  func() string
}

// startEdge builds surge, starts two cluster nodes and nginx with the
// shipped config; extra holds further replacements in nginx.conf.
func startEdge(t *testing.T, extra map[string]string) *edgeEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("runs nginx and two nodes")
	}
	nginx := nginxBinary(t)
	dir := edgeDir(t, "surge-edge-")
	bin := filepath.Join(dir, "surge")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := &edgeEnv{bin: bin, logs: map[string]func() string{}, procs: map[string]*os.Process{}}
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Two cluster nodes that believe the edge's X-Forwarded-For.
	ns := servicetest.Namespace(t)
	db, err := postgres.Open(ctx, servicetest.PostgresURL(), postgres.Options{Schema: ns})
	if err != nil {
		t.Fatalf("PostgreSQL (run scripts/services.sh): %v", err)
	}
	db.Close()
	var nodes []string
	logs := e.logs
	for _, id := range []string{"a", "b"} {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "serve", "--http-addr", addr, "--node-id", id,
			"--redis-url", servicetest.RedisURL(), "--postgres-url", servicetest.PostgresURL()+"&search_path="+ns,
			"--redis-prefix", ns, "--insecure-user-header", "--trusted-proxies", "127.0.0.1/32", "--access-log")
		cmd.Env = cleanEnv("SURGE_ADMIN_TOKEN=" + token)
		logs[id] = start(t, cmd, filepath.Join(dir, "node-"+id+".log"))
		e.procs[id] = cmd.Process
		waitHTTP(t, "node "+id, "http://"+addr+"/readyz", logs[id])
		nodes = append(nodes, addr)
	}

	// The shipped config, on loopback ports; 127.0.0.1 (the bench) exempt
	// from the per-address limit, as an operator exempts a load-test box.
	edge, grpcEdge, confPath := shippedConf(t, dir, nodes[0], nodes[1], map[string]string{
		"        default 0;\n": "        default 0;\n        127.0.0.1 1;\n",
	}, extra)
	e.nginxLog = start(t, exec.Command(nginx, "-p", dir, "-c", confPath, "-g", "daemon off;"), filepath.Join(dir, "nginx.log"))
	waitHTTP(t, "nginx", "http://"+edge+"/healthz", e.nginxLog)
	e.addr, e.grpcAddr, e.nodes = edge, grpcEdge, nodes
	return e
}

// shippedConf writes the shipped nginx.conf into dir as a test runs it:
// on free loopback ports (returned: the HTTP edge, the gRPC edge), its
// upstreams a and b, one worker, the pid file in dir, and every map of
// extra applied after. It returns the file's path too.
func shippedConf(t *testing.T, dir, a, b string, extra ...map[string]string) (edge, grpcEdge, path string) {
	t.Helper()
	edge, grpcEdge = freeAddr(t), freeAddr(t)
	repl := map[string]string{
		"listen 8081 http2;":     "listen " + grpcEdge + " http2;",
		"server surge-a:8080":    "server " + a,
		"server surge-b:8080":    "server " + b,
		"listen 80;":             "listen " + edge + ";",
		"pid /tmp/nginx.pid;":    "pid " + filepath.Join(dir, "nginx.pid") + ";",
		"worker_processes auto;": "worker_processes 1;",
	}
	for _, m := range extra {
		for from, to := range m {
			repl[from] = to
		}
	}
	path = filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(render(t, repl)), 0o644); err != nil {
		t.Fatal(err)
	}
	return edge, grpcEdge, path
}

// waitListen waits until addr accepts a connection: an edge started
// with no node to answer its /healthz.
func waitListen(t *testing.T, addr string, logs func() string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s:\n%s", addr, logs())
		}
	}
}

// render is nginx.conf with each key replaced by its value; every key
// must occur, exactly once but for a node's address (once per upstream)
// and the read timeout of ordinary requests (for keyed purchases too), so
// a change of the shipped file that this test no longer follows fails
// here.
func render(t *testing.T, repl map[string]string) string {
	t.Helper()
	b, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for from, to := range repl {
		want := 1
		if strings.HasPrefix(from, "server surge-") {
			want = 2 // the HTTP and the gRPC upstream
		}
		if from == "proxy_read_timeout 30s;" {
			want = 2 // location / and /.keyed/
		}
		if n := strings.Count(conf, from); n != want {
			t.Fatalf("nginx.conf holds %q %d times, want %d", from, n, want)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	return conf
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	msg := "nginx not found: install Debian's nginx-light (scripts/services.sh does)"
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// cleanEnv is the environment without the developer's SURGE_* settings,
// plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start starts cmd with its output in logPath, kills it when the test
// ends, and returns a function reading the log. It runs in a process
// group of its own, killed whole: nginx's workers, and a node's new
// process after an upgrade, outlive a master or old process killed alone.
func start(t *testing.T, cmd *exec.Cmd, logPath string) func() string {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			l := logs()
			if len(l) > 4<<10 {
				l = l[len(l)-4<<10:]
			}
			t.Logf("log of %s:\n%s", filepath.Base(logPath), l)
		}
	})
	return logs
}

// waitHTTP polls url until it answers 200, for up to a minute.
func waitHTTP(t *testing.T, what, url string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 at %s: %v\n%s", what, url, err, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEdgeWatchSale follows a sale with the gRPC API's WatchSale, over
// Connect on HTTP/1.1 through the edge. The stream is quiet while the sale
// does not change (no heartbeat), so it must neither be cut by the read
// timeout of the edge's ordinary requests (shortened here from 30 s to
// 2 s, so that the test need not wait 30 s), and a purchase then still
// reaches the watcher.
func TestEdgeWatchSale(t *testing.T) {
	e := startEdge(t, map[string]string{"proxy_read_timeout 30s;": "proxy_read_timeout 2s;"})
	edge := "http://" + e.addr
	post := func(path, body string, hdr ...string) {
		t.Helper()
		if code, b := send(t, http.MethodPost, edge+path, body, hdr...); code != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", path, code, b)
		}
	}
	post("/v1/sales", `{"id":"watched","name":"Watched","stock":10}`, "Authorization", "Bearer "+token)
	// Both nodes know the sale (a node learns of another's sale shortly).
	for _, n := range e.nodes {
		waitHTTP(t, "the sale on node "+n, "http://"+n+"/v1/sales/watched", func() string { return "" })
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, edge)
	stream, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "watched"}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := make(chan *surgev1.WatchSaleResponse)
	ended := make(chan error, 1)
	go func() {
		for stream.Receive() {
			select {
			case got <- stream.Msg():
			case <-ctx.Done():
				return
			}
		}
		ended <- stream.Err()
	}()
	opened := time.Now()
	select {
	case m := <-got:
		if m.Remaining != 10 {
			t.Fatalf("first message: remaining %d, want 10", m.Remaining)
		}
	case err := <-ended:
		t.Fatalf("WatchSale through the edge ended before its first message: %v", err)
	case <-ctx.Done():
		t.Fatal("no first message of WatchSale through the edge")
	}
	// Quiet for three times the edge's read timeout.
	select {
	case m := <-got:
		t.Fatalf("a message while the sale did not change: %v", m)
	case err := <-ended:
		t.Fatalf("WatchSale through the edge ended %v after it opened, while the sale did not change (the edge's read timeout): %v",
			time.Since(opened).Round(time.Second), err)
	case <-time.After(6 * time.Second):
	}
	post("/v1/sales/watched/purchases", `{"quantity":1}`, "X-User-ID", "watcher-buyer")
	bought := time.Now()
	select {
	case m := <-got:
		if m.Remaining != 9 {
			t.Fatalf("after a purchase: remaining %d, want 9", m.Remaining)
		}
	case err := <-ended:
		t.Fatalf("WatchSale through the edge ended instead of reporting the purchase: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the purchase did not reach WatchSale through the edge within 30 s")
	}
	t.Logf("a purchase reached the watcher through the edge after %v", time.Since(bought))
}

// TestEdgeRequestLimits sends through the edge what a node accepts: a
// request header line of 32 KiB (a buyer's JWT with many claims; a node
// takes headers up to 64 KiB) and a sale's body of 64 KiB (MaxSaleBody).
// The edge must pass both to a node rather than answer them itself; a
// body over its own bound it answers in Surge's error shape.
func TestEdgeRequestLimits(t *testing.T) {
	e := startEdge(t, nil)
	edge := "http://" + e.addr
	do := func(method, url, body string, hdr ...string) (int, string) {
		t.Helper()
		return send(t, method, url, body, hdr...)
	}

	// A body of exactly 64 KiB: the fields, then spaces.
	body := `{"id":"limits","name":"Limits","stock":5`
	body += strings.Repeat(" ", 64<<10-len(body)-1) + "}"
	if code, b := do(http.MethodPost, edge+"/v1/sales", body, "Authorization", "Bearer "+token); code != http.StatusCreated {
		t.Fatalf("a 64 KiB sale body through the edge: %d %s", code, b)
	}

	// Over every bound of a node (the largest, a payment webhook's, is
	// 256 KiB) and the edge's: the edge answers itself, in Surge's error
	// shape, as a node answers a body over its bound.
	code, b := do(http.MethodPost, edge+"/v1/sales", strings.Repeat(" ", 2<<20), "Authorization", "Bearer "+token)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(b, `"code":"too_large"`) {
		t.Errorf("a 2 MiB body through the edge: %d %q, want 413 too_large in Surge's error shape", code, b)
	}

	waitHTTP(t, "the sale on a node", "http://"+e.nodes[0]+"/v1/sales/limits", func() string { return "" })
	long := "Bearer " + strings.Repeat("a", 32<<10)
	direct, db := do(http.MethodGet, "http://"+e.nodes[0]+"/v1/sales/limits", "", "Authorization", long)
	if direct != http.StatusOK {
		t.Fatalf("a node answered a 32 KiB header with %d %s, want 200", direct, db)
	}
	if code, b := do(http.MethodGet, edge+"/v1/sales/limits", "", "Authorization", long); code != direct {
		t.Fatalf("a 32 KiB header through the edge: %d %q; the node itself answers it %d", code, b, direct)
	}
}

// TestEdgePurchaseNotResent: a purchase the edge sent to a node that then
// does not answer (stopped here with SIGSTOP) is answered 504 by the
// edge after its read timeout (shortened from 30 s to 2 s) and never sent
// to the other node as well: the stalled node may still take it, so a
// second node taking it too could sell twice (a purchase without an
// Idempotency-Key is not idempotent).
func TestEdgePurchaseNotResent(t *testing.T) {
	e := startEdge(t, map[string]string{"proxy_read_timeout 30s;": "proxy_read_timeout 2s;"})
	edge := "http://" + e.addr
	post := func(path, body string, hdr ...string) int {
		t.Helper()
		code, _ := send(t, http.MethodPost, edge+path, body, hdr...)
		return code
	}
	if code := post("/v1/sales", `{"id":"resend","name":"Resend","stock":100}`, "Authorization", "Bearer "+token); code != http.StatusCreated {
		t.Fatalf("create the sale: %d", code)
	}
	for _, n := range e.nodes {
		waitHTTP(t, "the sale on node "+n, "http://"+n+"/v1/sales/resend", func() string { return "" })
	}
	purchases := func() int {
		n := 0
		for _, l := range e.logs {
			n += strings.Count(l(), "method=POST path=/v1/sales/resend/purchases ")
		}
		return n
	}

	stopProc(t, e.procs["b"])
	stopped := true
	defer func() {
		if stopped {
			_ = e.procs["b"].Signal(syscall.SIGCONT)
		}
	}()
	// Purchases one after another until one went to the stopped node: the
	// edge logs that it timed out.
	sent := 0
	for {
		if sent == 20 {
			t.Fatalf("%d purchases, none sent to the stopped node", sent)
		}
		sent++
		timeouts := strings.Count(e.nginxLog(), "upstream timed out")
		code := post("/v1/sales/resend/purchases", `{"quantity":1}`, "X-User-ID", fmt.Sprintf("buyer-%d", sent))
		if strings.Count(e.nginxLog(), "upstream timed out") > timeouts {
			if code != http.StatusGatewayTimeout {
				t.Fatalf("a purchase a node did not answer in time was answered %d, want the edge's 504: the edge sent it to the other node too", code)
			}
			break
		}
		if code != http.StatusCreated {
			t.Fatalf("purchase %d through the edge: %d", sent, code)
		}
	}
	if err := e.procs["b"].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	// The stalled node takes its purchase once it runs again; the nodes
	// together saw each purchase once.
	deadline := time.Now().Add(time.Minute)
	for purchases() < sent && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := purchases(); n != sent {
		t.Fatalf("the edge sent %d purchases, the nodes saw %d", sent, n)
	}
}

// send sends a JSON request with the headers hdr (name, value, …) and
// returns its status and body.
func send(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// TestEdgeOwnErrorsInSurgeShape: what the edge answers itself when no node
// answers (a node too slow: 504; none reachable: 502) is an error in
// Surge's JSON shape with Retry-After, as a node's own 503 unavailable, so
// that a client reads one contract and knows when to come back, not
// nginx's HTML page without it.
func TestEdgeOwnErrorsInSurgeShape(t *testing.T) {
	e := startEdge(t, map[string]string{"proxy_read_timeout 30s;": "proxy_read_timeout 2s;"})
	edge := "http://" + e.addr
	for _, tc := range []struct {
		name  string
		nodes func(t *testing.T) // makes the nodes fail so
		paths []string
		want  int
	}{
		{"nodes too slow", func(t *testing.T) {
			for id, p := range e.procs {
				stopProc(t, p)
				t.Cleanup(func() { _ = e.procs[id].Signal(syscall.SIGCONT) })
			}
		}, []string{"/v1/sales/gone"}, http.StatusGatewayTimeout},
		{"nodes gone", func(t *testing.T) {
			for _, p := range e.procs {
				_ = p.Signal(syscall.SIGCONT)
				if err := p.Kill(); err != nil {
					t.Fatal(err)
				}
				_, _ = p.Wait()
			}
		}, []string{"/v1/sales/gone", "/v1/sales/gone/queue/events", "/surge.v1.SaleService/WatchSale"}, http.StatusBadGateway},
	} {
		tc.nodes(t)
		// The streams wait an hour for a slow node: only a request of the
		// 30 s timeout (2 s here) for the slow one.
		for _, path := range tc.paths {
			req, err := http.NewRequest(http.MethodGet, edge+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || resp.Header.Get("Content-Type") != "application/json" ||
				!strings.Contains(string(b), `{"error":{"code":"unavailable","message":"`) || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s, GET %s through the edge: %d, Content-Type %q, Retry-After %q, %q; want %d unavailable in Surge's error shape with Retry-After",
					tc.name, path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), b, tc.want)
			}
		}
	}
}

// TestEdgeNativeGRPC: a gRPC client (HTTP/2 with prior knowledge, which
// the edge's HTTP/1.1 listener cannot take) reaches the nodes through the
// edge's gRPC listener, from its own address: a purchase over gRPC is
// logged by the node with the client's address (X-Forwarded-For), so the
// nodes' per-address limits count the buyer, not the edge.
func TestEdgeNativeGRPC(t *testing.T) {
	e := startEdge(t, nil)
	edge := "http://" + e.addr
	if code, b := send(t, http.MethodPost, edge+"/v1/sales", `{"id":"grpc-drop","name":"gRPC","stock":5}`, "Authorization", "Bearer "+token); code != http.StatusCreated {
		t.Fatalf("create the sale: %d %s", code, b)
	}
	for _, n := range e.nodes {
		waitHTTP(t, "the sale on node "+n, "http://"+n+"/v1/sales/grpc-drop", func() string { return "" })
	}

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &p, DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
	}).DialContext}}
	c := surgev1connect.NewSaleServiceClient(h2c, "http://"+e.grpcAddr, connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := c.GetSale(ctx, connect.NewRequest(&surgev1.GetSaleRequest{Id: "grpc-drop"}))
	if err != nil {
		t.Fatalf("gRPC GetSale through the edge: %v\nnginx:\n%s", err, e.nginxLog())
	}
	if got.Msg.Sale.GetRemaining() != 5 {
		t.Fatalf("gRPC GetSale through the edge: remaining %d, want 5", got.Msg.Sale.GetRemaining())
	}
	req := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "grpc-drop", Quantity: 1, IdempotencyKey: "grpc-edge-1"})
	req.Header().Set("X-User-ID", "grpc-buyer")
	if _, err := c.Purchase(ctx, req); err != nil {
		t.Fatalf("gRPC Purchase through the edge: %v\nnginx:\n%s", err, e.nginxLog())
	}
	var seen int
	for _, l := range e.logs {
		seen += len(regexp.MustCompile(`path=/surge.v1.SaleService/Purchase .*client=127\.0\.0\.2`).FindAllString(l(), -1))
	}
	if seen != 1 {
		t.Errorf("the nodes logged %d gRPC purchases from 127.0.0.2 (X-Forwarded-For), want 1", seen)
	}
}

// stopProc stops p with SIGSTOP and waits until every thread of it is
// stopped: kill(2) returns once the signal is queued, and on a loaded
// machine a thread of the node answered a request through the edge after
// that (CI, 2026-12-07: 404 in 2 ms where the test wanted the edge's 504).
func stopProc(t *testing.T, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	tasks := fmt.Sprintf("/proc/%d/task", p.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		ids, err := os.ReadDir(tasks)
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, id := range ids {
			b, err := os.ReadFile(filepath.Join(tasks, id.Name(), "stat"))
			if err != nil {
				continue // the thread ended
			}
			// The state follows the command's closing parenthesis.
			if i := strings.LastIndexByte(string(b), ')'); i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				running++
			}
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d: %d threads still running 10 s after SIGSTOP", p.Pid, running)
		}
	}
}

// edgeDir is a directory of the test's, removed at its end, that nginx's
// workers (running as nobody) may enter: they keep their temporary files
// under the prefix.
func edgeDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
