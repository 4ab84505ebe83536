package observability_test

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestContractIsTheDocs: the contract the dashboard and alert tests check
// against is docs/observability.md's, every metric of its tables (and the
// outbox's oldest age, named contract in its prose). The list here had
// fallen behind the docs: the store's commits and rows, the connections,
// the buyer token checks and the configuration reloads were documented
// as contract metrics, "a panel for every contract metric", yet the
// dashboard had none for them and its test did not notice.
func TestContractIsTheDocs(t *testing.T) {
	documented := docContract(t)
	for name := range documented {
		if !contract[name] {
			t.Errorf("docs/observability.md lists %s; the contract checked here lacks it", name)
		}
	}
	for name := range contract {
		if !documented[name] {
			t.Errorf("the contract checked here has %s; docs/observability.md does not list it", name)
		}
	}
}

// metricRowRE matches a row of the docs' metric tables: its names (in
// backquotes) and its type.
var metricRowRE = regexp.MustCompile("(?m)^\\| (`surge_[^|]*)\\| (counter|gauge|histogram) \\|")

// docContract reads the contract's metric names out of the docs' tables,
// histograms with their series' suffixes.
func docContract(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	found := names("surge_outbox_oldest_age_seconds")
	for _, m := range metricRowRE.FindAllStringSubmatch(string(b), -1) {
		for _, n := range regexp.MustCompile("`(surge_[a-z_]+)`").FindAllStringSubmatch(m[1], -1) {
			if m[2] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					found[n[1]+s] = true
				}
				continue
			}
			found[n[1]] = true
		}
	}
	if len(found) < 20 {
		t.Fatalf("read %d metric names from docs/observability.md (%v): its tables changed shape", len(found),
			slices.Sorted(maps.Keys(found)))
	}
	return found
}

// withPrivateListeners are the contract metrics a node exports only with
// --admin-addr or --debug-addr.
var withPrivateListeners = names("surge_private_connections_refused_total")
