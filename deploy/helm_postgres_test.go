package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelmPostgresConnectionsFit: each cluster pod opens up to its pool's
// size of PostgreSQL connections (the URL's pool_max_conns, 16 without
// it) and one more for LISTEN, and a rolling update runs one pod more
// than the most replicas. The chart's defaults (the autoscaler up to 10
// pods) come to 11 × 17 = 187, past PostgreSQL's default max_connections
// (100): the pods the autoscaler adds in a drop's spike could not
// connect, and those serving could not grow their pools (503s), and
// nothing said so. The render now fails when the peak passes
// postgresConnections.max, naming the numbers and the fix.
func TestHelmPostgresConnectionsFit(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	chart := filepath.Join("helm", "surge")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	values := filepath.Join(chart, "ci", "cluster-values.yaml")
	const url = "postgres://surge@postgres:5432/surge"
	for _, tc := range []struct {
		name string
		args []string
		fail string // "": it renders
		// over: the failure is the count, which must name the server's
		// setting to raise or to stay under.
		over bool
	}{
		{"the default pool, 11 pods", []string{"--set", "secrets.postgresUrl=" + url}, "11 pods × 17 PostgreSQL connections = 187, over postgresConnections.max (90)", true},
		{"pool_max_conns=7, 11 pods", []string{"--set", "secrets.postgresUrl=" + url + "?pool_max_conns=7"}, "", false},
		{"pool_max_conns=8, 11 pods", []string{"--set", "secrets.postgresUrl=" + url + "?sslmode=disable&pool_max_conns=8"}, "11 pods × 9 PostgreSQL connections = 99", true},
		{"keyword/value", []string{"--set", "secrets.postgresUrl=host=postgres pool_max_conns = 4"}, "", false},
		{"4 replicas, no autoscaler", []string{"--set", "secrets.postgresUrl=" + url, "--set", "autoscaling.enabled=false", "--set", "replicaCount=4"}, "", false},
		{"a larger server", []string{"--set", "secrets.postgresUrl=" + url, "--set", "postgresConnections.max=200"}, "", false},
		{"not checked", []string{"--set", "secrets.postgresUrl=" + url, "--set", "postgresConnections.max=0"}, "", false},
		{"existing secret", []string{"--set", "secrets.existingSecret=shop"}, "= 187", true},
		{"existing secret, its pool", []string{"--set", "secrets.existingSecret=shop", "--set", "postgresConnections.poolMaxConns=5"}, "", false},
		{"a pool of 1", []string{"--set", "secrets.postgresUrl=" + url + "?pool_max_conns=1"}, "at least 2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "drop", chart, "-f", values}, tc.args...)
			out, err := exec.Command(helm, args...).CombinedOutput()
			switch {
			case tc.fail == "" && err != nil:
				t.Errorf("helm template %v: %v\n%s", tc.args, err, out)
			case tc.fail != "" && err == nil:
				t.Errorf("helm template %v rendered; want a failure saying %q", tc.args, tc.fail)
			case tc.fail != "" && (!strings.Contains(string(out), tc.fail) || tc.over && !strings.Contains(string(out), "max_connections")):
				t.Errorf("helm template %v: %s; want a failure saying %q (and naming max_connections: %v)", tc.args, out, tc.fail, tc.over)
			}
		})
	}
	// Embedded mode opens no PostgreSQL connection: nothing to check.
	runTool(t, helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"), "--set", "postgresConnections.max=1")
}
