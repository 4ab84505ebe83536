package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadDroppedAdminTokenSaysItStays: an operator removes the admin
// token from the config file (to revoke a leaked one, say) and sends
// SIGHUP. A reload cannot make up a token (a start prints the one it
// generates), so the token in force stays; but the log said
// `config reloaded changed=[admin-token]`, as if the token had changed,
// and nothing said that the old one was still accepted. The reload must
// not report the token changed, and must warn, naming admin-token, that
// the token in force stays; on every reload while the file names none.
func TestReloadDroppedAdminTokenSaysItStays(t *testing.T) {
	const token = "reload-dropped-admin-token"
	dir := t.TempDir()
	path := filepath.Join(dir, "surge.yaml")
	base := fmt.Sprintf("data-dir: %s\n", filepath.Join(dir, "data"))
	replaceConfig(t, path, base+"admin-token: "+token+"\n")
	p := startConfigured(t, "--config", path)
	replaceConfig(t, path, base)
	const warn = "no setting names an admin token any more"
	for i := 1; i <= 2; i++ {
		reloaded := p.logCount(`msg="config reloaded"`)
		if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); p.logCount(`msg="config reloaded"`) == reloaded; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("reload %d not applied within 10 s:\n%s", i, p.logTail())
			}
		}
		var last string
		for _, l := range strings.Split(p.logTail(), "\n") {
			if strings.Contains(l, `msg="config reloaded"`) {
				last = l
			}
		}
		if strings.Contains(last, "admin-token") {
			t.Errorf("reload %d: %q; the admin token in force did not change, yet the reload reports it changed", i, last)
		}
		if n := p.logCount(warn); n != i {
			t.Errorf("reload %d: %d warnings %q in the log; want %d, naming admin-token:\n%s", i, n, warn, i, p.logTail())
		}
	}
	// The token in force is still the one the file named: an admin
	// request with it is served (404: no such sale), not refused (401).
	req, _ := http.NewRequest(http.MethodGet, p.base+"/v1/sales/nosuch/orders", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the admin token in force after the reloads: answered %d; want 404 (the token stays)", resp.StatusCode)
	}
}
