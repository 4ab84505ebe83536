package main

import (
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// redisServer is a private redis-server a test can stop and start again
// on the same port.
type redisServer struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r := &redisServer{t: t, addr: freeAddr(t)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.t.TempDir())
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server (scripts/services.sh installs it): %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s does not accept connections: %v", r.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// readyz returns /readyz's status, 0 when nothing answers.
func readyz(base string) int {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls /readyz until it answers want.
func waitStatus(t *testing.T, base string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := readyz(base)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d, want %d within %v", got, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadinessFollowsRedis: a cluster node whose Redis stops says it is
// not ready (503) as its purchases fail, and ready again once Redis is
// back.
func TestReadinessFollowsRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	rs := startRedis(t)
	args := clusterArgs(t)
	for i := range args {
		if args[i] == "--redis-url" {
			args[i+1] = "redis://" + rs.addr + "/0"
		}
	}
	const token = "readiness-admin-token"
	p := startProc(t, t.TempDir(), token, args...)
	if got := readyz(p.base); got != http.StatusOK {
		t.Fatalf("/readyz with Redis up: %d", got)
	}
	saleID := createSale(t, p.base, token, 100, 1)

	rs.stop()
	waitStatus(t, p.base, http.StatusServiceUnavailable, 10*time.Second)
	if code := buyStatus(t, p.base, saleID, "alice"); code != http.StatusServiceUnavailable {
		t.Errorf("purchase while /readyz says 503: %d, want 503", code)
	}
	// Still alive: only readiness changed.
	if resp, err := http.Get(p.base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with Redis down: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	rs.start()
	waitStatus(t, p.base, http.StatusOK, 15*time.Second)
}

// buyStatus sends one purchase and returns its status.
func buyStatus(t *testing.T, base, saleID, user string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/"+saleID+"/purchases", nil)
	req.Header.Set("X-User-ID", user)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("purchase: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrainDelay: on SIGTERM /readyz turns 503 at once while the rest of
// the API still answers for --drain-delay; then the node stops cleanly.
func TestDrainDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const token = "drain-delay-admin-token"
	p := startProc(t, t.TempDir(), token, "--drain-delay", "3s")
	saleID := createSale(t, p.base, token, 100, 1)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Within the delay (3 s, well above what these requests take).
	waitStatus(t, p.base, http.StatusServiceUnavailable, time.Second)
	resp, err := http.Get(p.base + "/v1/sales")
	if err != nil {
		t.Fatalf("GET /v1/sales during the drain: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/sales during the drain: %d", resp.StatusCode)
	}
	if code := buyStatus(t, p.base, saleID, "alice"); code != http.StatusCreated {
		t.Errorf("purchase during the drain: %d, want 201", code)
	}
	select {
	case <-p.exited:
		t.Fatalf("exited during the drain delay: %v", p.cmd.ProcessState)
	default:
	}
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("exit after the drain: %v", p.cmd.ProcessState)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM")
	}
}
