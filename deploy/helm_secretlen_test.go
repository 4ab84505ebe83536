package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelmRefusesSecretsThePodRefuses: surge serve refuses an HS256 JWT
// secret or a waiting-room secret under 32 bytes and exits, but the chart
// rendered one: the pod never started (CrashLoopBackOff), and in embedded
// mode an upgrade stops the running pod before its successor starts, so
// the shop was down until someone fixed the value, where the chart's
// checks promise a wrong value fails at install. The render must fail at
// the bound the real binary keeps, and pass where the binary starts.
func TestHelmRefusesSecretsThePodRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	bin := filepath.Join(t.TempDir(), "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// starts reports whether surge serve takes the secret from its
	// variable, as the pod gives it (--print-config checks every setting
	// as a start does, and exits).
	starts := func(env, v string) (bool, string) {
		cmd := exec.Command(bin, "serve", "--print-config")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "SURGE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "SURGE_ADMIN_TOKEN=helm-test-admin-token", "SURGE_DATA_DIR="+t.TempDir(), env+"="+v)
		out, err := cmd.CombinedOutput()
		return err == nil, string(out)
	}
	chart := filepath.Join("helm", "surge")
	for _, s := range []struct{ value, env string }{
		{"jwtSecret", "SURGE_JWT_SECRET"},
		{"waitingRoomSecret", "SURGE_WAITING_ROOM_SECRET"},
	} {
		for _, mode := range []string{"embedded", "cluster"} {
			for _, n := range []int{31, 32} {
				v := strings.Repeat("k", n)
				podStarts, podOut := starts(s.env, v)
				out, err := exec.Command(helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", mode+"-values.yaml"),
					"--set", "secrets."+s.value+"="+v).CombinedOutput()
				rendered := err == nil
				if rendered != podStarts {
					t.Errorf("%s, secrets.%s of %d bytes: helm template succeeded: %v, the pod's surge serve starts: %v; want the same\nhelm: %s\nsurge: %s",
						mode, s.value, n, rendered, podStarts, out, podOut)
				}
				if !rendered && !strings.Contains(string(out), "secrets."+s.value) {
					t.Errorf("%s, secrets.%s of %d bytes: the render's failure does not name the value: %s", mode, s.value, n, out)
				}
			}
		}
	}
}
