package deploy_test

import (
	"path/filepath"
	"regexp"
	"testing"
)

// TestHelmServicePortIsNotTheContainers: service.port was also the port
// the container listens on (SURGE_HTTP_ADDR, containerPort). Putting the
// Service on port 80, the usual wish, had the server bind port 80 as user
// 65532 with every capability dropped (the chart's securityContext): a
// runtime that keeps ports below 1024 privileged (containerd before 2.0,
// for one) refuses the bind, and the pod crash-loops. The Service's port is
// the Service's; the container keeps its unprivileged containerPort.
func TestHelmServicePortIsNotTheContainers(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	chart := filepath.Join("helm", "surge")
	for _, mode := range []string{"embedded", "cluster"} {
		out := runTool(t, helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", mode+"-values.yaml"), "--set", "service.port=80")
		for _, want := range []struct{ what, re string }{
			{"the Service on port 80", `(?m)^    - name: http\n      port: 80\n      targetPort: http$`},
			{"the server listening on 8080", `(?m)^ +- name: SURGE_HTTP_ADDR\n +value: "0.0.0.0:8080"$`},
			{"containerPort 8080", `(?m)^ +containerPort: 8080$`},
		} {
			if !regexp.MustCompile(want.re).MatchString(out) {
				t.Errorf("%s, service.port=80: want %s (%s): a non-root container without capabilities cannot bind port 80", mode, want.what, want.re)
			}
		}
		if t.Failed() {
			t.Logf("helm template (%s):\n%s", mode, out)
		}
	}
}
