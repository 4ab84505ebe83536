package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
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
