package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestGeneratedAdminTokenHandover: a token surge generated at start is
// handed to the new process of an upgrade, and only as long as no source
// names one: once the operator puts a token in the config file, a reload
// takes it (the generated one used to sit in the process's environment,
// which beats the file, so the file's token was ignored), and an upgrade
// after that serves the file's token too.
func TestGeneratedAdminTokenHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dir := t.TempDir()
	cfg, pidFile := filepath.Join(dir, "surge.yaml"), filepath.Join(dir, "surge.pid")
	replaceConfig(t, cfg, "insecure-user-header: true\nshutdown-timeout: 5s\n")
	p := startConfigured(t, "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--pid-file", pidFile)
	m := regexp.MustCompile(`admin token \(generated[^)]*\): ([0-9a-f]+)`).FindStringSubmatch(p.logTail())
	if m == nil {
		t.Fatalf("no generated admin token in the output:\n%s", p.logTail())
	}
	generated := m[1]
	cur := generation{pid: p.cmd.Process.Pid, exited: p.exited, state: func() *os.ProcessState { return p.cmd.ProcessState }}
	accepts := func(when, token string, want int) {
		t.Helper()
		if code, body := get(t, p.base+"/metrics", token); code != want {
			t.Errorf("%s: token %.8s…: %d %.200s, want %d", when, token, code, body, want)
		}
	}
	upgrade := func() {
		t.Helper()
		cur = upgradeReady(t, cur, pidFile, p.base)
	}
	accepts("at start", generated, http.StatusOK)
	upgrade()
	accepts("after an upgrade", generated, http.StatusOK)

	const fileToken = "file-admin-token-0123456789"
	replaceConfig(t, cfg, "insecure-user-header: true\nshutdown-timeout: 5s\nadmin-token: "+fileToken+"\n")
	if err := syscall.Kill(cur.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); p.logCount("config reloaded") < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no reload logged 20 s after SIGHUP")
		}
	}
	accepts("after the file named a token and a reload", fileToken, http.StatusOK)
	accepts("after the file named a token and a reload", generated, http.StatusUnauthorized)
	upgrade()
	accepts("after the next upgrade", fileToken, http.StatusOK)
	accepts("after the next upgrade", generated, http.StatusUnauthorized)
	if err := syscall.Kill(cur.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cur.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the last process %d did not exit after SIGTERM", cur.pid)
	}
}
