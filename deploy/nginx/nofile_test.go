package nginx_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEdgeWorkersMayOpenTheirConnections: an nginx worker holds a file
// for each of its connections, the buyers' and the nodes' alike, up to
// worker_connections. Debian's nginx.service sets no LimitNOFILE, so
// systemd starts it with a soft limit of 1024 open files (its
// DefaultLimitNOFILE=1024:524288), and a worker past it fails accept()
// with EMFILE: in a drop, the edge stops accepting buyers at about a
// quarter of the connections it was configured for. Started so, the shipped config's
// workers must be allowed worker_connections files.
func TestEdgeWorkersMayOpenTheirConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx")
	}
	nginx := nginxBinary(t)
	dir := edgeDir(t, "surge-edge-nofile-")
	edge, _, confPath := shippedConf(t, dir, freeAddr(t), freeAddr(t))
	b, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	m := regexp.MustCompile(`(?m)^\s*worker_connections (\d+);`).FindStringSubmatch(conf)
	if m == nil {
		t.Fatal("nginx.conf sets no worker_connections")
	}
	want, _ := strconv.Atoi(m[1])
	// As systemd starts Debian's nginx.service: soft 1024, hard 524288
	// (or the hard limit this test runs under, if lower).
	cmd := exec.Command("sh", "-c", `ulimit -Sn 1024 && exec "$0" -p "$1" -c "$2" -g 'daemon off;'`, nginx, dir, confPath)
	logs := start(t, cmd, filepath.Join(dir, "nginx.log"))
	// No node runs: the edge listening is enough.
	waitListen(t, edge, logs)

	var worker int
	for deadline := time.Now().Add(10 * time.Second); worker == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		for _, f := range strings.Fields(string(b)) {
			if st, _ := os.ReadFile("/proc/" + f + "/cmdline"); strings.HasPrefix(string(st), "nginx: worker process") {
				worker, _ = strconv.Atoi(f)
			}
		}
	}
	if worker == 0 {
		t.Fatalf("no nginx worker process found:\n%s", logs())
	}
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", worker))
	if err != nil {
		t.Fatal(err)
	}
	lm := regexp.MustCompile(`(?m)^Max open files\s+(\d+)\s+(\d+|unlimited)`).FindSubmatch(limits)
	if lm == nil {
		t.Fatalf("/proc/%d/limits has no open-file limit:\n%s", worker, limits)
	}
	soft, _ := strconv.Atoi(string(lm[1]))
	if soft < want {
		t.Errorf("nginx started as systemd starts Debian's nginx.service (open files: soft 1024): its worker may open %d files, "+
			"fewer than its worker_connections %d, so past about %d connections it stops accepting buyers (accept: too many open files)\nnginx's log:\n%s",
			soft, want, soft, logs())
	}
}
