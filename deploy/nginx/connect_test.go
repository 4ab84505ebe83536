package nginx_test

import (
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// blackhole is a loopback address whose SYNs go unanswered, as a node
// whose host vanished: a socket listening with a backlog of 0, its queue
// filled and never accepted.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr // the queue is full: SYNs are dropped now
		}
		t.Cleanup(func() { c.Close() })
		if i > 16 {
			t.Skip("the kernel answers every SYN of a full listen queue here")
		}
	}
}

// TestEdgeQueueStreamSkipsAVanishedNode: a node whose host is gone
// answers no SYN. The edge's other locations give up connecting after
// 2 s; the waiting-room event streams must too, and open on the other
// node (a GET that changes nothing): with nginx's default connect timeout,
// 60 s, a buyer joining the line waited a minute for a stream the other
// node serves at once.
func TestEdgeQueueStreamSkipsAVanishedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx and a node")
	}
	nginx := nginxBinary(t)
	dir := edgeDir(t, "surge-edge-connect-")
	bin := filepath.Join(dir, "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	node := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--http-addr", node, "--data-dir", filepath.Join(dir, "data"), "--trusted-proxies", "127.0.0.1/32")
	cmd.Env = cleanEnv("SURGE_ADMIN_TOKEN=" + token)
	nodeLog := start(t, cmd, filepath.Join(dir, "node.log"))
	waitHTTP(t, "the node", "http://"+node+"/readyz", nodeLog)

	gone := blackhole(t)
	edge, _, confPath := shippedConf(t, dir, gone, node)
	logs := start(t, exec.Command(nginx, "-p", dir, "-c", confPath, "-g", "daemon off;"), filepath.Join(dir, "nginx.log"))
	waitListen(t, edge, logs)
	// Both nodes have no connection yet: least_conn takes the first
	// listed, the vanished one. Any answer of the node will do (no such
	// sale: 404); what counts is how long the edge tried the other.
	client := &http.Client{Timeout: 90 * time.Second}
	began := time.Now()
	resp, err := client.Get("http://" + edge + "/v1/sales/nosuch/queue/events")
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || took > 10*time.Second {
		t.Errorf("a waiting-room stream through the edge, one node vanished: %d after %v; want the other node's 404 within 10 s (the edge's other locations give up connecting after 2 s)\n%s",
			resp.StatusCode, took.Round(100*time.Millisecond), logs())
	}
}
