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

func TestCommitsHere(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  string
		args []string
		env  string // SURGE_REDIS_URL
		want bool
	}{
		{name: "demo", cmd: "demo", want: true},
		{name: "embedded serve", cmd: "serve", args: []string{"--data-dir", "d"}, want: true},
		{name: "cluster node", cmd: "serve", args: []string{"--redis-url", "redis://r", "--postgres-url", "postgres://p"}},
		{name: "cluster node from the environment", cmd: "serve", env: "redis://r"},
		{name: "serve with a bad flag", cmd: "serve", args: []string{"--no-such-flag"}},
		{name: "a client command", cmd: "bench"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("SURGE_REDIS_URL", tc.env)
			}
			if got := commitsHere(tc.cmd, tc.args); got != tc.want {
				t.Errorf("commitsHere(%q, %q) = %v, want %v", tc.cmd, tc.args, got, tc.want)
			}
		})
	}
}

// TestServeOnOneCPU starts the real binary on one CPU (taskset's affinity
// mask, which is what a one-vCPU machine shows the runtime): in embedded
// mode it runs with two Ps unless GOMAXPROCS says otherwise; a cluster
// node keeps the runtime's one.
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
		cluster bool
		want    int64
	}{
		{setting: "", want: 2},
		{setting: "1", want: 1},
		{cluster: true, want: 1},
	} {
		bin, dataDir := surgeBinary(t), t.TempDir()
		var extra []string
		if tc.cluster {
			extra = clusterArgs(t)
		}
		p := startCmd(t, func(addr string) *exec.Cmd {
			cmd := serveCmd(bin, dataDir, token, addr, extra...)
			cmd.Path, cmd.Args = taskset, append([]string{"taskset", "-c", "0"}, cmd.Args...)
			cmd.Env = env
			if tc.setting != "" {
				cmd.Env = append(slices.Clip(env), "GOMAXPROCS="+tc.setting)
			}
			return cmd
		})
		if got := gauge(t, p.base, token, "go_sched_gomaxprocs_threads"); got != tc.want {
			t.Errorf("GOMAXPROCS %d on one CPU with GOMAXPROCS=%q in the environment (cluster mode: %v), want %d",
				got, tc.setting, tc.cluster, tc.want)
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
