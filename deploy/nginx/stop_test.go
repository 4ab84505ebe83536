package nginx_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEdgeStoppedWithItsWorkers: a test stops the nginx it started when
// it ends. Killing the master alone (SIGKILL, which it cannot pass on)
// left its workers running, adopted by init, each holding the test's
// listening sockets and upstream connections: every run of these tests
// added a handful of nginx processes that never ended (CI's machine is
// the session's). The edge's workers must be gone once a test is over.
func TestEdgeStoppedWithItsWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx")
	}
	nginx := nginxBinary(t)
	var worker int
	t.Run("edge", func(t *testing.T) {
		dir := edgeDir(t, "surge-edge-stop-")
		edge, _, confPath := shippedConf(t, dir, freeAddr(t), freeAddr(t))
		cmd := exec.Command(nginx, "-p", dir, "-c", confPath, "-g", "daemon off;")
		logs := start(t, cmd, filepath.Join(dir, "nginx.log"))
		waitListen(t, edge, logs)
		worker = nginxWorker(t, cmd.Process.Pid, logs).Pid
	})
	if worker == 0 {
		t.Fatal("no nginx worker")
	}
	// The subtest's cleanups have run.
	running := func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(worker) + "/cmdline")
		return err == nil && strings.HasPrefix(string(b), "nginx: worker process")
	}
	for deadline := time.Now().Add(10 * time.Second); running() && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if running() {
		_ = syscall.Kill(worker, syscall.SIGKILL)
		t.Errorf("nginx's worker %d still ran 10 s after the test that started the edge ended: killing the master alone leaves its workers behind", worker)
	}
}
