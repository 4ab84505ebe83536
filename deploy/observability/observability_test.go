// Package observability_test checks the files operators deploy beside
// Surge (this directory): the alert rules and their unit tests and the
// scrape config with Debian's promtool, the Grafana dashboard against the
// metric contract, and, in prometheus_test.go, the real Prometheus
// scraping a real `surge serve`.
//
// promtool and prometheus come from Debian's prometheus package
// (scripts/services.sh installs it). Without them the tests skip on a
// developer's machine and fail under CI: CI must not pass by testing
// nothing.
package observability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// contract is every metric name of the issue-11 contract
// (docs/observability.md's tables, TestContractIsTheDocs; package
// metrics), histograms with their series suffixes. Dashboards and alerts outside the repo rely on these.
var contract = names(
	"surge_purchases_total",
	"surge_purchase_duration_seconds_bucket", "surge_purchase_duration_seconds_sum", "surge_purchase_duration_seconds_count",
	"surge_sale_stock_units",
	"surge_sale_remaining_units",
	"surge_sale_status",
	"surge_sale_stale",
	"surge_order_transitions_total",
	"surge_batch_size_bucket", "surge_batch_size_sum", "surge_batch_size_count",
	"surge_store_commit_duration_seconds_bucket", "surge_store_commit_duration_seconds_sum", "surge_store_commit_duration_seconds_count",
	"surge_store_commit_failures_total",
	"surge_store_commits_total",
	"surge_store_committed_rows_total",
	"surge_connections_open", "surge_connections_idle",
	"surge_connections_refused_total", "surge_connections_reclaimed_total",
	"surge_private_connections_refused_total",
	"surge_buyer_token_checks_total",
	"surge_config_reloads_total",
	"surge_config_last_reload_success_timestamp_seconds",
	"surge_queue_depth",
	"surge_waiting_room_length",
	"surge_waiting_room_admitted_total",
	"surge_breaker_state",
	"surge_cluster_leader",
	"surge_cluster_swept_orders_total",
	"surge_cluster_rebuilds_total",
	"surge_dependency_duration_seconds_bucket", "surge_dependency_duration_seconds_sum", "surge_dependency_duration_seconds_count",
	"surge_build_info",
	"surge_outbox_oldest_age_seconds",
)

// clusterOnly are the contract metrics a node exports only in cluster
// mode.
var clusterOnly = names("surge_breaker_state", "surge_cluster_leader", "surge_cluster_swept_orders_total", "surge_cluster_rebuilds_total",
	"surge_dependency_duration_seconds_bucket", "surge_dependency_duration_seconds_sum", "surge_dependency_duration_seconds_count")

// withEvents are the contract metrics a node exports only when it relays
// order events (--nats-url).
var withEvents = names("surge_outbox_oldest_age_seconds")

func names(n ...string) map[string]bool {
	m := make(map[string]bool, len(n))
	for _, s := range n {
		m[s] = true
	}
	return m
}

// inContract reports whether a metric name is one dashboards may use:
// a contract name, or one of the Go runtime and process collectors'
// (their exact set depends on the Go version).
func inContract(name string) bool {
	return contract[name] || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_")
}

// tool returns the path of a command of Debian's prometheus package.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: install Debian's prometheus package (scripts/services.sh does)", name)
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// run runs a command in this directory and fails the test with its
// output if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	run(t, promtool, "check", "rules", "alerts.yml")
	run(t, promtool, "test", "rules", "alerts_test.yml")

	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ruleExprs(string(b)) {
		for _, name := range metricNames(e) {
			if name != "up" && !inContract(name) {
				t.Errorf("alerts.yml uses %q, not a contract metric, in %s", name, e)
			}
		}
	}
}

// ruleExprs returns the expr fields of a rule file, inline or block
// scalars: enough YAML for alerts.yml without a YAML library.
func ruleExprs(src string) []string {
	var exprs []string
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		indent := len(l) - len(strings.TrimLeft(l, " "))
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "expr:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v != "|" && v != ">" && v != "|-" && v != ">-" {
			exprs = append(exprs, v)
			continue
		}
		var block []string
		for i+1 < len(lines) {
			n := lines[i+1]
			if strings.TrimSpace(n) != "" && len(n)-len(strings.TrimLeft(n, " ")) <= indent {
				break
			}
			block = append(block, strings.TrimSpace(n))
			i++
		}
		exprs = append(exprs, strings.Join(block, " "))
	}
	return exprs
}

func TestScrapeConfig(t *testing.T) {
	promtool := tool(t, "promtool")
	// The shipped file names /etc/prometheus files this machine lacks;
	// prometheus_test.go checks a copy in full, with them in place.
	run(t, promtool, "check", "config", "--syntax-only", "prometheus.yml")
}

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// dashboardExprs returns every query of the dashboard by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard without title or uid: %q %q", d.Title, d.UID)
	}
	exprs := map[string][]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				exprs[p.Title] = append(exprs[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return exprs
}

// grafanaVars are the dashboard's template variables and Grafana's
// built-ins it uses, with values that make each query plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "${sale}", ".*", "$sale", ".*")

func TestGrafanaDashboard(t *testing.T) {
	used := map[string]bool{}
	var all []string
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			e = grafanaVars.Replace(e)
			if strings.Contains(e, "$") {
				t.Errorf("panel %q: unknown variable in %s", title, e)
			}
			all = append(all, e)
			for _, name := range metricNames(e) {
				used[name] = true
				if !inContract(name) {
					t.Errorf("panel %q uses %q, not a contract metric: %s", title, name, e)
				}
			}
		}
	}
	// A panel for every contract metric (a histogram counts once).
	for name := range contract {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !used[name] && !used[base+"_bucket"] && !used[base+"_sum"] && !used[base+"_count"] {
			t.Errorf("no panel shows %s", name)
		}
	}
	// The queries are valid PromQL: promtool parses them as recording
	// rules.
	promtool := tool(t, "promtool")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	slices.Sort(all)
	for i, e := range all {
		q, _ := json.Marshal(e) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, promtool, "check", "rules", f)
}

// metricNames returns the metric names a PromQL expression selects: what
// is left once strings, label matchers, ranges, grouping clauses,
// numbers, functions and keywords are taken out. Enough PromQL for
// checking names; promtool checks the syntax.
func metricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{stringRE, matchersRE, rangeRE, groupingRE} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var found []string
	for _, m := range tokenRE.FindAllStringIndex(expr, -1) {
		tok := expr[m[0]:m[1]]
		if tok[0] >= '0' && tok[0] <= '9' || keywords[strings.ToLower(tok)] {
			continue
		}
		if rest := strings.TrimLeft(expr[m[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		found = append(found, tok)
	}
	return found
}

var (
	stringRE   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	matchersRE = regexp.MustCompile(`\{[^}]*\}`)
	rangeRE    = regexp.MustCompile(`\[[^\]]*\]`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// a number (with a unit or exponent) is one token, so its letters are
	// not taken for a name
	tokenRE  = regexp.MustCompile(`[0-9][0-9A-Za-z_.]*|[A-Za-z_:][A-Za-z0-9_:]*`)
	keywords = names("and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
		"group_left", "group_right", "inf", "nan", "atan2")
)

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (sale) (rate(surge_purchases_total{sale=~"a|b", outcome="x"}[1m])) > 0.2`:                {"surge_purchases_total"},
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) / on (a) group_left (b) y offset 5m`: {"x_bucket", "y"},
		`up{job="surge"} == 0 and 1e3 < bool foo`:                                                        {"up", "foo"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}
