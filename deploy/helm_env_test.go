package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelmEnvCannotShadowTheChartsOwn: the chart sets SURGE_HTTP_ADDR,
// SURGE_DATA_DIR, SURGE_DRAIN_DELAY and SURGE_SHUTDOWN_TIMEOUT from its
// values and derives more from them (the containerPort the probes and the
// Service use, the volume's mount, terminationGracePeriodSeconds). The
// same name in env was rendered after them, and Kubernetes takes the last
// of a container's duplicate variables: env.SURGE_SHUTDOWN_TIMEOUT=90s
// gave serve 90 s for requests in flight while the pod was killed 45 s
// after SIGTERM, mid-drain. Such an env fails the render, naming the
// value to set instead.
func TestHelmEnvCannotShadowTheChartsOwn(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	chart := filepath.Join("helm", "surge")
	for _, tc := range []struct{ env, value, want string }{
		{"SURGE_SHUTDOWN_TIMEOUT", "90s", "shutdownTimeoutSeconds"},
		{"SURGE_DRAIN_DELAY", "20s", "drainDelaySeconds"},
		{"SURGE_HTTP_ADDR", "0.0.0.0:9000", "containerPort"},
		{"SURGE_DATA_DIR", "/var/lib/surge", "/data"},
	} {
		out, err := exec.Command(helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"),
			"--set-string", "env."+tc.env+"="+tc.value).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "env."+tc.env) || !strings.Contains(string(out), tc.want) {
			t.Errorf("env.%s=%s rendered (%v) beside the chart's own %s: the pod's serve takes the later one, which the chart's other settings do not follow; "+
				"want a failure naming env.%s and %s:\n%s", tc.env, tc.value, err, tc.env, tc.env, tc.want, firstLines(string(out), 3))
		}
	}
}

// firstLines is s's first n lines.
func firstLines(s string, n int) string {
	lines := strings.SplitAfterN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}
