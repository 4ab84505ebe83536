package deploy_test

import (
	"path/filepath"
	"regexp"
	"testing"
)

// TestHelmClusterStoreURLsRequired: values.yaml says cluster mode requires the existing Secret's redis-url and
// postgres-url, but the chart maps both with optional: true. A Secret
// without them starts every pod of the Deployment in embedded mode on an
// emptyDir: separate shops behind one Service, whose confirmed (201)
// orders vanish with the pod. A required key stops the pod instead
// (CreateContainerConfigError).
func TestHelmClusterStoreURLsRequired(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	out := runTool(t, helm, "template", "drop", filepath.Join("helm", "surge"), "--set", "mode=cluster", "--set", "secrets.existingSecret=shop",
		// Connections under the default postgresConnections.max (TestHelmPostgresConnectionsFit).
		"--set", "postgresConnections.poolMaxConns=7")
	for _, env := range []string{"SURGE_REDIS_URL", "SURGE_POSTGRES_URL"} {
		re := regexp.MustCompile(`(?m)^ +- name: ` + env + `\n +valueFrom:\n +secretKeyRef:\n +name: shop\n +key: [a-z-]+\n +optional: true$`)
		if re.MatchString(out) {
			t.Errorf("cluster mode with secrets.existingSecret: %s is optional: a Secret without it starts an embedded-mode pod on an emptyDir", env)
		}
	}
}
