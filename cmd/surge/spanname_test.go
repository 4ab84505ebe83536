package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestSpanNameNotTheClientsMethod: the span of a request refused before
// routing (here an unclean path) was named by its method as sent, and a
// method is any token a client likes, of any length: each request could
// add a span name of its own choosing to the trace backend, whose lists
// of operations grew without bound. A method HTTP does not define names
// the span "HTTP", as OpenTelemetry's conventions say.
func TestSpanNameNotTheClientsMethod(t *testing.T) {
	rc := startReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rc.url)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	srv := startServe(t, "--http-addr", "127.0.0.1:0", "--admin-token", "span-name-admin-token", "--data-dir", t.TempDir(),
		"--log-level", "error")
	methods := []string{"BREW-" + strings.Repeat("x", 2000), "BREW-2", http.MethodGet}
	for _, m := range methods {
		req, err := http.NewRequest(m, srv.base+"/v1/sales/../x", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%.10s /v1/sales/../x: %d, want 404", m, resp.StatusCode)
		}
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited %d: %s", code, srv.stderr)
	}
	var got []string
	for _, s := range rc.all() {
		if s.scope == "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp" {
			got = append(got, s.Name)
		}
	}
	want := []string{"HTTP", "HTTP", http.MethodGet}
	if len(got) != len(want) {
		t.Fatalf("HTTP spans %v, want %d", names(rc.all()), len(want))
	}
	for i, name := range got {
		if name != want[i] {
			t.Errorf("request %d (%.12s…): its span is named %.40q (%d bytes), want %q", i, methods[i], name, len(name), want[i])
		}
	}
}
