package main

import (
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeRefusedAsPIDOne: in a container surge serve is PID 1 of its
// PID namespace (the image's ENTRYPOINT), and when PID 1 exits the kernel
// kills every other process of the namespace. An upgrade (SIGUSR2, say
// `docker kill -s USR2`) started the new process, handed it the sockets
// and exited: the new process was killed with it, every connection cut,
// the service gone until the container was restarted, where the upgrade
// promises no request refused. As PID 1 the upgrade must be refused and
// the process serve on. Run as PID 1 of a new PID namespace (unshare).
func TestUpgradeRefusedAsPIDOne(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) not found")
	}
	if out, err := exec.Command(unshare, "--pid", "--fork", "true").CombinedOutput(); err != nil {
		t.Skipf("no new PID namespace here: %v %s", err, out)
	}
	bin := surgeBinary(t)
	dataDir, token := t.TempDir(), "pid-one-admin-token"
	p := startCmd(t, func(addr string) *exec.Cmd {
		serve := serveCmd(bin, dataDir, token, addr)
		// --kill-child: the test's end (SIGKILL to unshare) ends surge too.
		return exec.Command(unshare, append([]string{"--pid", "--fork", "--kill-child"}, serve.Args...)...)
	})
	// surge is unshare's one child, PID 1 inside.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task/" + strconv.Itoa(p.cmd.Process.Pid) + "/children")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("unshare's child: %q", b)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// An upgrade's handover takes 1–2 s here; the server must answer
	// throughout and after it.
	hc := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := hc.Get(p.base + "/readyz")
		if err != nil {
			t.Fatalf("after SIGUSR2 to surge as PID 1: %v; want it serving on (its exit would end its PID namespace, the new process with it)", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after SIGUSR2 to surge as PID 1: /readyz %d, want 200", resp.StatusCode)
		}
	}
	if !alive(pid) {
		t.Fatalf("surge (pid %d) exited after SIGUSR2 as PID 1", pid)
	}
	if log := p.logTail(); !strings.Contains(log, "upgrade refused: this process is PID 1") {
		t.Errorf("no refusal logged:\n%s", log)
	}
}
