package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestJSONLogsThroughRedisReconnect: the real binary in cluster mode with
// --log-format json loses Redis and gets it back; every line it wrote to
// stderr is JSON, go-redis's own complaints included.
func TestJSONLogsThroughRedisReconnect(t *testing.T) {
	px := servicetest.RedisProxy(t)
	args := clusterArgs(t)
	for i := range args {
		if args[i] == "--redis-url" {
			args[i+1] = "redis://" + px.Addr + "/0"
		}
	}
	addr := freeAddr(t)
	const token = "json-log-test-admin-token"
	cmd, stderr, exited := startLogged(t, append([]string{"serve", "--http-addr", addr, "--admin-token", token,
		"--insecure-user-header", "--log-format", "json", "--access-log"}, args...)...)
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

	px.Cut()
	for range 3 { // purchases and readiness probes meet a dead Redis
		post("/v1/sales/logs/purchases", `{}`, "X-User-ID", "b")
		time.Sleep(500 * time.Millisecond)
	}
	px.Restore()
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
	for _, rec := range jsonLines(t, b) {
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

// startLogged starts the real binary with args, its stderr kept in a
// file; exited closes when it ends, and the test's end kills it.
func startLogged(t *testing.T, args ...string) (cmd *exec.Cmd, stderr *os.File, exited <-chan struct{}) {
	t.Helper()
	stderr, err := os.CreateTemp(t.TempDir(), "stderr-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stderr.Close() })
	cmd = exec.Command(surgeBinary(t), args...)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, stderr, done
}

// jsonLines decodes every line of b (a stderr), failing the test for
// each that is not a JSON object.
func jsonLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %q", sc.Text())
			continue
		}
		recs = append(recs, rec)
	}
	return recs
}
