package observability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPrometheusScrapesSurge runs the shipped scrape config and alert rules
// in the real Prometheus against a real `surge serve` (embedded mode) on
// loopback, makes purchases, and reads surge_purchases_total back through
// Prometheus's HTTP API: the token, the path and the names work end to end.
func TestPrometheusScrapesSurge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs surge and prometheus")
	}
	promBin, promtool := tool(t, "prometheus"), tool(t, "promtool")
	dir := t.TempDir()
	token, tokenFile := adminTokenFile(t, dir)

	surgeAddr := startSurge(t, dir, token)
	base := "http://" + surgeAddr
	const sale, stock, buyers = "obs", 5, 20
	adminPost(t, base+"/v1/sales", token,
		fmt.Sprintf(`{"id":%q,"name":"Observability test","stock":%d,"per_user_limit":1}`, sale, stock))
	// A sale with a waiting room, for the metrics only such sales have.
	adminPost(t, base+"/v1/sales", token,
		`{"id":"obs-queued","name":"Observability test, queued","stock":5,"waiting_room":{"admit_per_second":10,"order":"fifo","ticket_seconds":60}}`)
	got := map[int]int{}
	for i := range buyers {
		req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/purchases", nil)
		req.Header.Set("X-User-ID", fmt.Sprintf("buyer-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got[resp.StatusCode]++
	}
	if got[201] != stock || got[409] != buyers-stock {
		t.Fatalf("purchases answered %v, want %d×201 and %d×409", got, stock, buyers-stock)
	}

	// The shipped config, pointed at this server, this token file and the
	// alert rules here, scraping every second.
	cfg := renderConfig(t, map[string]string{
		"scrape_interval: 5s":               "scrape_interval: 1s",
		"evaluation_interval: 5s":           "evaluation_interval: 1s",
		"/etc/prometheus/surge-alerts.yml":  abs(t, "alerts.yml"),
		"/etc/prometheus/surge-admin-token": tokenFile,
		"127.0.0.1:8080":                    surgeAddr,
	})
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, promtool, "check", "config", cfgFile)

	prom := "http://" + startPrometheus(t, promBin, cfgFile, dir)

	// Bounded wait: the first scrape comes within a second or two of the
	// start; the deadline allows for a loaded CI machine.
	want := map[string]float64{"reserved": stock, "sold_out": buyers - stock}
	var last map[string]float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		last = query(t, prom, fmt.Sprintf(`sum by (outcome) (surge_purchases_total{job="surge",sale=%q})`, sale), "outcome")
		if last["reserved"] == want["reserved"] && last["sold_out"] == want["sold_out"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("surge_purchases_total through Prometheus: %v, want %v\nup: %v", last,
				want, query(t, prom, `up`, "instance"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if up := query(t, prom, `up{job="surge"}`, "instance"); up[surgeAddr] != 1 {
		t.Errorf("up = %v, want %s at 1", up, surgeAddr)
	}

	// Every name the dashboard uses is one this node serves, but those of
	// cluster mode, of the order events' relay and of private listeners.
	served := map[string]bool{}
	for _, n := range getData[[]string](t, prom+"/api/v1/label/__name__/values") {
		served[n] = true
	}
	for _, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			for _, name := range metricNames(grafanaVars.Replace(e)) {
				if !served[name] && !clusterOnly[name] && !withEvents[name] && !withPrivateListeners[name] {
					t.Errorf("the dashboard uses %s, which surge serve does not export", name)
				}
			}
		}
	}

	// The rules loaded and evaluate; none fires on a healthy sale.
	deadline = time.Now().Add(30 * time.Second)
	for {
		rules := getData[struct {
			Groups []struct {
				Rules []struct {
					Name, Health, State, LastError string
				}
			}
		}](t, prom+"/api/v1/rules")
		var n, ok int
		var bad []string
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health == "ok" {
					ok++
				}
				if r.LastError != "" || r.State == "firing" {
					bad = append(bad, fmt.Sprintf("%s: %s %s", r.Name, r.State, r.LastError))
				}
			}
		}
		if len(bad) > 0 {
			t.Fatalf("rules: %v", bad)
		}
		if n > 0 && ok == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rules evaluated without error", ok, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// renderConfig returns prometheus.yml with each key replaced by its
// value; every key must occur exactly once, so a change of the shipped
// file that this test no longer follows fails here.
func renderConfig(t *testing.T, repl map[string]string) string {
	t.Helper()
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for from, to := range repl {
		if n := strings.Count(cfg, from); n != 1 {
			t.Fatalf("prometheus.yml holds %q %d times, want once", from, n)
		}
		cfg = strings.Replace(cfg, from, to, 1)
	}
	return cfg
}

func abs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startSurge builds cmd/surge and runs `surge serve` in embedded mode on a
// free loopback port; it returns the address once /readyz answers 200.
func startSurge(t *testing.T, dir, token string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(buildSurge(t, dir), "serve", "--data-dir", filepath.Join(dir, "data"), "--http-addr", addr,
		"--insecure-user-header")
	// The token goes by the environment, as the README asks of secrets.
	cmd.Env = append(cleanEnv(), "SURGE_ADMIN_TOKEN="+token)
	logs := start(t, cmd, filepath.Join(dir, "surge.log"))
	waitHTTP(t, "surge", "http://"+addr+"/readyz", logs)
	return addr
}

// buildSurge builds the surge binary into dir and returns its path.
func buildSurge(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "surge")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv is this process's environment without the developer's own
// SURGE_* settings, which must not leak into a server under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			env = append(env, kv)
		}
	}
	return env
}

// startPrometheus runs prometheus with cfgFile, its own storage under dir
// and a free loopback port (never the packaged service's 9090); it
// returns the address once Prometheus reports ready.
func startPrometheus(t *testing.T, bin, cfgFile, dir string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr,
	)
	logs := start(t, cmd, filepath.Join(dir, "prometheus.log"))
	waitHTTP(t, "prometheus", "http://"+addr+"/-/ready", logs)
	return addr
}

// start starts cmd with its output in logPath, kills it when the test
// ends, and returns a function reading the log (shown on failure).
func start(t *testing.T, cmd *exec.Cmd, logPath string) func() string {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4<<10 {
			b = b[len(b)-4<<10:]
		}
		return string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("log of %s:\n%s", filepath.Base(cmd.Path), logs())
		}
	})
	return logs
}

// waitHTTP polls url until it answers 200, for up to 30 s.
func waitHTTP(t *testing.T, name, url string, logs func() string) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s: %v\n%s", name, url, err, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func adminPost(t *testing.T, url, token, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", url, resp.Status, b)
	}
}

// getData reads the data field of a Prometheus API answer.
func getData[T any](t *testing.T, url string) T {
	t.Helper()
	var body struct {
		Status, Error string
		Data          T
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if body.Status != "success" {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body.Error)
	}
	return body.Data
}

// query runs an instant query and returns each sample's value by the
// given label.
func query(t *testing.T, prom, q, label string) map[string]float64 {
	t.Helper()
	res := getData[struct {
		Result []struct {
			Metric map[string]string
			Value  [2]any // [time, "value"]
		}
	}](t, prom+"/api/v1/query?query="+url.QueryEscape(q))
	out := map[string]float64{}
	for _, r := range res.Result {
		var v float64
		s, _ := r.Value[1].(string)
		if _, err := fmt.Sscan(s, &v); err != nil {
			t.Fatalf("query %s: value %v: %v", q, r.Value[1], err)
		}
		out[r.Metric[label]] = v
	}
	return out
}

// adminTokenFile writes the admin token the tests' servers and Prometheus
// share to a file in dir, as Prometheus's scrape config reads it.
func adminTokenFile(t *testing.T, dir string) (token, path string) {
	t.Helper()
	token, path = "observability-test-admin-token", filepath.Join(dir, "surge-admin-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return token, path
}
