package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestReconcileAndProbeReadTheConfigFile: a server run as the shipped
// systemd unit runs it keeps its settings in /etc/surge/surge.yaml, and
// names its data directory and listen address nowhere else. surge
// reconcile read ./surge-data and surge probe 127.0.0.1:8080 whatever the
// file said: neither had --config. Both take --config (or SURGE_CONFIG) as
// serve and backup do, in serve's order: the command line, then SURGE_*,
// then the file.
func TestReconcileAndProbeReadTheConfigFile(t *testing.T) {
	tmp := t.TempDir()
	writeConfig := func(name, text string) string {
		t.Helper()
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("reconcile", func(t *testing.T) {
		dataDir := newDataDir(t)
		cfg := writeConfig("reconcile.yaml", "data-dir: "+strconv.Quote(dataDir)+"\n")
		settlement := writeSettlement(t, "payment_id,order_id,amount,currency,status\n")
		if code, _, stderr := runReconcile(t, "--settlement", settlement, "--config", cfg); code != 0 {
			t.Errorf("reconcile --config naming data-dir %s: exit %d, stderr %q; want 0", dataDir, code, stderr)
		}
		t.Run("SURGE_CONFIG", func(t *testing.T) {
			t.Setenv("SURGE_CONFIG", cfg)
			if code, _, stderr := runReconcile(t, "--settlement", settlement); code != 0 {
				t.Errorf("reconcile with SURGE_CONFIG naming data-dir %s: exit %d, stderr %q; want 0", dataDir, code, stderr)
			}
		})
		// The command line outranks the file; an empty directory the file
		// names is reported as the file's.
		empty := t.TempDir()
		if code, _, stderr := runReconcile(t, "--settlement", settlement, "--config", cfg, "--data-dir", empty); code != 2 || !strings.Contains(stderr, "--data-dir "+empty) {
			t.Errorf("reconcile --config --data-dir %s: exit %d, stderr %q; want 2 naming --data-dir", empty, code, stderr)
		}
		other := writeConfig("other.yaml", "data-dir: "+strconv.Quote(empty)+"\n")
		if code, _, stderr := runReconcile(t, "--settlement", settlement, "--config", other); code != 2 || !strings.Contains(stderr, other) || !strings.Contains(stderr, empty) {
			t.Errorf("reconcile --config naming an empty data directory: exit %d, stderr %q; want 2 naming the file and the directory", code, stderr)
		}
	})
	t.Run("probe", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
			}
		}))
		defer srv.Close()
		_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cfg := writeConfig("probe.yaml", "http-addr: \"0.0.0.0:"+port+"\"\n")
		want := "http://127.0.0.1:" + port + "/healthz: 200 OK"
		if code, stdout, stderr := runCLI(t.Context(), "probe", "--config", cfg); code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("probe --config naming http-addr :%s: exit %d, stdout %q, stderr %q; want 0 and %q", port, code, stdout, stderr, want)
		}
		t.Run("SURGE_CONFIG", func(t *testing.T) {
			t.Setenv("SURGE_CONFIG", cfg)
			if code, stdout, stderr := runCLI(t.Context(), "probe"); code != 0 || !strings.Contains(stdout, want) {
				t.Errorf("probe with SURGE_CONFIG naming http-addr :%s: exit %d, stdout %q, stderr %q; want 0 and %q", port, code, stdout, stderr, want)
			}
		})
		// SURGE_HTTP_ADDR outranks the file, as for serve.
		t.Run("SURGE_HTTP_ADDR", func(t *testing.T) {
			t.Setenv("SURGE_HTTP_ADDR", srv.Listener.Addr().String())
			bad := writeConfig("probe-other.yaml", "http-addr: \"127.0.0.1:1\"\n")
			if code, stdout, stderr := runCLI(t.Context(), "probe", "--config", bad); code != 0 || !strings.Contains(stdout, want) {
				t.Errorf("probe --config with SURGE_HTTP_ADDR set: exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, want)
			}
		})
		// A file serve would refuse is refused (exit 1: probe's failures).
		bad := writeConfig("bad.yaml", "no-such-key: 1\n")
		if code, _, stderr := runCLI(t.Context(), "probe", "--config", bad); code != 1 || !strings.Contains(stderr, "no-such-key") {
			t.Errorf("probe --config with an unknown key: exit %d, stderr %q; want 1 naming the key", code, stderr)
		}
	})
}
