package api_test

import (
	"io"
	"net/http/httptest"
	"runtime/pprof"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	surgehttp "github.com/surgehq/surge/http"
)

// TestSpecPprofRefusals: net/http/pprof, which the ops listener serves,
// refuses requests the spec takes as valid, and the spec listed neither
// answer: seconds with debug (a delta profile is binary only) is a 400,
// and a CPU profile while another runs (two operators, or a continuous
// profiler scraping beside one) a 500, both in plain text. A client
// generated from the spec took either for a server out of contract.
func TestSpecPprofRefusals(t *testing.T) {
	raw, _ := readSpec(t)
	c := newChecker(t, raw)
	reg := prometheus.NewRegistry()
	h := surgehttp.New(stubService{}, surgehttp.Config{AdminToken: adminToken, Logger: quietLog, Gatherer: reg})
	ops := httptest.NewServer(h.Ops(reg, nil))
	t.Cleanup(ops.Close)

	c.do(call{base: ops.URL, method: "GET", path: "/debug/pprof/heap?seconds=1&debug=1", header: admin, want: 400})

	// Another CPU profile runs: the process's own, so that the refusal
	// does not depend on timing.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Skipf("a CPU profile already runs (go test -cpuprofile?): %v", err)
	}
	defer pprof.StopCPUProfile()
	c.do(call{base: ops.URL, method: "GET", path: "/debug/pprof/profile?seconds=1", header: admin, want: 500})
}
