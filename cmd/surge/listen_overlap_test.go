package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListenAddrsDistinct: --http-addr, --admin-addr and --debug-addr
// each need an address of their own. Two of them on one address were
// accepted by --print-config (and so by a reload's check) and failed the
// start only once it listened, with exit status 1 and "listen on ADDR:
// address already in use", naming no flag, after the data directory was
// created. Each pair is refused as a bad setting naming both flags, also
// when one names the host the other gives by address (localhost and
// 127.0.0.1); port 0 (a free port each) stays allowed.
func TestListenAddrsDistinct(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	addr := freeAddr(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		flags     []string
		flagA     string // the flags the refusal must name
		flagB     string
		wantPrint int // --print-config's exit status; the start's is the same when 2
	}{
		{"admin on http", []string{"--http-addr", addr, "--admin-addr", addr}, "--admin-addr", "--http-addr", 2},
		{"debug on http", []string{"--http-addr", addr, "--debug-addr", addr}, "--debug-addr", "--http-addr", 2},
		{"debug on admin", []string{"--http-addr", "127.0.0.1:0", "--admin-addr", addr, "--debug-addr", addr}, "--debug-addr", "--admin-addr", 2},
		{"admin on every address of http's port", []string{"--http-addr", ":" + port, "--admin-addr", addr}, "--admin-addr", "--http-addr", 2},
		// localhost is 127.0.0.1 here (/etc/hosts), and the start's listen
		// on it takes that address.
		{"admin on http by its name", []string{"--http-addr", "localhost:" + port, "--admin-addr", addr}, "--admin-addr", "--http-addr", 2},
		{"each a free port", []string{"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0"}, "", "", 0},
	} {
		for _, check := range []bool{true, false} {
			if tc.wantPrint == 0 && !check {
				continue // a start that serves is not this test's
			}
			dataDir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"serve", "--data-dir", dataDir, "--admin-token", "listen-addrs-admin-token", "--insecure-user-header"}, tc.flags...)
			if check {
				args = append(args, "--print-config")
			}
			code, stderr := serveExit(t, args)
			msg := strings.TrimSpace(stderr)
			if code != tc.wantPrint || (tc.flagA != "" && (!strings.Contains(msg, tc.flagA) || !strings.Contains(msg, tc.flagB))) {
				t.Errorf("%s, print-config %v: exit %d, %q; want exit status %d naming %s and %s",
					tc.name, check, code, msg, tc.wantPrint, tc.flagA, tc.flagB)
			}
			if code == 2 {
				if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s, print-config %v: the refused start left the data directory (%v)", tc.name, check, err)
				}
			}
		}
	}
}
