package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// tcpProxy forwards connections to a target until cut.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) restore(t *testing.T) {
	t.Helper()
	for range 100 {
		if ln, err := net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("proxy: cannot listen again on %s", p.addr)
}

// TestJSONLogsThroughRedisReconnect: the real binary in cluster mode with
// --log-format json loses Redis and gets it back; every line it wrote to
// stderr is JSON, go-redis's own complaints included.
func TestJSONLogsThroughRedisReconnect(t *testing.T) {
	px := newTCPProxy(t, strings.TrimSuffix(strings.TrimPrefix(servicetest.RedisURL(), "redis://"), "/0"))
	args := clusterArgs(t)
	for i := range args {
		if args[i] == "--redis-url" {
			args[i+1] = "redis://" + px.addr + "/0"
		}
	}
	addr := freeAddr(t)
	const token = "json-log-test-admin-token"
	stderr, err := os.CreateTemp(t.TempDir(), "stderr-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(surgeBinary(t), append([]string{"serve", "--http-addr", addr, "--admin-token", token,
		"--insecure-user-header", "--log-format", "json", "--access-log"}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	base := "http://" + addr
	ready := func(within time.Duration) bool {
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if resp, err := http.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return true
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false
	}
	if !ready(20 * time.Second) {
		t.Fatalf("not ready")
	}
	post := func(path, body string, h ...string) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	post("/v1/sales", `{"id":"logs","name":"Logs","stock":100}`, "Authorization", "Bearer "+token)
	post("/v1/sales/logs/purchases", `{}`, "X-User-ID", "a")

	px.cut()
	for range 3 { // purchases and readiness probes meet a dead Redis
		post("/v1/sales/logs/purchases", `{}`, "X-User-ID", "b")
		time.Sleep(500 * time.Millisecond)
	}
	px.restore(t)
	if !ready(20 * time.Second) {
		t.Fatalf("not ready again after Redis came back")
	}
	post("/v1/sales/logs/purchases", `{}`, "X-User-ID", "c")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}

	b, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	var goredis, access int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %q", sc.Text())
			continue
		}
		if rec["component"] == "go-redis" {
			goredis++
		}
		if rec["msg"] == "request" {
			access++
		}
	}
	if goredis == 0 || access == 0 {
		t.Errorf("go-redis lines %d, access lines %d: want both (stderr:\n%s)", goredis, access, b)
	}
}
