package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartRefusalSaysFix: the two refusals a new user meets first, a
// port another process holds and a data directory the server cannot
// make, name the flag and say what to do.
func TestStartRefusalSaysFix(t *testing.T) {
	t.Setenv("SURGE_ADMIN_TOKEN", "0123456789abcdef0123")
	t.Setenv("SURGE_JWT_SECRET", "0123456789abcdef0123456789abcdef") // no warning before the refusal
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	code, _, stderr := runCLI(ctx, "serve", "--http-addr", held.Addr().String(), "--data-dir", t.TempDir())
	for _, want := range []string{"--http-addr", "address already in use", "another process listens on " + held.Addr().String(), "port 0 picks a free one"} {
		if code != 1 || !startRefusal(stderr) || !strings.Contains(stderr, want) {
			t.Errorf("port in use: exit %d, stderr %q; want 1, a start refusal with %q", code, stderr, want)
		}
	}

	// The real binary listens through tableflip, whose error flattens
	// the errno into text.
	cmd := exec.CommandContext(ctx, surgeBinary(t), "serve", "--http-addr", held.Addr().String(), "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "SURGE_ADMIN_TOKEN=0123456789abcdef0123", "SURGE_JWT_SECRET=0123456789abcdef0123456789abcdef")
	out, err := cmd.CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), "another process listens on "+held.Addr().String()) {
		t.Errorf("port in use, the binary: %v, output %q; want exit 1 and the hint", err, out)
	}

	file := filepath.Join(t.TempDir(), "surge.db")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(ctx, "serve", "--http-addr", "127.0.0.1:0", "--data-dir", file)
	for _, want := range []string{`--data-dir "` + file + `"`, "not a directory", "SURGE_DATA_DIR"} {
		if code != 1 || !startRefusal(stderr) || !strings.Contains(stderr, want) {
			t.Errorf("data dir a file: exit %d, stderr %q; want 1, a start refusal with %q", code, stderr, want)
		}
	}
}
