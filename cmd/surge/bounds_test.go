package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// boundRefusal runs `surge serve --print-config` with the value given
// once as a flag, once as its SURGE_* variable and once as a key of the
// config file, and wants each refused: exit 2 and one line saying want.
// --print-config loads exactly what a start and a SIGHUP load.
func boundRefusal(t *testing.T, flag, value, want string) {
	t.Helper()
	for _, from := range []string{"flag", "env", "file"} {
		args := []string{"serve", "--print-config", "--data-dir", t.TempDir()}
		switch from {
		case "flag":
			args = append(args, "--"+flag, value)
		case "env":
			t.Setenv(envName(flag), value)
		case "file":
			args = append(args, "--config", writeConfig(t, "surge.yaml", fmt.Sprintf("%s: %s\n", flag, value)))
		}
		code, stdout, stderr := runCLI(context.Background(), args...)
		if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, want) {
			t.Errorf("%s %s = %s (from the %s): exit %d, stderr %q, stdout %d bytes; want exit 2 and one line saying %q",
				strings.Join(args[:2], " "), flag, value, from, code, stderr, len(stdout), want)
		}
		if from == "env" {
			os.Unsetenv(envName(flag)) // t.Setenv restores the original at the end
		}
	}
}

// TestWaitingRoomBoundsRefuseZero: "--waiting-room-max-entries 0" was
// taken, and meant 1,000,000 (waitroom.DefaultMaxEntries), while the
// flag's own message says "at least 1" and neither the help nor the docs
// give 0 a meaning. The streams bounds alike.
func TestWaitingRoomBoundsRefuseZero(t *testing.T) {
	for _, flag := range []string{"waiting-room-max-entries", "waiting-room-streams", "waiting-room-streams-per-buyer", "waiting-room-streams-per-address"} {
		t.Run(flag, func(t *testing.T) {
			boundRefusal(t, flag, "0", "--"+flag)
			boundRefusal(t, flag, "0", "must be at least 1")
		})
	}
}

// TestQueueSizeBounded: --queue-size had no upper bound: each sale's
// inbox is allocated whole at that size when the sale is loaded, so a
// slip (an extra digit, a byte count) admitted unbounded work, or made the
// node panic on its first sale ("makechan: size out of range").
func TestQueueSizeBounded(t *testing.T) {
	for _, v := range []string{"1048577", "1099511627776"} {
		boundRefusal(t, "queue-size", v, "--queue-size must be at most 1048576")
	}
	// The bound itself is taken.
	code, _, stderr := runCLI(context.Background(), "serve", "--print-config", "--data-dir", t.TempDir(), "--queue-size", "1048576")
	if code != 0 {
		t.Errorf("serve --queue-size 1048576 --print-config: exit %d, stderr %q; want 0: the bound itself is allowed", code, stderr)
	}
}

// TestReloadRefusesOutOfBounds: SIGHUP checks a file as a start does: a
// queue-size above its bound or a waiting-room bound of 0 refuses the
// reload, rather than being logged as needing a restart (and refused only
// by that restart) or applied as a million.
func TestReloadRefusesOutOfBounds(t *testing.T) {
	cfg := writeConfig(t, "surge.yaml", "waiting-room-max-entries: 5\n")
	p := startConfigured(t, "--config", cfg, "--data-dir", t.TempDir(), "--admin-token", "reload-bounds-admin-token", "--log-level", "info")
	for i, body := range []string{"waiting-room-max-entries: 0\n", "waiting-room-max-entries: 5\nqueue-size: 1099511627776\n"} {
		replaceConfig(t, cfg, body)
		p.hup(t)
		// Either answer ends the wait: the reload is judged by which came.
		deadline := time.Now().Add(20 * time.Second)
		for p.logCount("config reload refused")+p.logCount("config reloaded")+p.logCount("needs a restart") <= i && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := p.logCount("config reload refused"); n != i+1 {
			t.Fatalf("SIGHUP with %q: %d reloads refused in the log, want %d (reloaded: %d, ignored until a restart: %d)",
				body, n, i+1, p.logCount("config reloaded"), p.logCount("needs a restart"))
		}
	}
}

// TestMaxBatchBounded: --max-batch had no upper bound either, and each
// sale's owner allocates buffers of that many purchases: a huge value
// ended the process at the first purchase.
func TestMaxBatchBounded(t *testing.T) {
	boundRefusal(t, "max-batch", "1099511627776", "--max-batch must be at most 1048576")
}
