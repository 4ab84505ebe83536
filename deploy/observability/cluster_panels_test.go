package observability_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// TestGrafanaSalesInClusterMode: the Grafana dashboard's sale panels
// ("Units remaining", "Sold") in cluster mode, where the shipped scrape
// config lists every node (prometheus.yml says so) and every node exports
// the cluster-wide stock and remaining of every sale. Two nodes, a sale of
// 10 units, 3 sold: the panels must show 10, 7 and 3, not one copy per
// node. Then one node cut off from Redis and PostgreSQL: its figures are
// the last known, and "Stale figures" must say so (the dashboard had no
// panel for it: frozen units looked current).
func TestGrafanaSalesInClusterMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs surge and prometheus")
	}
	promBin := tool(t, "prometheus")
	dir := t.TempDir()
	token, tokenFile := adminTokenFile(t, dir)
	ns := servicetest.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, servicetest.PostgresURL(), postgres.Options{Schema: ns})
	if err != nil {
		t.Fatalf("PostgreSQL (run scripts/services.sh): %v", err)
	}
	db.Close()
	bin := buildSurge(t, dir)
	node := func(id, redisURL, pgURL string) string {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, id), "--http-addr", addr, "--insecure-user-header",
			"--redis-url", redisURL, "--postgres-url", pgURL+"&search_path="+ns,
			"--redis-prefix", ns, "--node-id", id)
		cmd.Env = append(cleanEnv(), "SURGE_ADMIN_TOKEN="+token)
		logs := start(t, cmd, filepath.Join(dir, id+".log"))
		waitHTTP(t, "surge "+id, "http://"+addr+"/readyz", logs)
		return addr
	}
	// Node a reaches Redis and PostgreSQL through proxies, to cut them.
	redisPx := servicetest.RedisProxy(t)
	pgURL, err := url.Parse(servicetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	pgPx := servicetest.NewProxy(t, pgURL.Host)
	pgURL.Host = pgPx.Addr
	a, b := node("a", "redis://"+redisPx.Addr+"/0", pgURL.String()), node("b", servicetest.RedisURL(), servicetest.PostgresURL())
	adminPost(t, "http://"+a+"/v1/sales", token, `{"id":"obs","name":"Observability test","stock":10,"per_user_limit":1}`)
	for i := range 3 {
		for deadline := time.Now().Add(30 * time.Second); ; {
			req, _ := http.NewRequest("POST", "http://"+[]string{a, b}[i%2]+"/v1/sales/obs/purchases", nil)
			req.Header.Set("X-User-ID", fmt.Sprintf("buyer-%d", i))
			req.Header.Set("Idempotency-Key", fmt.Sprintf("k%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 201 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("purchase %d: %d", i, resp.StatusCode)
			}
			time.Sleep(100 * time.Millisecond) // node b learning of the sale
		}
	}

	cfg := renderConfig(t, map[string]string{
		"scrape_interval: 5s":               "scrape_interval: 1s",
		"evaluation_interval: 5s":           "evaluation_interval: 1s",
		"/etc/prometheus/surge-alerts.yml":  abs(t, "alerts.yml"),
		"/etc/prometheus/surge-admin-token": tokenFile,
		"127.0.0.1:8080":                    a + "\n          - " + b,
	})
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := "http://" + startPrometheus(t, promBin, cfgFile, dir)
	for deadline := time.Now().Add(60 * time.Second); ; {
		up := query(t, prom, `up{job="surge"}`, "instance")
		n := query(t, prom, `count(surge_sale_remaining_units{sale="obs"} == 7)`, "")
		if up[a] == 1 && up[b] == 1 && n[""] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("both nodes scraped with remaining 7: up %v, %v", up, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
	exprs := dashboardExprs(t)
	// "Stale figures": 0 while both nodes refresh the sale (1 would say
	// the units shown may be a node's last known, not current).
	want := map[string][]float64{"Units remaining": {7, 10}, "Sold": {3}, "Stale figures": {0}}
	for title, ws := range want {
		if len(exprs[title]) != len(ws) {
			t.Errorf("panel %q has queries %q, want %d", title, exprs[title], len(ws))
			continue
		}
		for i, e := range exprs[title] {
			got := query(t, prom, grafanaVars.Replace(e), "sale")["obs"]
			if got != ws[i] {
				t.Errorf("panel %q, query %s: %v for sale obs, want %v (two nodes)", title, e, got, ws[i])
			}
		}
	}
	// Node a cut off from Redis and PostgreSQL: its figures of obs are
	// the last known, and the panel must say so, then stop once they are
	// refreshed again.
	if len(exprs["Stale figures"]) == 0 {
		t.FailNow() // said above
	}
	stale := grafanaVars.Replace(exprs["Stale figures"][0])
	waitStale := func(want float64, what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			got, ok := query(t, prom, stale, "sale")["obs"]
			if ok && got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: panel \"Stale figures\", query %s: %v for sale obs, want %v", what, stale, got, want)
			}
		}
	}
	redisPx.Cut()
	pgPx.Cut()
	waitStale(1, "node a cut off from Redis and PostgreSQL")
	redisPx.Restore()
	pgPx.Restore()
	waitStale(0, "once they are back")
}
