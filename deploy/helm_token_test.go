package deploy_test

import (
	"path/filepath"
	"regexp"
	"testing"
)

// TestHelmPodHasNoServiceAccountToken: Surge never calls the Kubernetes
// API, yet the chart's pods had the namespace's service-account token
// mounted (Kubernetes' default): whoever takes over a pod (a bug in a
// request's parsing, a compromised dependency) also gets the API
// credentials of that account. The chart turns the mount off, in both
// modes; an operator whose sidecar needs it turns it on again.
func TestHelmPodHasNoServiceAccountToken(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	chart := filepath.Join("helm", "surge")
	// The pod template's own key (6 spaces in, beside containers:).
	off := regexp.MustCompile(`(?m)^      automountServiceAccountToken: false$`)
	on := regexp.MustCompile(`(?m)^      automountServiceAccountToken: true$`)
	for _, mode := range []string{"embedded", "cluster"} {
		values := filepath.Join(chart, "ci", mode+"-values.yaml")
		if out := runTool(t, helm, "template", "drop", chart, "-f", values); !off.MatchString(out) {
			t.Errorf("%s: the pod mounts the service-account token (no automountServiceAccountToken: false), which Surge never uses", mode)
		}
		if out := runTool(t, helm, "template", "drop", chart, "-f", values, "--set", "automountServiceAccountToken=true"); !on.MatchString(out) {
			t.Errorf("%s: automountServiceAccountToken=true does not mount the token", mode)
		}
	}
}
