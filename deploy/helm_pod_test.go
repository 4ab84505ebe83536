package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// podContainer is the part of the chart's surge container these tests read.
type podContainer struct {
	Env []struct {
		Name  string
		Value string
	}
	ReadinessProbe struct {
		PeriodSeconds    int `yaml:"periodSeconds"`
		TimeoutSeconds   int `yaml:"timeoutSeconds"`
		FailureThreshold int `yaml:"failureThreshold"`
	} `yaml:"readinessProbe"`
	Resources struct {
		Limits map[string]string
	}
}

// renderChart is helm template of the real chart with the mode's ci
// values and args.
func renderChart(t *testing.T, mode string, args ...string) string {
	t.Helper()
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	chart := filepath.Join("helm", "surge")
	return runTool(t, helm, append([]string{"template", "drop", chart, "-f", filepath.Join(chart, "ci", mode+"-values.yaml")}, args...)...)
}

// renderContainer renders the chart with the mode's ci values and args
// (helm template, the real chart) and returns its workload's (the
// StatefulSet's or the Deployment's) surge container.
func renderContainer(t *testing.T, mode string, args ...string) podContainer {
	t.Helper()
	out := renderChart(t, mode, args...)
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc struct {
			Kind string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []podContainer
					}
				}
			}
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", args, err, out)
		}
		if doc.Kind == "StatefulSet" || doc.Kind == "Deployment" {
			if len(doc.Spec.Template.Spec.Containers) != 1 {
				t.Fatalf("helm template %v: %d containers in the %s, want 1", args, len(doc.Spec.Template.Spec.Containers), doc.Kind)
			}
			return doc.Spec.Template.Spec.Containers[0]
		}
	}
	t.Fatalf("helm template %v (%s): no StatefulSet or Deployment:\n%s", args, mode, out)
	return podContainer{}
}

// TestHelmGoMemLimit: the chart gives the pod a memory limit (1Gi), which
// the Go runtime does not read. Without GOMEMLIMIT the collector lets the
// heap grow to twice what the last cycle found live (GOGC=100), plus the
// heap floor: a spike that finds a few hundred MiB live (a million orders
// in memory) passes the limit before the next cycle, and the kernel kills
// the pod in the middle of the drop, every request in flight unanswered.
// With a limit set the chart sets GOMEMLIMIT to goMemLimitPercent (90) of
// it, leaving the rest for memory the runtime does not count (SQLite's
// allocations through modernc's libc, thread stacks); none without a
// limit, and the operator's own env.GOMEMLIMIT wins. Each value is given
// to a real Go process, which must read it as that share of the limit.
func TestHelmGoMemLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		mode  string
		args  []string
		limit int64  // the container's memory limit in bytes, 0 for none
		want  string // GOMEMLIMIT, "" for none
	}{
		{"the default 1Gi, embedded", "embedded", nil, 1 << 30, "921MiB"},
		{"the default 1Gi, cluster", "cluster", nil, 1 << 30, "921MiB"},
		{"512Mi", "cluster", []string{"--set", "resources.limits.memory=512Mi"}, 512 * mib, "460MiB"},
		{"1.5Gi", "cluster", []string{"--set", "resources.limits.memory=1.5Gi"}, 1536 * mib, "1382MiB"},
		{"2G", "cluster", []string{"--set", "resources.limits.memory=2G"}, 2e9, "1716MiB"},
		{"bytes", "cluster", []string{"--set", "resources.limits.memory=1073741824"}, 1 << 30, "921MiB"},
		{"80 percent", "cluster", []string{"--set", "goMemLimitPercent=80"}, 1 << 30, "819MiB"},
		{"no limit", "cluster", []string{"--set", "resources.limits=null"}, 0, ""},
		{"off", "cluster", []string{"--set", "goMemLimitPercent=0"}, 1 << 30, ""},
		{"the operator's own", "cluster", []string{"--set", "env.GOMEMLIMIT=700MiB"}, 1 << 30, "700MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := renderContainer(t, tc.mode, tc.args...)
			var got []string
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" {
					got = append(got, e.Value)
				}
			}
			if lim := c.Resources.Limits["memory"]; (lim != "") != (tc.limit != 0) {
				t.Fatalf("limits.memory %q, want a limit: %v", lim, tc.limit != 0)
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("GOMEMLIMIT %q, want none", got)
			case tc.want == "":
				return
			case len(got) != 1 || got[0] != tc.want:
				t.Fatalf("GOMEMLIMIT %q with a memory limit of %d MiB, want one, %s: the Go collector does not know the pod's limit, "+
					"and a heap spike gets the pod OOM-killed", got, tc.limit/mib, tc.want)
			}
			// The value as the Go runtime reads it: at most the limit.
			n := goMemoryLimit(t, got[0])
			if n > tc.limit || n < tc.limit/2 {
				t.Errorf("GOMEMLIMIT=%s: the Go runtime's limit is %d bytes, want at most the container's %d and not far below it", got[0], n, tc.limit)
			}
		})
	}
}

// goMemoryLimit is the memory limit a Go process started with
// GOMEMLIMIT=v sets itself (this test binary, as TestGoMemLimitHelper).
func goMemoryLimit(t *testing.T, v string) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGoMemLimitHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GOMEMLIMIT="+v, "SURGE_DEPLOY_PRINT_MEMLIMIT=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("a Go process with GOMEMLIMIT=%s: %v\n%s", v, err, out)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	n, err := strconv.ParseInt(string(bytes.TrimPrefix(line, []byte("memlimit "))), 10, 64)
	if err != nil {
		t.Fatalf("a Go process with GOMEMLIMIT=%s printed %q", v, out)
	}
	return n
}

// TestGoMemLimitHelper prints its process's memory limit for
// goMemoryLimit; run alone it does nothing.
func TestGoMemLimitHelper(t *testing.T) {
	if os.Getenv("SURGE_DEPLOY_PRINT_MEMLIMIT") != "1" {
		t.Skip("a helper process of TestHelmGoMemLimit")
	}
	fmt.Printf("memlimit %d\n", debug.SetMemoryLimit(-1))
}
