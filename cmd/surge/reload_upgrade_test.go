//go:build linux

package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadDuringUpgradeNotLost: an embedded server is upgraded
// (SIGUSR2) while a request holds the old process's drain, and the
// operator, who edited the config file, sends SIGHUP as systemd's
// `systemctl reload` does: to the main pid, still the old process until
// it exits. The old process had left its signal loop and dropped the
// SIGHUP without a word, and the new process ran the file as it read it
// before the edit: the new admin token was refused for good, and nothing
// in either log said that the reload had not happened. The new process
// must serve the file as it is once it serves, and the old one must say
// that it did not reload.
func TestReloadDuringUpgradeNotLost(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	const (
		oldToken = "reload-upgrade-old-admin-token"
		newToken = "reload-upgrade-new-admin-token"
	)
	dir := t.TempDir()
	path, pidFile := filepath.Join(dir, "surge.yaml"), filepath.Join(dir, "surge.pid")
	conf := func(token string) string {
		return fmt.Sprintf("data-dir: %s\nadmin-token: %s\npid-file: %s\nshutdown-timeout: 4s\n", filepath.Join(dir, "data"), token, pidFile)
	}
	replaceConfig(t, path, conf(oldToken))
	p := startConfigured(t, "--config", path)
	old := p.cmd.Process.Pid

	// A sale create whose body has not all arrived: the old process's
	// drain waits for it (up to --shutdown-timeout), and the new one for
	// the data directory meanwhile.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/sales HTTP/1.1\r\nHost: surge\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", oldToken)
	time.Sleep(200 * time.Millisecond) // the request reaches its handler

	upgradeUntilHandover(t, p, pidFile)
	replaceConfig(t, path, conf(newToken))
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	// The order export is the admin's: a sale that does not exist is
	// answered 404 to the admin token in force, 401 to any other.
	status := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, p.base+"/v1/sales/nosuch/orders", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The new process reloads as it starts to serve: the old token may
	// pass for a moment, as it does until any reload is applied.
	var servedOld time.Time
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if status(newToken) == http.StatusNotFound {
			break
		}
		if servedOld.IsZero() && status(oldToken) == http.StatusNotFound {
			servedOld = time.Now()
		}
		if !servedOld.IsZero() && time.Since(servedOld) > 2*time.Second {
			t.Fatalf("the new process serves with the admin token of the file as it was before the edit and the SIGHUP; the new token is answered %d", status(newToken))
		}
		if time.Now().After(deadline) {
			t.Fatal("the new process did not serve within 40 s of the upgrade")
		}
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the old process has not exited")
	}
	if log, _ := os.ReadFile(p.logPath); !strings.Contains(string(log), "SIGHUP while") {
		t.Errorf("the old process's log says nothing of the SIGHUP it did not apply:\n%s", p.logTail())
	}
}
