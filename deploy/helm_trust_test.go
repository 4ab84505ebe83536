package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelmTrustedProxiesReachThePods: behind an Ingress every connection
// reaches a pod from the controller's pods, each buyer's address in
// X-Forwarded-For, which a pod believes only from --trusted-proxies. The
// chart had no value for them (only the generic env, whose example named
// a whole private range): installed behind an Ingress as shipped, a pod
// counted every buyer as the controller's address, so the drop shared one
// address's 1,024 connections, 16 waiting-room streams and rate-limit-ip
// bucket (429 past them). trustedProxies names the controller's CIDRs,
// and the pod's environment, given to the real binary, must trust
// exactly them; trustedProxies beside env.SURGE_TRUSTED_PROXIES (one of
// them silently lost) fails the render.
func TestHelmTrustedProxiesReachThePods(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// trusted is the trusted-proxies line of `surge serve --print-config`
	// in the container's environment (its literal values; the secrets
	// are a Secret's, the admin token given here instead).
	trusted := func(c podContainer) string {
		cmd := exec.Command(bin, "serve", "--print-config")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "SURGE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		for _, e := range c.Env {
			if e.Value != "" {
				cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
			}
		}
		cmd.Env = append(cmd.Env, "SURGE_ADMIN_TOKEN=helm-test-admin-token", "SURGE_DATA_DIR="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("surge serve --print-config in the pod's environment: %v\n%s", err, out)
		}
		return configLine(out, "trusted-proxies")
	}
	const cidrs = "10.244.0.0/16,fd00:10:244::/56"
	for _, mode := range []string{"embedded", "cluster"} {
		c := renderContainer(t, mode, "--set", "trustedProxies={"+cidrs+"}")
		if got, want := trusted(c), `trusted-proxies: "`+cidrs+`" # env`; got != want {
			t.Errorf("%s, trustedProxies={%s}: the pod's surge serve says %q, want %q: behind an Ingress every buyer counts as the controller's address",
				mode, cidrs, got, want)
		}
	}
	// The ci values of cluster mode name the controller's range there.
	if got, want := trusted(renderContainer(t, "cluster")), `trusted-proxies: "10.0.0.0/8" # env`; got != want {
		t.Errorf("cluster mode's ci values: the pod's surge serve says %q, want %q", got, want)
	}

	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	chart := filepath.Join("helm", "surge")
	out, err := exec.Command(helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"),
		"--set", "trustedProxies={10.244.0.0/16}", "--set", "env.SURGE_TRUSTED_PROXIES=10.0.0.0/8").CombinedOutput()
	if want := "env.SURGE_TRUSTED_PROXIES"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("trustedProxies and env.SURGE_TRUSTED_PROXIES both: %v, %s; want a failure naming %s", err, out, want)
	}
	// Without them the install's notes say what an Ingress then costs.
	for _, tc := range []struct {
		args []string
		warn bool
	}{{nil, true}, {[]string{"--set", "trustedProxies={10.244.0.0/16}"}, false}} {
		args := append([]string{"install", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"), "--dry-run=client"}, tc.args...)
		out := runTool(t, helm, args...)
		if got := strings.Contains(out, "No trustedProxies"); got != tc.warn {
			t.Errorf("helm install %v: the notes warn of no trustedProxies: %v, want %v:\n%s", tc.args, got, tc.warn, out)
		}
	}
}
