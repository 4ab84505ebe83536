package nginx_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEdgeResendsAKeyedPurchaseAClosingNodeNeverRead: the edge keeps idle
// connections to the nodes open (upstream keepalive), and a node closes
// its idle ones when it hands over to a new binary (SIGUSR2, the
// zero-downtime upgrade of docs/operations.md) or stops. A purchase nginx
// writes onto such a connection just as the node closes it reaches no
// handler, and nginx, which never resends a POST once written
// (TestEdgePurchaseNotResent), answered the buyer 502 during an upgrade
// meant to cost none, though a purchase with an Idempotency-Key is safe to
// send again (a Go client does so itself on a direct connection). The race
// is made certain here: nginx's worker is stopped while the buyer's
// purchase reaches it and the node closes the edge's idle connection, so
// on waking it writes the purchase onto the closed connection. A keyed
// purchase must be taken, once.
func TestEdgeResendsAKeyedPurchaseAClosingNodeNeverRead(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx and a node")
	}
	nginx := nginxBinary(t)
	dir := edgeDir(t, "surge-edge-keepalive-")
	bin := filepath.Join(dir, "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	node := freeAddr(t)
	pidFile := filepath.Join(dir, "surge.pid")
	cmd := exec.Command(bin, "serve", "--http-addr", node, "--data-dir", filepath.Join(dir, "data"),
		"--trusted-proxies", "127.0.0.1/32", "--insecure-user-header", "--pid-file", pidFile)
	cmd.Env = cleanEnv("SURGE_ADMIN_TOKEN=" + token)
	nodeLog := start(t, cmd, filepath.Join(dir, "node.log"))
	// The upgrade's new process is no child of the test: stop it too.
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != cmd.Process.Pid {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	waitHTTP(t, "the node", "http://"+node+"/readyz", nodeLog)
	if code, b := send(t, http.MethodPost, "http://"+node+"/v1/sales", `{"id":"kept","name":"Kept","stock":100}`, "Authorization", "Bearer "+token); code != http.StatusCreated {
		t.Fatalf("create the sale: %d %s", code, b)
	}

	// The node is both of the edge's upstream servers: the purchase's
	// next try, if any, reaches it again, on a new connection, which its
	// new process takes.
	edge, _, confPath := shippedConf(t, dir, node, node)
	nginxCmd := exec.Command(nginx, "-p", dir, "-c", confPath, "-g", "daemon off;")
	logs := start(t, nginxCmd, filepath.Join(dir, "nginx.log"))
	waitHTTP(t, "nginx", "http://"+edge+"/v1/sales/kept", logs)
	worker := nginxWorker(t, nginxCmd.Process.Pid, logs)

	// A buyer's keep-alive connection to the edge, its first request
	// answered: the edge now holds it, and one idle connection to the node.
	c, err := net.Dial("tcp", edge)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(req string) *http.Response {
		t.Helper()
		if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("the edge's answer: %v\nnginx:\n%s", err, logs())
		}
		resp.Body.Close()
		return resp
	}
	if resp := roundTrip("GET /v1/sales/kept HTTP/1.1\r\nHost: edge\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("a sale read through the edge: %d", resp.StatusCode)
	}
	// The test's own connections to the node closed, the rest are the edge's.
	http.DefaultClient.CloseIdleConnections()
	if n := len(tcpConns(t, node, tcpEstablished)); n != 1 {
		t.Fatalf("the edge holds %d connections to the node, want 1 (idle)", n)
	}

	stopProc(t, worker)
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(worker.Pid, syscall.SIGCONT)
		}
	}()
	body := `{"quantity":1}`
	purchase := "POST /v1/sales/kept/purchases HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n" +
		"X-User-ID: upgrade-buyer\r\nIdempotency-Key: upgrade-key-1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(purchase)); err != nil {
		t.Fatal(err)
	}
	// The purchase waits in the stopped worker's socket before the node
	// closes the idle connection, so the worker reads it first on waking.
	waitTCP(t, "the purchase queued at the edge", func() bool {
		for _, e := range tcpConns(t, c.LocalAddr().String(), tcpEstablished) {
			if e.local == c.RemoteAddr().String() && e.rxQueue > 0 {
				return true
			}
		}
		return false
	})
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitTCP(t, "the node closing the edge's idle connection", func() bool { return len(tcpConns(t, node, tcpCloseWait)) == 1 })
	if err := syscall.Kill(worker.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false

	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("the edge's answer to the purchase: %v\nnginx:\n%s", err, logs())
	}
	b := new(strings.Builder)
	_, _ = bufio.NewReader(resp.Body).WriteTo(b)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a keyed purchase the edge wrote onto a connection the upgrading node had closed: %d %s; want the node's 201: "+
			"the node never read it, and with its Idempotency-Key it is safe to send again\nnginx:\n%s", resp.StatusCode, strings.TrimSpace(b.String()), logs())
	}
	// Taken once: the sale has one unit fewer.
	waitHTTP(t, "the upgraded node", "http://"+node+"/readyz", nodeLog)
	var sale struct{ Remaining int }
	if code, sb := send(t, http.MethodGet, "http://"+node+"/v1/sales/kept", ""); code != http.StatusOK || json.Unmarshal([]byte(sb), &sale) != nil || sale.Remaining != 99 {
		t.Fatalf("the sale after one purchase: %d %s; want 99 remaining", code, sb)
	}
}

// nginxWorker is the (one) worker process of the nginx master pid.
func nginxWorker(t *testing.T, master int, logs func() string) *os.Process {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", master, master))
		for _, f := range strings.Fields(string(b)) {
			if cl, _ := os.ReadFile("/proc/" + f + "/cmdline"); strings.HasPrefix(string(cl), "nginx: worker process") {
				pid, _ := strconv.Atoi(f)
				p, err := os.FindProcess(pid)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
		}
	}
	t.Fatalf("no nginx worker process found:\n%s", logs())
	return nil
}

// TCP states of /proc/net/tcp.
const (
	tcpEstablished = "01"
	tcpCloseWait   = "08"
)

// tcpConn is a line of /proc/net/tcp.
type tcpConn struct {
	local, remote string
	rxQueue       int
}

// tcpConns are the IPv4 connections in state whose remote end is remote.
func tcpConns(t *testing.T, remote, state string) []tcpConn {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	var conns []tcpConn
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 5 || f[3] != state {
			continue
		}
		c := tcpConn{local: procAddr(t, f[1]), remote: procAddr(t, f[2])}
		if _, rx, ok := strings.Cut(f[4], ":"); ok {
			n, _ := strconv.ParseInt(rx, 16, 64)
			c.rxQueue = int(n)
		}
		if c.remote == remote {
			conns = append(conns, c)
		}
	}
	return conns
}

// procAddr reads an address of /proc/net/tcp: the IPv4 address's bytes in
// the host's order (little-endian here), then the port, in hex.
func procAddr(t *testing.T, s string) string {
	t.Helper()
	ip, port, _ := strings.Cut(s, ":")
	b, err := hex.DecodeString(ip)
	p, perr := strconv.ParseUint(port, 16, 16)
	if err != nil || perr != nil || len(b) != 4 {
		t.Fatalf("/proc/net/tcp address %q", s)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), uint16(p)).String()
}

// waitTCP waits up to a minute for cond (the upgrade's new process
// starts first).
func waitTCP(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within a minute", what)
		}
	}
}
