package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/sqlite"
)

func requestIDAPI(t *testing.T, opt surgehttp.RequestOptions) http.Handler {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, st, engine.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	return surgehttp.Requests(surgehttp.New(eng, surgehttp.Config{Logger: quietLog}), opt)
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-z]+$`)

// TestRequestID: a sane X-Request-ID is echoed; any other gets a new id.
func TestRequestID(t *testing.T) {
	h := requestIDAPI(t, surgehttp.RequestOptions{})
	get := func(ids ...string) string {
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		for _, id := range ids {
			r.Header.Add("X-Request-ID", id)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Result().Header.Values("X-Request-ID"); len(got) != 1 {
			t.Fatalf("X-Request-ID %q: want one", got)
		}
		return w.Result().Header.Get("X-Request-ID")
	}
	for _, id := range []string{"a", "req-42", "0af7651916cd43dd8448eb211c80319c", "a.b_c:d-E", strings.Repeat("x", 128)} {
		if got := get(id); got != id {
			t.Errorf("sane id %q answered %q", id, got)
		}
	}
	seen := map[string]bool{}
	for _, ids := range [][]string{nil, {""}, {"has space"}, {"<script>"}, {"ünï"}, {strings.Repeat("x", 129)}, {"a", "b"}} {
		got := get(ids...)
		if !generatedID.MatchString(got) || seen[got] {
			t.Errorf("id %q answered %q: want a new generated id", ids, got)
		}
		seen[got] = true
	}
}

// TestAccessLog: one line per request with its fields, the ids among them.
func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(surgehttp.LogHandler(slog.NewJSONHandler(&buf, nil)))
	h := requestIDAPI(t, surgehttp.RequestOptions{Logger: log, AccessLog: true})
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	r := httptest.NewRequest(http.MethodGet, "/v1/sales/nope", nil).WithContext(ctx)
	r.Header.Set("X-Request-ID", "req-1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("log lines %q, want one", lines)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "request", "method": "GET", "path": "/v1/sales/nope", "status": 404.0,
		"bytes": float64(w.Body.Len()), "request_id": "req-1", "trace_id": tid.String(), "client": "192.0.2.1"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, rec[k], v, lines[0])
		}
	}
	if _, ok := rec["duration"]; !ok {
		t.Errorf("no duration: %s", lines[0])
	}

	// Off by default.
	h = requestIDAPI(t, surgehttp.RequestOptions{Logger: log})
	buf.Reset()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if buf.Len() != 0 {
		t.Errorf("access log without AccessLog: %s", buf.String())
	}
}

// BenchmarkRequests is the sold-out purchase with and without request ids
// (each request without an X-Request-ID, so one is generated), in one run.
func BenchmarkRequests(b *testing.B) {
	for _, c := range []struct {
		name string
		wrap func(http.Handler) http.Handler
	}{
		{"bare", func(h http.Handler) http.Handler { return h }},
		{"request-ids", func(h http.Handler) http.Handler { return surgehttp.Requests(h, surgehttp.RequestOptions{}) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			h, eng, _ := benchAPI(b, 1)
			if out, err := eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: "bench", Purchase: surge.Purchase{UserID: "first", Quantity: 1}}); err != nil || out.Code != surge.CodeReserved {
				b.Fatalf("first purchase: %v %v", out.Code, err)
			}
			serve(b, c.wrap(h), http.StatusConflict)
		})
	}
}

// TestRequestIDPerConnection: over a real server, every request of a
// keep-alive HTTP/1 connection and every concurrent stream of an HTTP/2
// connection sees its own id in its context, and that id is the one
// echoed.
func TestRequestIDPerConnection(t *testing.T) {
	const n = 8
	var arrived sync.WaitGroup
	h2 := make(chan struct{})
	srv := httptest.NewUnstartedServer(surgehttp.Requests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 { // hold every stream until all of them are in
			arrived.Done()
			<-h2
		}
		_, _ = io.WriteString(w, surgehttp.RequestID(r.Context()))
	}), surgehttp.RequestOptions{Logger: quietLog}))
	srv.Config.ConnContext = surgehttp.ConnContext
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()

	get := func(c *http.Client, id string) (body, echoed string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if id != "" {
			r.Header.Set("X-Request-ID", id)
		}
		resp, err := c.Do(r)
		if err != nil {
			t.Error(err)
			return "", ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("X-Request-ID")
	}

	// HTTP/1, one connection: ids given and generated, in turn.
	tr1 := &http.Transport{MaxConnsPerHost: 1}
	defer tr1.CloseIdleConnections()
	c1 := &http.Client{Transport: tr1}
	seen := map[string]bool{}
	for i := range 2 * n {
		id := ""
		if i%2 == 0 {
			id = fmt.Sprintf("h1-%d", i)
		}
		body, echoed := get(c1, id)
		if body != echoed || (id != "" && body != id) || body == "" || seen[body] {
			t.Errorf("http/1 request %d (id %q): context %q, echoed %q", i, id, body, echoed)
		}
		seen[body] = true
	}

	// HTTP/2, one connection, n streams at once.
	tr2 := &http.Transport{Protocols: new(http.Protocols)}
	tr2.Protocols.SetUnencryptedHTTP2(true)
	defer tr2.CloseIdleConnections()
	c2 := &http.Client{Transport: tr2}
	arrived.Add(n)
	go func() { arrived.Wait(); close(h2) }()
	var done sync.WaitGroup
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			id := ""
			if i%2 == 0 {
				id = fmt.Sprintf("h2-%d", i)
			}
			body, echoed := get(c2, id)
			if body != echoed || (id != "" && body != id) || body == "" {
				t.Errorf("http/2 stream %d (id %q): context %q, echoed %q", i, id, body, echoed)
			}
		}()
	}
	done.Wait()
}
