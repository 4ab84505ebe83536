// Package exampleconfig moves deploy/surge.example.yaml, the settings the
// systemd unit reads, into a test: the deploy tests and the observability
// tests both run a node with it, and follow its file paths in one place,
// so that a path the example adds or renames is followed alike by both.
package exampleconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Localize writes cfg (the example, its listen addresses as the test
// wants them) to dir/surge.yaml with the files it names moved into dir:
// the admin token file (holding adminToken), the buyers' JWT secret file
// (32 bytes) and the data directory. It returns the written file's path,
// and fails tb when the example no longer names one of those paths.
func Localize(tb testing.TB, cfg, dir, adminToken string) string {
	tb.Helper()
	secret := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	for from, to := range map[string]string{
		"/etc/surge/admin-token": secret("admin-token", adminToken),
		"/etc/surge/jwt-secret":  secret("jwt-secret", strings.Repeat("j", 32)),
		"/var/lib/surge":         filepath.Join(dir, "data"),
	} {
		if !strings.Contains(cfg, from) {
			tb.Fatalf("deploy/surge.example.yaml no longer names %s; follow it here", from)
		}
		cfg = strings.ReplaceAll(cfg, from, to)
	}
	path := filepath.Join(dir, "surge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
