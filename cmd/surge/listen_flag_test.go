package main

import (
	"net"
	"strings"
	"testing"
)

// TestListenErrorNamesTheFlag: a listener address that cannot be listened
// on (taken by another process, or by this one's other listener under
// another spelling, such as localhost:8080 beside 127.0.0.1:8080) failed
// the start with "listen on 127.0.0.1:8080: … address already in use",
// naming no flag: with --http-addr, --admin-addr and --debug-addr set, the
// operator had to guess which. The refusal names the flag.
func TestListenErrorNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, flag := range []string{"http-addr", "admin-addr", "debug-addr"} {
		args := []string{"serve", "--data-dir", t.TempDir(), "--admin-token", "listen-flag-admin-token", "--http-addr", "127.0.0.1:0"}
		args = append(args, "--"+flag, addr)
		code, _, stderr := runCLI(t.Context(), args...)
		if code != 1 || !strings.Contains(stderr, "surge cannot start") || !strings.Contains(stderr, "listen on "+addr+" (--"+flag+")") || !strings.Contains(stderr, "address already in use") {
			t.Errorf("serve --%s %s, an address another process holds: %d, stderr %q; want 1 and a refusal naming --%s", flag, addr, code, stderr, flag)
		}
	}
}
