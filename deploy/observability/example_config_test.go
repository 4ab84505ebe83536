package observability_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/deploy/internal/exampleconfig"
)

// prometheusDefaultPort is where Prometheus listens unless told otherwise
// (--web.listen-address=0.0.0.0:9090), as Debian's package runs it: the
// Prometheus docs/observability.md installs beside a node.
const prometheusDefaultPort = "9090"

// TestExampleConfigScrapedAsShipped runs a node with the settings the
// systemd unit reads (deploy/surge.example.yaml, only its file paths and
// ports moved into the test) and the real Prometheus with the shipped
// scrape config, targets moved with the same ports: the documented host
// (docs/operations.md, the unit; docs/observability.md, Prometheus beside
// it) must collect the node's metrics, and the node and Prometheus must
// not want the same port.
func TestExampleConfigScrapedAsShipped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs surge and prometheus")
	}
	promBin, promtool := tool(t, "prometheus"), tool(t, "promtool")
	dir := t.TempDir()
	token, tokenFile := adminTokenFile(t, dir)

	example, err := os.ReadFile(filepath.Join("..", "surge.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	setting := func(key string) string {
		m := regexp.MustCompile(`(?m)^` + key + `: (\S+)`).FindStringSubmatch(string(example))
		if m == nil {
			return ""
		}
		return m[1]
	}
	if a := setting("admin-addr"); strings.HasSuffix(a, ":"+prometheusDefaultPort) {
		t.Errorf("deploy/surge.example.yaml puts admin-addr on %s, the port Prometheus listens on by default: "+
			"on the host docs/observability.md describes, the node or Prometheus cannot start", a)
	}

	// The example with its secret files and data directory in the test,
	// and each listen address moved to a free port (old → new).
	moved := map[string]string{}
	cfg := string(example)
	for _, key := range []string{"http-addr", "admin-addr"} {
		if a := setting(key); a != "" {
			moved[a] = freeAddr(t)
			cfg = strings.Replace(cfg, key+": "+a, key+": "+moved[a], 1)
		}
	}
	cfgFile := exampleconfig.Localize(t, cfg, dir, token)

	// As the unit runs it: --config, nothing else that is a setting.
	cmd := exec.Command(buildSurge(t, dir), "serve", "--config", cfgFile)
	cmd.Env = cleanEnv()
	logs := start(t, cmd, filepath.Join(dir, "surge.log"))
	waitHTTP(t, "surge", "http://"+moved[setting("http-addr")]+"/healthz", logs)

	// The shipped scrape config, its targets moved as the node's ports
	// were: a target the example does not listen on stays as it is.
	shipped, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	targets := regexp.MustCompile(`(?m)^\s+- (127\.0\.0\.1:\d+)\s*$`).FindAllStringSubmatch(string(shipped), -1)
	if len(targets) != 1 {
		t.Fatalf("prometheus.yml has targets %v, want one", targets)
	}
	target := targets[0][1]
	scraped, ok := moved[target]
	if !ok {
		t.Fatalf("prometheus.yml scrapes %s, where a node run with deploy/surge.example.yaml listens on nothing (it listens on %v)", target, moved)
	}
	prom := renderConfig(t, map[string]string{
		"scrape_interval: 5s":               "scrape_interval: 1s",
		"evaluation_interval: 5s":           "evaluation_interval: 1s",
		"/etc/prometheus/surge-alerts.yml":  abs(t, "alerts.yml"),
		"/etc/prometheus/surge-admin-token": tokenFile,
		target:                              scraped,
	})
	promFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promFile, []byte(prom), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, promtool, "check", "config", promFile)
	promURL := "http://" + startPrometheus(t, promBin, promFile, dir)

	// up is 1 or 0 after the first scrape, within a second or two.
	deadline := time.Now().Add(60 * time.Second)
	for {
		up, ok := query(t, promURL, `up{job="surge"}`, "instance")[scraped]
		if ok && up == 1 {
			break
		}
		if ok && up == 0 {
			status := getData[struct {
				ActiveTargets []struct{ ScrapeURL, LastError string }
			}](t, promURL+"/api/v1/targets")
			t.Fatalf("Prometheus with the shipped prometheus.yml cannot scrape a node run with deploy/surge.example.yaml "+
				"(the systemd unit's settings): up = 0, so no metric is collected and SurgeDown fires for good (%+v)", status.ActiveTargets)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape of %s within a minute", scraped)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
