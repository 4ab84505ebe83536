package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/surgehq/surge/servicetest"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it keeps every span
// exported to it.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []*span
}

// span is an exported span with its instrumentation scope.
type span struct {
	*tracepb.Span
	scope string
}

func startReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want protobuf on /v1/traces", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		b, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					rc.spans = append(rc.spans, &span{Span: s, scope: ss.GetScope().GetName()})
				}
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *otlpReceiver) all() []*span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*span(nil), rc.spans...)
}

// traceOnePurchase runs serve with tracing on (exporting to a receiver
// it starts), makes one sale and one purchase whose request carries a
// W3C traceparent, stops the server (which flushes the spans) and returns
// the spans and the purchase's HTTP span, batch span and store span,
// after checking the tree: HTTP span (child of the caller's) ─link→
// batch ─parent→ store.Reserve.
func traceOnePurchase(t *testing.T, args ...string) (spans []*span, commit *span) {
	rc := startReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rc.url)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	const token = "trace-test-admin-token"
	srv := startServe(t, append([]string{"--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--insecure-user-header", "--log-level", "error"}, args...)...)
	post := func(path string, body string, h map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.base+path, strings.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("/v1/sales", `{"id":"traced","name":"Traced","stock":10}`, map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create sale: %d", resp.StatusCode)
	}
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp := post("/v1/sales/traced/purchases", `{"quantity":1}`, map[string]string{
		"X-User-ID": "alice", "traceparent": "00-" + traceID + "-" + parentID + "-01", "X-Request-ID": "purchase-1",
		// Forged: the server trusts no proxy (TestTraceClientAddress).
		"X-Forwarded-For": forgedClient})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Request-ID") != "purchase-1" {
		t.Fatalf("purchase: %d, X-Request-ID %q", resp.StatusCode, resp.Header.Get("X-Request-ID"))
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited %d: %s", code, srv.stderr)
	}
	spans = rc.all()
	hexID := func(b []byte) string { return hex.EncodeToString(b) }
	var httpSpan, batch *span
	for _, s := range spans {
		if hexID(s.TraceId) == traceID && s.Name == "POST /v1/sales/{id}/purchases" {
			httpSpan = s
		}
	}
	if httpSpan == nil {
		t.Fatalf("no HTTP span of the purchase in trace %s among %d spans: %v", traceID, len(spans), names(spans))
	}
	if hexID(httpSpan.ParentSpanId) != parentID {
		t.Errorf("HTTP span's parent %x, want the caller's %s", httpSpan.ParentSpanId, parentID)
	}
	for _, s := range spans {
		for _, l := range s.Links {
			if s.Name == "batch" && bytes.Equal(l.TraceId, httpSpan.TraceId) && bytes.Equal(l.SpanId, httpSpan.SpanId) {
				batch = s
			}
		}
	}
	if batch == nil {
		t.Fatalf("no batch span linked to the HTTP span: %v", names(spans))
	}
	if len(batch.ParentSpanId) != 0 {
		t.Errorf("batch span has a parent %x, want a root", batch.ParentSpanId)
	}
	for _, s := range spans {
		if s.Name == "store.Reserve" && bytes.Equal(s.ParentSpanId, batch.SpanId) {
			commit = s
		}
	}
	if commit == nil {
		t.Fatalf("no store.Reserve span under the batch span: %v", names(spans))
	}
	return spans, commit
}

// forgedClient is the X-Forwarded-For the traced purchase sends.
const forgedClient = "203.0.113.9"

// TestTraceClientAddress: the HTTP span's client.address is the address
// the access log and the rate limits use, the connection's unless a
// --trusted-proxies proxy forwarded the request, not whatever
// X-Forwarded-For any client sends: a buyer must not be able to put
// another address on the traces of its requests.
func TestTraceClientAddress(t *testing.T) {
	spans, _ := traceOnePurchase(t, "--data-dir", t.TempDir())
	for _, s := range spans {
		if s.Name != "POST /v1/sales/{id}/purchases" {
			continue
		}
		found := false
		for _, a := range s.Attributes {
			found = found || a.Key == "client.address"
			if a.Key == "client.address" && a.Value.GetStringValue() != "127.0.0.1" {
				t.Errorf("the purchase's span says client.address %q, from the X-Forwarded-For the client sent (no proxy is trusted); the connection came from 127.0.0.1",
					a.Value.GetStringValue())
			}
		}
		if !found {
			t.Errorf("the purchase's span has no client.address")
		}
	}
}

func names(spans []*span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.scope+": "+s.Name)
	}
	return out
}

// TestTraceEmbedded: the span tree of one purchase in embedded mode,
// exported over OTLP/HTTP.
func TestTraceEmbedded(t *testing.T) {
	traceOnePurchase(t, "--data-dir", t.TempDir())
}

// TestTraceCluster: in cluster mode the Redis and PostgreSQL calls of the
// batch are spans under its store call.
func TestTraceCluster(t *testing.T) {
	spans, commit := traceOnePurchase(t, clusterArgs(t)...)
	under := map[string]bool{string(commit.SpanId): true}
	// Spans arrive in any order: grow the subtree until it stops.
	for grew := true; grew; {
		grew = false
		for _, s := range spans {
			if under[string(s.ParentSpanId)] && !under[string(s.SpanId)] {
				under[string(s.SpanId)], grew = true, true
			}
		}
	}
	var redis, pg bool
	for _, s := range spans {
		if !under[string(s.SpanId)] || bytes.Equal(s.SpanId, commit.SpanId) {
			continue
		}
		redis = redis || strings.Contains(s.scope, "redisotel")
		pg = pg || strings.Contains(s.scope, "otelpgx")
	}
	if !redis || !pg {
		t.Errorf("under store.Reserve: Redis spans %v, PostgreSQL spans %v; want both (spans: %v)", redis, pg, names(spans))
	}
}

// TestTraceTrustParent: behind a gateway that sets every request's
// traceparent, --trace-trust-parent (here from the config file) has its
// sampled flag decide whether a request is traced, whatever the sampler
// decides of roots (parentbased_always_off keeps none of its own); a
// reload turns it off and on again, from the next request.
func TestTraceTrustParent(t *testing.T) {
	e := startParentEnv(t, "trace-trust-parent: true\n")
	const (
		notSampled = "11111111111111111111111111111111"
		sampled    = "22222222222222222222222222222222"
		untrusted  = "33333333333333333333333333333333"
		again      = "44444444444444444444444444444444"
	)
	e.get(notSampled, "00")
	e.get(sampled, "01")
	e.waitTraced(sampled)
	e.write("trace-trust-parent: false\n")
	e.srv.reload(e.args)
	e.get(untrusted, "01")
	e.write("trace-trust-parent: true\n")
	e.srv.reload(e.args)
	e.get(again, "01")
	e.waitTraced(again) // exported after anything sent before it
	if e.traced(notSampled) {
		t.Errorf("a request whose trusted traceparent said not sampled (-00) was traced")
	}
	if e.traced(untrusted) {
		t.Errorf("after a reload turned trace-trust-parent off, a request whose traceparent said sampled was traced; want the sampler (parentbased_always_off) to decide")
	}
}

// TestTraceTrustParentOnlyFromProxies: with --trusted-proxies naming the
// gateway, --trace-trust-parent believes the sampled flag of the
// traceparents the gateway sends, and of no other caller's: a client that
// reaches the server past the gateway is no more believed about sampling
// than about its address (X-Forwarded-For). It trusted every caller's
// flag, so any client let through to the server could have each of its
// requests traced and exported whatever the sampler said. Without
// --trusted-proxies every caller's flag is believed, as before
// (TestTraceTrustParent).
func TestTraceTrustParentOnlyFromProxies(t *testing.T) {
	// The gateway is 192.0.2.1 (TEST-NET-1); the test's client, 127.0.0.1, is not it.
	e := startParentEnv(t, "trace-trust-parent: true\ntrusted-proxies: 192.0.2.1\n")
	const (
		direct  = "55555555555555555555555555555555"
		gateway = "66666666666666666666666666666666"
	)
	e.get(direct, "01")
	// Now the test's client is the gateway: its flag decides.
	e.write("trace-trust-parent: true\ntrusted-proxies: 192.0.2.1,127.0.0.1\n")
	e.srv.reload(e.args)
	e.get(gateway, "01")
	e.waitTraced(gateway) // exported after anything sent before it
	if e.traced(direct) {
		t.Errorf("a request from 127.0.0.1, not among --trusted-proxies (192.0.2.1), was traced because its traceparent said sampled; want the sampler (parentbased_always_off) to decide for callers other than the trusted proxies")
	}
}

// parentEnv is a served binary exporting its spans to rc, with no root of
// its own sampled (parentbased_always_off), so only a believed
// traceparent's sampled flag gets a request traced; write sets its config
// file's body, which srv.reload(args) applies.
type parentEnv struct {
	t    *testing.T
	rc   *otlpReceiver
	srv  *server
	args []string
	cfg  string
}

func startParentEnv(t *testing.T, config string) *parentEnv {
	t.Helper()
	e := &parentEnv{t: t, rc: startReceiver(t)}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", e.rc.url)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
	dir := t.TempDir()
	e.cfg = filepath.Join(dir, "surge.yaml")
	e.write(config)
	e.args = []string{"--config", e.cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--admin-token", "trace-trust-admin-token"}
	var logBuf servicetest.Log
	e.srv = startReloadable(t, e.args, &logBuf)
	return e
}

func (e *parentEnv) write(body string) {
	e.t.Helper()
	if err := os.WriteFile(e.cfg, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// get sends GET /v1/sales with a traceparent of traceID and flags.
func (e *parentEnv) get(traceID, flags string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.url()+"/v1/sales", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-"+flags)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
}

func (e *parentEnv) traced(traceID string) bool {
	for _, s := range e.rc.all() {
		if hex.EncodeToString(s.TraceId) == traceID {
			return true
		}
	}
	return false
}

func (e *parentEnv) waitTraced(traceID string) {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !e.traced(traceID) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !e.traced(traceID) {
		e.t.Fatalf("a request whose believed traceparent said sampled (trace %s) was not traced within 10 s (--trace-trust-parent, OTEL_TRACES_SAMPLER=parentbased_always_off); spans: %v", traceID, names(e.rc.all()))
	}
}
