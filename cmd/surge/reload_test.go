package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge/servicetest"
)

// startConfigured starts the real binary with args only (no flags of
// launch's, which would override the file) and waits until it is ready.
func startConfigured(t *testing.T, args ...string) *proc {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), "serve-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	addr := freeAddr(t)
	cmd := exec.Command(surgeBinary(t), append([]string{"serve", "--http-addr", addr}, args...)...)
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
			t.Logf("log of surge:\n%s", p.logTail())
		}
	})
	if err := p.waitReady(startWithin); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceConfig puts body in the config file at path, replacing it whole,
// as editors and config managers do.
func replaceConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// logCount is how many lines of p's log contain s.
func (p *proc) logCount(s string) int {
	b, _ := os.ReadFile(p.logPath)
	return bytes.Count(b, []byte(s))
}

// waitLog waits until p's log has n lines containing s.
func (p *proc) waitLog(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for p.logCount(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the log has %d lines with %q, want %d", p.logCount(s), s, n)
		}
		select {
		case <-p.exited:
			t.Fatalf("surge exited (%v)", p.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hup sends SIGHUP to p.
func (p *proc) hup(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// reloadLoad is a load of purchases (each by a new buyer) and sale reads.
type reloadLoad struct {
	ok, transport atomic.Int64
	maxLatency    atomic.Int64 // nanoseconds
	mu            sync.Mutex
	failures      []string
}

func (l *reloadLoad) run(ctx context.Context, base, saleID string, worker int) {
	hc := &http.Client{Timeout: 30 * time.Second}
	for i := 0; ctx.Err() == nil; i++ {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/"+saleID+"/purchases", strings.NewReader(`{"quantity":1}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-ID", fmt.Sprintf("w%d-%d", worker, i))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("k%d-%d", worker, i))
		l.do(hc, req, http.StatusCreated)
		req, _ = http.NewRequest(http.MethodGet, base+"/v1/sales/"+saleID, nil)
		l.do(hc, req, http.StatusOK)
	}
}

func (l *reloadLoad) do(hc *http.Client, req *http.Request, want int) {
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		l.transport.Add(1)
		l.fail(fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := int64(time.Since(start))
	for m := l.maxLatency.Load(); d > m && !l.maxLatency.CompareAndSwap(m, d); m = l.maxLatency.Load() {
	}
	if resp.StatusCode != want {
		l.fail(fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body))
		return
	}
	l.ok.Add(1)
}

func (l *reloadLoad) fail(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, s)
	}
}

// TestReloadUnderLoad: the real binary reloads its file on SIGHUP, again
// and again under a load of purchases, and no request fails or is
// refused meanwhile; then the new values take effect (the old admin token
// is refused and the new one accepted, the log turns to JSON, a per-address
// rate limit starts answering 429), a changed batch size is logged as
// needing a restart, and a broken file is refused whole with the
// running configuration still in force.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	write := func(body string) { replaceConfig(t, cfg, body) }
	const tokenA, tokenB, tokenC = "reload-test-admin-token-A", "reload-test-admin-token-B", "reload-test-admin-token-C"
	base := "insecure-user-header: true\nshutdown-timeout: 10s\nrate-limit-buyer: 0\n"
	write(base + "admin-token: " + tokenA + "\n")
	p := startConfigured(t, "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	saleID := createSale(t, p.base, tokenA, 1_000_000, 1)

	var load reloadLoad
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { load.run(ctx, p.base, saleID, w) })
	}
	// Reloads that change what the load does not depend on: log level and
	// format, the access log, the buyer and sale limits (high), shedding.
	variants := []string{
		"log-level: debug\naccess-log: true\nrate-limit-buyer: 1000\n",
		"log-format: json\nshed: false\nrate-limit-sale: 100000\n",
		"log-level: info\nwaiting-room-streams: 10\ntrusted-proxies: [10.0.0.0/8]\n",
		"log-format: text\nshed: true\ndrain-delay: 1s\n",
	}
	const reloads = 8
	for i := range reloads {
		time.Sleep(150 * time.Millisecond)
		write(strings.Replace(base, "rate-limit-buyer: 0\n", "", 1) + "admin-token: " + tokenA + "\n" + variants[i%len(variants)])
		p.hup(t)
		p.waitLog(t, "config reloaded", i+1)
	}
	time.Sleep(150 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%d reloads under load: %d requests answered as expected, longest %v", reloads, load.ok.Load(), time.Duration(load.maxLatency.Load()))
	if len(load.failures) > 0 || load.transport.Load() > 0 {
		t.Fatalf("requests failed during the reloads (%d transport errors): %q", load.transport.Load(), load.failures)
	}
	if load.ok.Load() == 0 {
		t.Fatal("the load got no answer")
	}

	// A new admin token, the log in JSON, and a batch size that needs a
	// restart (the listen address would too, but the command line sets
	// it, which the file does not override).
	write(base + "admin-token: " + tokenB + "\nlog-format: json\nmax-batch: 64\n")
	p.hup(t)
	p.waitLog(t, "config reloaded", reloads+1)
	if code, body := get(t, p.base+"/v1/sales/"+saleID+"/orders", tokenA); code != http.StatusUnauthorized {
		t.Errorf("the old admin token after the reload: %d %s, want 401", code, body)
	}
	if code, body := get(t, p.base+"/v1/sales/"+saleID+"/orders", tokenB); code != http.StatusOK {
		t.Errorf("the new admin token after the reload: %d %s, want 200", code, body)
	}
	ignored := p.logLine(t, "needs a restart")
	var rec map[string]any
	if err := json.Unmarshal([]byte(ignored), &rec); err != nil || rec["key"] != "max-batch" {
		t.Errorf("the restart-only change is logged as %q (%v), want a JSON line with key max-batch", ignored, err)
	}

	// A broken file: refused whole, token B still in force, counted.
	write(base + "admin-token: " + tokenC + "\nrate-limt-ip: 1\n")
	p.hup(t)
	p.waitLog(t, "config reload refused", 1)
	if refused := p.logLine(t, "config reload refused"); !strings.Contains(refused, "rate-limt-ip") {
		t.Errorf("the refusal does not name the key: %q", refused)
	}
	if code, _ := get(t, p.base+"/v1/sales/"+saleID+"/orders", tokenC); code != http.StatusUnauthorized {
		t.Errorf("the refused file's admin token: %d, want 401", code)
	}
	code, metrics := get(t, p.base+"/metrics", tokenB)
	if code != http.StatusOK || !strings.Contains(metrics, `surge_config_reloads_total{result="error"} 1`) ||
		!strings.Contains(metrics, fmt.Sprintf(`surge_config_reloads_total{result="ok"} %d`, reloads+1)) {
		t.Errorf("metrics after one refused reload and %d applied: %d\n%s", reloads+1, code, grepLines(metrics, "surge_config_"))
	}

	// A per-address rate limit: from here on, quick requests get 429.
	write(base + "admin-token: " + tokenB + "\nrate-limit-ip: 1\nrate-limit-ip-burst: 2\n")
	p.hup(t)
	p.waitLog(t, "config reloaded", reloads+2)
	limited := 0
	for range 6 {
		if code, _ := get(t, p.base+"/v1/sales/"+saleID, ""); code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("6 quick requests after rate-limit-ip: 1 (burst 2): none answered 429")
	}
	if st := p.stop(t, syscall.SIGTERM, 30*time.Second); !st.Success() {
		t.Errorf("exit after SIGTERM: %v", st)
	}
}

// logLine returns the last line of p's log containing s.
func (p *proc) logLine(t *testing.T, s string) string {
	t.Helper()
	b, _ := os.ReadFile(p.logPath)
	last := ""
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, s) {
			last = strings.TrimSpace(line)
		}
	}
	if last == "" {
		t.Fatalf("no line of the log says %q", s)
	}
	return last
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestSIGHUPWithoutConfig: without a file SIGHUP says there is nothing to
// reload and the server goes on (it used to end the process).
func TestSIGHUPWithoutConfig(t *testing.T) {
	p := startProc(t, t.TempDir(), "sighup-test-admin-token")
	p.hup(t)
	p.waitLog(t, "no config file; nothing to reload", 1)
	if err := p.waitReady(startWithin); err != nil {
		t.Fatal(err)
	}
	if st := p.stop(t, syscall.SIGTERM, 30*time.Second); !st.Success() {
		t.Errorf("exit after SIGTERM: %v", st)
	}
}

// TestLogSwitch: a switch changes the level and the format of a logger
// and of the loggers derived from it, with their attributes and groups.
func TestLogSwitch(t *testing.T) {
	var buf servicetest.Log
	log, sw, err := newLogger(&buf, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	derived := log.With("node", "n1").WithGroup("g")
	derived.Debug("hidden")
	derived.Info("as text", "k", 1)
	sw.set("debug", "json")
	derived.Debug("as json", "k", 2)
	sw.set("error", "json")
	derived.Warn("hidden too")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q, want 2", lines)
	}
	if !strings.Contains(lines[0], "msg=\"as text\" node=n1 g.k=1") {
		t.Errorf("text line %q", lines[0])
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec["node"] != "n1" || rec["level"] != slog.LevelDebug.String() {
		t.Errorf("json line %q: %v", lines[1], err)
	}
}

// TestReloadBuyerKeys: SIGHUP's reload re-reads the JWKS file and the JWT
// secret file even when their paths did not change, and applies a new
// issuer: a token of a withdrawn key or secret is refused from then on, a
// token of the new one accepted. A JWKS file that no longer parses is
// refused and the keys in force stay.
func TestReloadBuyerKeys(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	secretFile := filepath.Join(dir, "jwt-secret")
	cfg := filepath.Join(dir, "surge.yaml")
	put := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keyA, keyB := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	jwkOf := func(kid string, k ed25519.PrivateKey) string {
		return fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":%q,"x":%q}]}`, kid,
			base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey)))
	}
	const secretA, secretB = "jwt-secret-A-of-at-least-32-bytes-long", "jwt-secret-B-of-at-least-32-bytes-long"
	put(jwks, jwkOf("a", keyA))
	put(secretFile, secretA+"\n")
	put(cfg, "jwks-file: "+jwks+"\njwt-secret-file: "+secretFile+"\njwt-issuer: issuer-1\n")
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--admin-token", "buyer-keys-admin-token"}

	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)
	saleID := createSale(t, srv.url(), "buyer-keys-admin-token", 1000, 1000)

	sign := func(method jwt.SigningMethod, kid string, key any, iss string) string {
		tok := jwt.NewWithClaims(method, jwt.MapClaims{"sub": "alice", "iss": iss, "exp": time.Now().Add(time.Hour).Unix()})
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	n := 0
	buy := func(tok string) int {
		n++
		req, _ := http.NewRequest(http.MethodPost, srv.url()+"/v1/sales/"+saleID+"/purchases", strings.NewReader(`{"quantity":1}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", fmt.Sprintf("key-%d", n))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	check := func(when string, cases map[string]struct {
		tok  string
		want int
	}) {
		t.Helper()
		for name, c := range cases {
			if got := buy(c.tok); got != c.want {
				t.Errorf("%s: token %s: %d, want %d", when, name, got, c.want)
			}
		}
	}
	type tc = struct {
		tok  string
		want int
	}
	check("at start", map[string]tc{
		"ed25519 A":    {sign(jwt.SigningMethodEdDSA, "a", keyA, "issuer-1"), http.StatusCreated},
		"ed25519 B":    {sign(jwt.SigningMethodEdDSA, "b", keyB, "issuer-1"), http.StatusUnauthorized},
		"HS256 A":      {sign(jwt.SigningMethodHS256, "", []byte(secretA), "issuer-1"), http.StatusCreated},
		"other issuer": {sign(jwt.SigningMethodHS256, "", []byte(secretA), "issuer-2"), http.StatusUnauthorized},
	})

	// Same paths, new contents, and a new issuer.
	put(jwks, jwkOf("b", keyB))
	put(secretFile, secretB+"\n")
	put(cfg, "jwks-file: "+jwks+"\njwt-secret-file: "+secretFile+"\njwt-issuer: issuer-2\n")
	srv.reload(args)
	check("after the reload", map[string]tc{
		"ed25519 A":  {sign(jwt.SigningMethodEdDSA, "a", keyA, "issuer-2"), http.StatusUnauthorized},
		"ed25519 B":  {sign(jwt.SigningMethodEdDSA, "b", keyB, "issuer-2"), http.StatusCreated},
		"HS256 A":    {sign(jwt.SigningMethodHS256, "", []byte(secretA), "issuer-2"), http.StatusUnauthorized},
		"HS256 B":    {sign(jwt.SigningMethodHS256, "", []byte(secretB), "issuer-2"), http.StatusCreated},
		"old issuer": {sign(jwt.SigningMethodHS256, "", []byte(secretB), "issuer-1"), http.StatusUnauthorized},
	})

	// A JWKS file that does not parse: refused, key B stays.
	put(jwks, `{"keys":[{"kty":"OKP"`)
	srv.reload(args)
	if !strings.Contains(logBuf.String(), "config reload refused") {
		t.Errorf("a broken JWKS file is not refused:\n%s", logBuf.String())
	}
	check("after a refused reload", map[string]tc{
		"ed25519 B": {sign(jwt.SigningMethodEdDSA, "b", keyB, "issuer-2"), http.StatusCreated},
	})
}

// TestReloadKeepsJWKSURL: a reload keeps the --jwks-url set (the URL
// needs a restart) and fetches it again, so a key the issuer just added
// is accepted at once.
func TestReloadKeepsJWKSURL(t *testing.T) {
	k1, k2 := p256Key(t), p256Key(t)
	var doc atomic.Pointer[string]
	set := func(kid string, k *ecdsa.PrivateKey) {
		pub, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		enc := base64.RawURLEncoding
		d := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":%q,"use":"sig","alg":"ES256","x":%q,"y":%q}]}`,
			kid, enc.EncodeToString(pub[1:33]), enc.EncodeToString(pub[33:]))
		doc.Store(&d)
	}
	set("k1", k1)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, *doc.Load()) }))
	defer keys.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	if err := os.WriteFile(cfg, []byte("jwks-url: "+keys.URL+"\njwks-refresh: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--admin-token", "jwks-url-admin-token"}
	l, err := loadServeConfig(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log, logs, err := newLogger(io.Discard, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(t.Context(), l.c, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.logs = logs
	t.Cleanup(func() { _ = srv.shutdown(10 * time.Second) })
	token := func(kid string, k *ecdsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// A buyer reading an order that does not exist: 404 once authenticated.
	if code, body := get(t, srv.url()+"/v1/orders/none", token("k1", k1)); code != http.StatusNotFound {
		t.Fatalf("k1 at start: %d %s", code, body)
	}
	srv.reload(args)
	if code, body := get(t, srv.url()+"/v1/orders/none", token("k1", k1)); code != http.StatusNotFound {
		t.Errorf("k1 after a reload: %d %s, want the fetched set kept", code, body)
	}
	set("k2", k2) // k2 replaces k1 at the issuer, under the same kid space
	srv.reload(args)
	// The reload fetches the set in the background (refreshRemote).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		code, body := get(t, srv.url()+"/v1/orders/none", token("k1", k1))
		if code == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("k1 after the issuer withdrew it and a reload: %d %s, want 401", code, body)
		}
	}
	if code, body := get(t, srv.url()+"/v1/orders/none", token("k2", k2)); code != http.StatusNotFound {
		t.Errorf("k2 after a reload: %d %s", code, body)
	}
}

func p256Key(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestReloadOnInsecureUserHeaderWarns: docs/api.md says X-User-ID is
// accepted only with --insecure-user-header, and that the server "logs a
// warning: anyone can claim any id". A reload that turns it on (it is a
// live setting) must warn as a start with it does.
func TestReloadOnInsecureUserHeaderWarns(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("jwt-secret: reload-insecure-jwt-secret-of-32-bytes!!\n")
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--admin-token", "reload-insecure-admin-token"}
	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)

	write("jwt-secret: reload-insecure-jwt-secret-of-32-bytes!!\ninsecure-user-header: true\n")
	srv.reload(args)
	if !strings.Contains(logBuf.String(), "config reloaded") {
		t.Fatalf("the reload was not applied:\n%s", logBuf.String())
	}
	// The reload took: anyone now buys as anyone.
	req, _ := http.NewRequest(http.MethodGet, srv.url()+"/v1/orders/nonexistent-order", nil)
	req.Header.Set("X-User-ID", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("X-User-ID after the reload: %d, want 404 (accepted as a buyer)", resp.StatusCode)
	}
	if !strings.Contains(logBuf.String(), "insecure-user-header is on") {
		t.Errorf("insecure-user-header turned on by SIGHUP, X-User-ID now trusted, but no warning was logged:\n%s", logBuf.String())
	}
}

// startReloadable starts the node of the config file cfg in this process
// (so that reload can be called), with the log in logBuf.
func startReloadable(t *testing.T, args []string, logBuf *servicetest.Log) *server {
	t.Helper()
	l, err := loadServeConfig(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log, logs, err := newLogger(logBuf, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(context.Background(), l.c, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.logs = logs
	srv.loaded = &l.c // as serve does
	t.Cleanup(func() { _ = srv.shutdown(10 * time.Second) })
	return srv
}

// buyerStatus is the status of a buyer's read of an order that does not
// exist: 404 when tok identifies a buyer, 401 when it is refused.
func buyerStatus(t *testing.T, base, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/orders/no-such-order", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func edJWKS(kid string, k ed25519.PrivateKey) string {
	return fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":%q,"x":%q}]}`, kid,
		base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey)))
}

func edToken(t *testing.T, kid string, k ed25519.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReloadJWKSFileToURLKeepsBuyerKeys: an operator moves the buyers' keys
// from a JWKS file to the identity provider's URL (the same keys) and
// sends SIGHUP. jwks-url needs a restart, so docs/configuration.md says
// the reload logs it as ignored "and keeps running with its old value":
// the keys in force must stay. Instead the reload applies the file's
// removal (jwks-file is live) and ignores the URL, so the node is left
// with no buyer key at all and every buyer is refused 401 until a restart.
func TestReloadJWKSFileToURLKeepsBuyerKeys(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	doc := edJWKS("k1", key)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, doc) }))
	defer keys.Close()
	dir := t.TempDir()
	jwksFile, cfg := filepath.Join(dir, "jwks.json"), filepath.Join(dir, "surge.yaml")
	for path, body := range map[string]string{jwksFile: doc, cfg: "jwks-file: " + jwksFile + "\n"} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--admin-token", "jwks-move-admin-token"}
	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)
	tok := edToken(t, "k1", key)
	if got := buyerStatus(t, srv.url(), tok); got != http.StatusNotFound {
		t.Fatalf("before the reload: %d, want 404 (a buyer)", got)
	}
	if err := os.WriteFile(cfg, []byte("jwks-url: "+keys.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.reload(args)
	if got := buyerStatus(t, srv.url(), tok); got != http.StatusNotFound {
		t.Errorf("after a reload that moved the keys to jwks-url (needs a restart): the same buyer token answers %d, want 404; every buyer is locked out\n%s", got, logBuf.String())
	}
}

// TestReloadJWKSURLToFileNotSilentlyIgnored: the other way round, a node
// started with jwks-url whose file now names a jwks-file. A start refuses
// both together ("give --jwks-url or --jwks-file, not both"), and
// docs/configuration.md says the reload checks the file as a start does
// and logs "config reloaded" with the live keys that changed. The reload
// is accepted and logs jwks-file as changed (applied), yet the file's keys
// verify nothing: the running jwks-url set silently takes precedence.
func TestReloadJWKSURLToFileNotSilentlyIgnored(t *testing.T) {
	urlKey, fileKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	urlDoc := edJWKS("u1", urlKey)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, urlDoc) }))
	defer keys.Close()
	dir := t.TempDir()
	jwksFile, cfg := filepath.Join(dir, "jwks.json"), filepath.Join(dir, "surge.yaml")
	for path, body := range map[string]string{jwksFile: edJWKS("f1", fileKey), cfg: "jwks-url: " + keys.URL + "\n"} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--admin-token", "jwks-move-admin-token"}
	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)
	if err := os.WriteFile(cfg, []byte("jwks-file: "+jwksFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.reload(args)
	applied := regexp.MustCompile(`config reloaded.*changed=\[[^\]]*jwks-file`).MatchString(logBuf.String())
	fileTok := edToken(t, "f1", fileKey)
	if got := buyerStatus(t, srv.url(), fileTok); applied && got != http.StatusNotFound {
		t.Errorf("the reload was accepted with jwks-file logged as changed, but a token of the file's key answers %d (want 404, or the reload refused)\n%s", got, logBuf.String())
	}
	// Whatever the outcome, the keys in force still verify.
	if got := buyerStatus(t, srv.url(), edToken(t, "u1", urlKey)); got != http.StatusNotFound {
		t.Errorf("a token of the jwks-url key in force: %d, want 404", got)
	}
}
