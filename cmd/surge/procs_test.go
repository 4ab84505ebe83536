package main

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProcsFor(t *testing.T) {
	for _, tc := range []struct {
		current int
		env     string
		want    int
	}{
		{current: 1, want: 2},           // one CPU: raised
		{current: 2, want: 2},           // already at the floor
		{current: 8, want: 8},           // more CPUs: the runtime's choice
		{current: 1, env: "1", want: 1}, // the operator's choice, however small
		{current: 4, env: "4", want: 4},
	} {
		if got := procsFor(tc.current, tc.env); got != tc.want {
			t.Errorf("procsFor(%d, %q) = %d, want %d", tc.current, tc.env, got, tc.want)
		}
	}
}

// TestServeOnOneCPU starts the real binary on one CPU (taskset's affinity
// mask, which is what a one-vCPU machine shows the runtime): it runs with
// two Ps unless GOMAXPROCS says otherwise.
func TestServeOnOneCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary")
	}
	taskset, err := exec.LookPath("taskset") // util-linux: on every Debian
	if err != nil {
		t.Fatalf("taskset: %v", err)
	}
	const token = "one-cpu-admin-token"
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
	for _, tc := range []struct {
		setting string // GOMAXPROCS in the environment
		want    int64
	}{
		{setting: "", want: 2},
		{setting: "1", want: 1},
	} {
		bin, dataDir := surgeBinary(t), t.TempDir()
		p := startCmd(t, func(addr string) *exec.Cmd {
			cmd := serveCmd(bin, dataDir, token, addr)
			cmd.Path, cmd.Args = taskset, append([]string{"taskset", "-c", "0"}, cmd.Args...)
			cmd.Env = env
			if tc.setting != "" {
				cmd.Env = append(slices.Clip(env), "GOMAXPROCS="+tc.setting)
			}
			return cmd
		})
		if got := gauge(t, p.base, token, "go_sched_gomaxprocs_threads"); got != tc.want {
			t.Errorf("GOMAXPROCS %d on one CPU with GOMAXPROCS=%q in the environment, want %d", got, tc.setting, tc.want)
		}
		p.stop(t, os.Interrupt, 10*time.Second)
	}
}

// gauge reads one unlabelled gauge from the server's /metrics.
func gauge(t *testing.T, base, token, name string) int64 {
	t.Helper()
	code, body := get(t, base+"/metrics", token)
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", name, v, err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no %s in /metrics (status %d)", name, code)
	return 0
}
