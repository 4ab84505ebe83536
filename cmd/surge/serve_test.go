package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/internal/testtoken"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// get sends a GET with an optional bearer token and returns the status
// and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPrivateListenersNeedAdminToken: pprof and /debug/stats on
// --debug-addr and --admin-addr answer only the admin token, and the
// command line (which may hold secrets) is not served at all.
func TestPrivateListenersNeedAdminToken(t *testing.T) {
	const token = "private-listener-admin-token"
	debug, admin := freeAddr(t), freeAddr(t)
	srv := startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--jwt-secret", "a-jwt-secret-of-at-least-32-bytes!!", "--debug-addr", debug, "--admin-addr", admin, "--log-level", "error")
	for _, addr := range []string{debug, admin} {
		for _, tc := range []struct {
			path      string
			withToken int // status with the admin token
		}{
			{"/debug/pprof/", http.StatusOK},
			{"/debug/pprof/goroutine?debug=1", http.StatusOK},
			{"/debug/pprof/symbol", http.StatusOK},
			{"/debug/stats", http.StatusOK},
			{"/debug/pprof/cmdline", http.StatusNotFound},
		} {
			url := "http://" + addr + tc.path
			for _, bad := range []string{"", "wrong-token-wrong-token-wrong"} {
				if code, body := get(t, url, bad); code != http.StatusUnauthorized || strings.Contains(body, token) {
					t.Errorf("GET %s with token %q: %d %q, want 401", url, bad, code, body)
				}
			}
			code, body := get(t, url, token)
			if code != tc.withToken {
				t.Errorf("GET %s with the admin token: %d, want %d", url, code, tc.withToken)
			}
			if strings.Contains(body, token) {
				t.Errorf("GET %s with the admin token shows the token: %q", url, body)
			}
		}
	}
	// The public listener still has none of it.
	if code, _ := get(t, srv.base+"/debug/pprof/cmdline", token); code != http.StatusNotFound {
		t.Errorf("public /debug/pprof/cmdline: %d, want 404", code)
	}
}

// TestServeRefusesWeakSecrets: an admin token under 16 characters or a JWT
// secret under 32 bytes stops the start with a usage error (exit 2), from
// a flag, the environment or a file; a file's trailing newline is no part
// of its secret.
func TestServeRefusesWeakSecrets(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	shortToken := file("short-token", "fifteen-chars!!\n")
	shortJWT := file("short-jwt", strings.Repeat("j", 31)+"\n")
	goodToken := file("good-token", "sixteen-chars!!!\n")
	empty := file("empty", "\n")
	const goodJWT = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the one-line error
	}{
		{"short admin token", nil, []string{"--admin-token", "dev-admin"}, "--admin-token must be at least 16 characters"},
		{"15-character admin token", nil, []string{"--admin-token", "fifteen-chars!!"}, "--admin-token must be at least 16 characters"},
		{"short admin token from the environment", map[string]string{"SURGE_ADMIN_TOKEN": "short"}, nil, "--admin-token must be at least 16 characters"},
		{"short admin token file", nil, []string{"--admin-token-file", shortToken}, "--admin-token-file must hold at least 16 characters"},
		{"empty admin token file", nil, []string{"--admin-token-file", empty}, "--admin-token-file must hold at least 16 characters"},
		{"missing admin token file", nil, []string{"--admin-token-file", filepath.Join(dir, "none")}, "--admin-token-file"},
		{"token and token file", nil, []string{"--admin-token", "sixteen-chars!!!", "--admin-token-file", goodToken}, "not both"},
		{"short JWT secret", nil, []string{"--admin-token", "sixteen-chars!!!", "--jwt-secret", "secret"}, "--jwt-secret must be at least 32 bytes"},
		{"31-byte JWT secret", nil, []string{"--admin-token", "sixteen-chars!!!", "--jwt-secret", goodJWT[:31]}, "--jwt-secret must be at least 32 bytes"},
		{"short JWT secret file", nil, []string{"--admin-token", "sixteen-chars!!!", "--jwt-secret-file", shortJWT}, "--jwt-secret-file must hold at least 32 bytes"},
		{"secret and secret file", nil, []string{"--admin-token", "sixteen-chars!!!", "--jwt-secret", goodJWT, "--jwt-secret-file", shortJWT}, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--log-level", "error"}, tc.args...)
			code, stdout, stderr := runCLI(ctx, args...)
			if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
			}
			if strings.Contains(stdout, "surge serving") {
				t.Errorf("served despite the weak secret: %q", stdout)
			}
		})
	}
}

// TestServeSecretFiles: the admin token and the JWT secret read from files
// (a trailing newline dropped) are the ones the server uses.
func TestServeSecretFiles(t *testing.T) {
	dir := t.TempDir()
	const token = "admin-token-from-a-file"
	tokenFile := filepath.Join(dir, "token")
	jwtFile := filepath.Join(dir, "jwt")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jwtFile, []byte("0123456789abcdef0123456789abcdef\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token-file", tokenFile,
		"--jwt-secret-file", jwtFile, "--log-level", "error")
	if out := srv.stdout.String(); strings.Contains(out, "admin token") {
		t.Errorf("a token was generated despite --admin-token-file: %q", out)
	}
	if code, body := get(t, srv.base+"/v1/sales/none/orders", token); code != http.StatusNotFound {
		t.Errorf("admin request with the file's token: %d %q, want 404 sale_not_found", code, body)
	}
	// A buyer JWT signed with the file's secret, without its line end.
	jwtTok := testtoken.Buyer(t, []byte("0123456789abcdef0123456789abcdef"), "alice")
	if code, body := get(t, srv.base+"/v1/orders/none", jwtTok); code != http.StatusNotFound {
		t.Errorf("buyer request with a JWT of the file's secret: %d %q, want 404 order_not_found", code, body)
	}
}

// TestServeWarnsAsynchronousCommit: a cluster node whose PostgreSQL
// sessions run with synchronous_commit=off says so at start, since a 201
// then no longer means the order survives a crash of PostgreSQL.
func TestServeWarnsAsynchronousCommit(t *testing.T) {
	for _, tc := range []struct {
		setting string
		warn    bool
	}{
		{"off", true},
		{"local", false},
		{"on", false},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			args := clusterArgs(t)
			for i := range args {
				if args[i] == "--postgres-url" {
					args[i+1] += "&options=-c%20synchronous_commit%3D" + tc.setting
				}
			}
			srv := startServe(t, append(args, "--http-addr", "127.0.0.1:0", "--admin-token", "sync-commit-admin-token", "--log-level", "warn")...)
			warned := strings.Contains(srv.stderr.String(), "synchronous_commit")
			if warned != tc.warn {
				t.Errorf("synchronous_commit=%s: warned %v, want %v; log:\n%s", tc.setting, warned, tc.warn, srv.stderr)
			}
		})
	}
}

// TestConnectionFlood: a server with 256 file descriptors (its
// connection caps derived from that) is flooded with idle keep-alive
// connections from one address; another address is still served, and so
// is the flooding one's first connections.
func TestConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const flood = 400
	bin := surgeBinary(t)
	addr := freeAddr(t)
	logFile, err := os.CreateTemp(t.TempDir(), "serve-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// ulimit sets the soft and the hard limit, so Go cannot raise it.
	cmd := exec.Command("sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, bin, "serve", "--data-dir", t.TempDir(),
		"--http-addr", addr, "--admin-token", "flood-test-admin-token", "--insecure-user-header", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("log:\n%s", p.logTail())
		}
	})
	if err := p.waitReady(startWithin); err != nil {
		t.Fatal(err)
	}

	request := func(c net.Conn, path string) (int, error) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: surge\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for range flood {
		c := dial("127.0.0.2")
		if code, err := request(c, "/healthz"); err == nil && code == http.StatusOK {
			held = append(held, c)
		} else {
			c.Close()
		}
	}
	if len(held) == 0 || len(held) >= flood {
		t.Errorf("%d of %d flooding connections held open, want some but not all", len(held), flood)
	}
	for _, from := range []string{"127.0.0.3", "127.0.0.4"} {
		if code, err := request(dial(from), "/v1/sales"); err != nil || code != http.StatusOK {
			t.Errorf("client from %s during the flood: %d %v, want 200", from, code, err)
		}
	}
	for i, c := range held {
		if code, err := request(c, "/healthz"); err != nil || code != http.StatusOK {
			t.Errorf("held connection %d: %d %v", i, code, err)
			break
		}
	}
}

// TestConnLimitsDefaults: the flags win; zero derives the caps from the
// open-file limit.
func TestConnLimitsDefaults(t *testing.T) {
	nofile, ok := openFileLimit()
	if !ok {
		t.Fatal("no open-file limit")
	}
	derived := int(min(nofile/4*3, maxConnsCeiling))
	for _, tc := range []struct {
		name                 string
		maxConns, perIP      int
		wantMax, wantPerAddr int
	}{
		{"flags", 100, 7, 100, 7},
		{"per-address derived", 100, 0, 100, 25},
		{"per-address ceiling", 100_000, 0, 100_000, maxConnsPerIPCeiling},
		{"both derived", 0, 0, derived, max(1, min(derived/4, maxConnsPerIPCeiling))},
		{"tiny", 1, 0, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serveConfig{maxConns: tc.maxConns, maxConnsPerIP: tc.perIP}.connLimits(nil)
			if got.Max != tc.wantMax || got.PerAddr != tc.wantPerAddr {
				t.Errorf("caps %d/%d, want %d/%d", got.Max, got.PerAddr, tc.wantMax, tc.wantPerAddr)
			}
		})
	}
}

// TestSIGTERMAnswersRequestOnItsWay: a purchase whose request is on its
// way when SIGTERM arrives (its connection accepted, its first bytes
// read, the rest still arriving: any request the moment the server stops
// under load) must be answered, 201 or 503 with Retry-After, as
// docs/architecture.md's Shutdown says: "the HTTP server stops accepting
// connections and waits (up to --shutdown-timeout) for in-flight
// requests". net/http's Shutdown instead closes such a connection without
// an answer once the request has arrived (upgrade.go's handOver avoids
// Shutdown for that reason), and a client does not retry a request on a
// connection it had just opened: it sees EOF, not knowing whether it
// bought.
func TestSIGTERMAnswersRequestOnItsWay(t *testing.T) {
	if testing.Short() {
		t.Skip("shutdown test builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "sigterm-inflight-admin-token"
	p := startProc(t, dataDir, token) // --shutdown-timeout 10s
	saleID := createSale(t, p.base, token, 100, 1)

	conn := startPurchase(t, p.base, saleID)
	time.Sleep(200 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	// The rest of it.
	if _, err := conn.Write([]byte("Idempotency-Key: k1\r\nContent-Length: 0\r\n\r\n")); err != nil {
		t.Fatalf("finishing the request: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("purchase on its way at SIGTERM got no answer: %v\n%s", err, p.logTail())
	}
	resp.Body.Close()
	t.Logf("purchase on its way at SIGTERM: %d", resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusCreated:
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
	default:
		t.Errorf("purchase on its way at SIGTERM: %d (Retry-After %q); want 201, or 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("surge exited with %v after SIGTERM", p.cmd.ProcessState)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("surge did not exit after SIGTERM")
	}
}

// startPurchase opens a connection to base and sends a purchase's request
// line and first header only (buyer u1): a request the server is still
// reading, as from a slow client. The rest is the caller's to send.
func startPurchase(t *testing.T, base, saleID string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte("POST /v1/sales/" + saleID + "/purchases HTTP/1.1\r\nHost: surge\r\nX-User-ID: u1\r\n")); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestSIGTERMIdleH2ConnRequestOnItsWay: a gRPC/HTTP/2 client's channel
// (h2c on the API's listener) is idle between calls when SIGTERM comes,
// and its next call is on its way (its HEADERS frame partly read). The
// stop must either answer that call or tell the client it was never
// processed (GOAWAY naming a last stream below it, after which every
// HTTP/2 client retries it safely), as net/http's Shutdown does. Closing
// the connection without a word leaves the client not knowing whether
// it bought: a gRPC client sees UNAVAILABLE on a non-idempotent call.
func TestSIGTERMIdleH2ConnRequestOnItsWay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "sigterm-h2-admin-token"
	p := startProc(t, dataDir, token)
	saleID := createSale(t, p.base, token, 100, 1)

	conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(method, path string, extra ...string) []byte {
		hb.Reset()
		for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", "surge"}, {":path", path}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		for i := 0; i+1 < len(extra); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	// One call, answered: the connection is then idle, as a channel is
	// between calls.
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("GET", "/v1/sales/"+saleID), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for done := false; !done; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("first call: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			done = f.StreamID == 1 && f.StreamEnded()
		case *http2.DataFrame:
			done = f.StreamID == 1 && f.StreamEnded()
		}
	}
	time.Sleep(100 * time.Millisecond)

	// The next call on its way: its HEADERS frame all but its last byte.
	var frame bytes.Buffer
	fw := http2.NewFramer(&frame, nil)
	if err := fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndStream: true, EndHeaders: true,
		BlockFragment: block("POST", "/v1/sales/"+saleID+"/purchases", "x-user-id", "u1", "idempotency-key", "k1", "content-length", "0")}); err != nil {
		t.Fatal(err)
	}
	raw := frame.Bytes()
	if _, err := conn.Write(raw[:len(raw)-1]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := conn.Write(raw[len(raw)-1:]); err != nil {
		t.Logf("finishing the call: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(12 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no word on the call on its way: %v", err)
			}
			t.Fatalf("the call on its way at SIGTERM (stream 3) on an idle HTTP/2 connection: connection closed "+
				"with neither an answer nor a GOAWAY below it (%v): the client cannot know whether it bought", err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			if f.LastStreamID < 3 {
				t.Logf("GOAWAY last stream %d: the client retries the call", f.LastStreamID)
				return
			}
		case *http2.HeadersFrame:
			if f.StreamID == 3 {
				t.Logf("the call was answered")
				return
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 3 && f.ErrCode == http2.ErrCodeRefusedStream {
				return
			}
		}
	}
}

// TestAdminTokenMustBePresentable: an admin token with white space at its
// end (or a token file ending in two newlines, whose second newline stays
// in the token) was taken at start, yet no request can carry it: an HTTP
// server drops the spaces around a header value (RFC 9110 §5.5), and no
// header value holds a newline. Every admin call was then 401 with nothing
// saying why; the start must refuse such a token instead.
func TestAdminTokenMustBePresentable(t *testing.T) {
	const tok = "0123456789abcdef0123"
	// What the server sees of "Authorization: Bearer <tok> ".
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("Authorization") }))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+tok+" ")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if got != "Bearer "+tok {
		t.Fatalf("the server saw %q", got)
	}

	dir := t.TempDir()
	for name, setup := range map[string]func(c *serveConfig){
		"trailing space":             func(c *serveConfig) { c.adminToken = tok + " " },
		"trailing tab":               func(c *serveConfig) { c.adminToken = tok + "\t" },
		"leading and trailing":       func(c *serveConfig) { c.adminToken = " " + tok + " " },
		"file with two newlines":     func(c *serveConfig) { c.adminTokenFile = writeTokenFile(t, dir, "two", tok+"\n\n") },
		"file with a trailing space": func(c *serveConfig) { c.adminTokenFile = writeTokenFile(t, dir, "space", tok+" \n") },
	} {
		c := newServeConfig()
		setup(&c)
		if err := c.readSecrets(); err == nil {
			t.Errorf("%s: admin token %q accepted; no request can present it", name, c.adminToken)
		} else if !strings.Contains(err.Error(), "admin-token") {
			t.Errorf("%s: %v does not name the setting", name, err)
		}
	}
	c := newServeConfig()
	c.adminTokenFile = writeTokenFile(t, dir, "ok", tok+"\n")
	if err := c.readSecrets(); err != nil || c.adminToken != tok {
		t.Errorf("a file with one newline: %q %v", c.adminToken, err)
	}
}

func writeTokenFile(t *testing.T, dir, name, s string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
