package deploy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/deploy/internal/exampleconfig"
)

// TestExampleConfigBelievesItsEdge: the systemd unit's settings
// (deploy/surge.example.yaml) have the node listen on the loopback, so
// whatever fronts it (the edge of deploy/nginx, as docs/operations.md has
// it, or another reverse proxy) is on this host and connects from the
// loopback, sending each buyer's address in X-Forwarded-For. The node must
// believe it from there: otherwise every buyer of the drop is the edge's
// 127.0.0.1, and one rate-limit-ip bucket (20 a second, 40 at once) serves
// them all. A node run with the example, its paths and port moved into the
// test, takes a request each from 3 × rate-limit-ip-burst buyers through a
// loopback connection, as the edge forwards them: none may be refused.
func TestExampleConfigBelievesItsEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs surge")
	}
	dir := t.TempDir()
	example := read(t, "surge.example.yaml")
	setting := func(key string) string {
		m := regexp.MustCompile(`(?m)^` + key + `: (\S+)`).FindStringSubmatch(example)
		if m == nil {
			t.Fatalf("deploy/surge.example.yaml sets no %s", key)
		}
		return m[1]
	}
	addr := setting("http-addr")
	if host, _, _ := net.SplitHostPort(addr); !net.ParseIP(host).IsLoopback() {
		t.Skipf("the example listens on %s, not the loopback: this test's premise is gone", addr)
	}
	var burst int
	fmt.Sscan(setting("rate-limit-ip-burst"), &burst)
	if burst < 1 {
		t.Fatalf("rate-limit-ip-burst %q", setting("rate-limit-ip-burst"))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	cfgFile := exampleconfig.Localize(t, strings.Replace(example, "http-addr: "+addr, "http-addr: "+free, 1), dir, strings.Repeat("a", 32))
	bin := filepath.Join(dir, "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// As the unit runs it: --config, nothing else that is a setting.
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfgFile)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	logFile, err := os.Create(filepath.Join(dir, "surge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	base := "http://" + free
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("surge did not answer /healthz within a minute:\n%s", logs())
		}
	}

	// The edge's requests: one connection pool on the loopback, each
	// buyer's address in X-Forwarded-For, one request each.
	limited := 0
	for i := range 3 * burst {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/sales", nil)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i%250+1))
		if i >= 250 {
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i%250+1))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited > 0 {
		t.Errorf("a node run with deploy/surge.example.yaml refused %d of %d buyers' first request, each forwarded with the buyer's own address from the loopback "+
			"(as the edge on its host does): it does not believe X-Forwarded-For from there (trusted-proxies: %s), so every buyer counts as the edge's one address "+
			"(rate-limit-ip %s, burst %d)", limited, 3*burst, setting("trusted-proxies"), setting("rate-limit-ip"), burst)
	}
}

// TestSystemdStopTimeoutCoversDrain: `systemctl stop` sends SIGTERM and,
// after the unit's TimeoutStopSec, SIGKILL. A node run with the settings
// the unit reads (deploy/surge.example.yaml) drains for its drain-delay
// and then lets in-flight requests finish for up to its shutdown-timeout:
// the unit must wait for both, as the compose file's stop_grace_period
// and the chart's terminationGracePeriodSeconds do, or a stop kills the
// node mid-drain.
func TestSystemdStopTimeoutCoversDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	cfgFile := exampleconfig.Localize(t, read(t, "surge.example.yaml"), dir, strings.Repeat("a", 32))
	cmd := exec.Command("go", "run", "github.com/surgehq/surge/cmd/surge", "serve", "--config", cfgFile, "--print-config")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("surge serve --config (the example) --print-config: %v\n%s", err, out)
	}
	drain, inFlight := stopTimes(t, out)
	stop := 90 * time.Second // systemd's DefaultTimeoutStopSec
	if m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindStringSubmatch(read(t, filepath.Join("systemd", "surge.service"))); m != nil {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("TimeoutStopSec=%s: %v", m[1], err)
		}
		stop = d
	}
	if stop < drain+inFlight {
		t.Errorf("the unit gives surge %v between SIGTERM and SIGKILL (TimeoutStopSec), but with deploy/surge.example.yaml it drains for %v (drain-delay) "+
			"and then finishes in-flight requests for up to %v (shutdown-timeout): `systemctl stop` kills it mid-drain", stop, drain, inFlight)
	}
}
