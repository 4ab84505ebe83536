package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/content"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testtoken"
)

const specFile = "openapi.yaml"

// methods are the operation keys of an OpenAPI path item.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// specDoc is openapi.yaml read as plain YAML, for the structural checks.
type specDoc struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components map[string]any            `yaml:"components"`
}

func readSpec(t *testing.T) (raw []byte, doc specDoc) {
	t.Helper()
	raw, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", specFile, err)
	}
	return raw, doc
}

// specOps returns the spec's operations as "METHOD /path", split into
// those of the API's routes and those of the ops listener (x-surge-listener: ops).
func specOps(doc specDoc) (routes, ops map[string]bool) {
	routes, ops = map[string]bool{}, map[string]bool{}
	for path, item := range doc.Paths {
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			key := strings.ToUpper(m) + " " + path
			if op["x-surge-listener"] == "ops" {
				ops[key] = true
			} else {
				routes[key] = true
			}
		}
	}
	return routes, ops
}

// TestSpecRoutes: the spec's operations are exactly the server's routes.
// A route registered with a method must be an operation; a method-less
// one is either the 405 fallback of a path that has methods, the
// catch-all "/", or a delegation to another handler (the dashboard),
// whose paths the spec must describe and the scenario must answer.
func TestSpecRoutes(t *testing.T) {
	_, doc := readSpec(t)
	specRoutes, _ := specOps(doc)
	srv := surgehttp.New(stubService{}, surgehttp.Config{
		AdminToken: adminToken, Logger: quietLog, Gatherer: prometheus.NewRegistry(),
		Payments: surgehttp.Payments{Secrets: []string{hookSecret}},
	})
	for _, p := range checkRoutes(srv.Patterns(), specRoutes) {
		t.Error(p)
	}
}

// checkRoutes returns what differs between the server's route patterns
// and the spec's operations ("METHOD /path").
func checkRoutes(patterns []string, specRoutes map[string]bool) (problems []string) {
	withMethod := map[string]bool{}
	pathsWithMethod := map[string]bool{}
	for _, p := range patterns {
		if _, path, ok := strings.Cut(p, " "); ok {
			withMethod[p] = true
			pathsWithMethod[path] = true
			if !specRoutes[p] {
				problems = append(problems, fmt.Sprintf("route %q is not in %s", p, specFile))
			}
		}
	}
	var delegated []string
	for _, p := range patterns {
		if !strings.Contains(p, " ") && p != "/" && !pathsWithMethod[p] {
			delegated = append(delegated, p)
		}
	}
	under := func(path, d string) bool {
		return path == d || (strings.HasSuffix(d, "/") && strings.HasPrefix(path, d))
	}
	for op := range specRoutes {
		_, path, _ := strings.Cut(op, " ")
		if !withMethod[op] && !slices.ContainsFunc(delegated, func(d string) bool { return under(path, d) }) {
			problems = append(problems, fmt.Sprintf("%s describes %q, which the server does not route", specFile, op))
		}
	}
	for _, d := range delegated {
		found := false
		for op := range specRoutes {
			_, path, _ := strings.Cut(op, " ")
			found = found || under(path, d)
		}
		if !found {
			problems = append(problems, fmt.Sprintf("the server hands %q to another handler, and %s describes nothing there", d, specFile))
		}
	}
	slices.Sort(problems)
	return problems
}

// TestSpecRoutesCatchesDrift: the route check fails both ways.
func TestSpecRoutesCatchesDrift(t *testing.T) {
	spec := map[string]bool{"GET /a": true, "GET /d/x": true}
	for _, tc := range []struct {
		name     string
		patterns []string
	}{
		{"route missing from the spec", []string{"GET /a", "POST /a", "/d/"}},
		{"operation without a route", []string{"GET /a"}},
		{"delegation the spec does not describe", []string{"GET /a", "/d/", "/e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p := checkRoutes(tc.patterns, spec); len(p) != 1 {
				t.Errorf("checkRoutes(%v): %q, want one problem", tc.patterns, p)
			}
		})
	}
	if p := checkRoutes([]string{"GET /a", "/a", "/d/", "/"}, spec); len(p) != 0 {
		t.Errorf("checkRoutes of matching routes: %q", p)
	}
}

// TestSpecErrorCodes: every error code the code declares is one some
// answer of the spec may carry, and each answer's codes are in the error
// object's list of codes.
func TestSpecErrorCodes(t *testing.T) {
	_, doc := readSpec(t)
	answered := map[string]bool{}
	for _, item := range doc.Paths {
		collectCodes(item, answered)
	}
	collectCodes(doc.Components["responses"], answered)
	master := map[string]bool{}
	collectCodes(doc.Components["schemas"].(map[string]any)["Error"], master)
	if len(answered) == 0 || len(master) == 0 {
		t.Fatal("found no error codes in the spec")
	}
	for c := range answered {
		if !master[c] {
			t.Errorf("an answer lists %q, which is not in components.schemas.Error's codes", c)
		}
	}
	declared := declaredCodes(t)
	if len(declared) < 20 {
		t.Fatalf("found only %d declared codes: %v", len(declared), declared)
	}
	for _, c := range declared {
		if !answered[c] {
			t.Errorf("error code %q (declared in the code) is answered by no operation of %s", c, specFile)
		}
	}
}

// collectCodes adds the enum values of every error.code below v.
func collectCodes(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if code, ok := x["code"].(map[string]any); ok {
			if enum, ok := code["enum"].([]any); ok {
				for _, e := range enum {
					into[fmt.Sprint(e)] = true
				}
			}
		}
		for _, c := range x {
			collectCodes(c, into)
		}
	case []any:
		for _, c := range x {
			collectCodes(c, into)
		}
	}
}

// declaredCodes reads the error codes from the source: the constants of
// type Code in the root package (but reserved, a success), and the
// constants named code… in package http (codes it answers itself).
func declaredCodes(t *testing.T) []string {
	t.Helper()
	var codes []string
	add := func(dir string, want func(name string, typ ast.Expr) bool) {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range file.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, s := range gd.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i >= len(vs.Values) || !want(n.Name, vs.Type) {
							continue
						}
						lit, ok := vs.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						c, _ := strconv.Unquote(lit.Value)
						codes = append(codes, c)
					}
				}
			}
		}
	}
	add("..", func(name string, typ ast.Expr) bool {
		id, ok := typ.(*ast.Ident)
		return ok && id.Name == "Code" && name != "CodeReserved"
	})
	add("../http", func(name string, _ ast.Expr) bool {
		return len(name) > 4 && strings.HasPrefix(name, "code") && name[4] >= 'A' && name[4] <= 'Z'
	})
	slices.Sort(codes)
	return slices.Compact(codes)
}

// --- the scenario ---

const (
	adminToken = "openapi-admin-token-0123456789"
	hookSecret = "whsec_openapi_0123456789abcdef"
)

var (
	quietLog   = slog.New(slog.DiscardHandler)
	jwtSecret  = []byte("0123456789abcdef0123456789abcdef")
	roomSecret = []byte("waiting-room test secret, 32 b..")
	epoch      = time.Date(2031, time.March, 14, 9, 26, 53, 0, time.UTC)
)

// client reads redirects (the dashboard's sign-in answers 303) instead
// of following them.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// checker sends requests to the servers of the scenario and validates
// every request and answer against the spec.
type checker struct {
	t  *testing.T
	v  validator.Validator
	mu sync.Mutex
	// answered: "METHOD /path-template" → statuses seen.
	answered map[string]map[int]bool
}

func newChecker(t *testing.T, spec []byte) *checker {
	t.Helper()
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatalf("%s: %v", specFile, err)
	}
	v, errs := validator.NewValidator(doc, config.WithBodyDecoder("application/x-ndjson", content.DecoderFunc(decodeNDJSON)))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", specFile, errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s is not valid OpenAPI: %v", specFile, e)
		}
		t.FailNow()
	}
	return &checker{t: t, v: v, answered: map[string]map[int]bool{}}
}

// decodeNDJSON reads an NDJSON body as the array of its lines, which the
// spec's schema of the export describes.
func decodeNDJSON(in *content.DecodeInput) (any, error) {
	lines := []any{}
	dec := json.NewDecoder(in.Body)
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			return lines, nil
		} else if err != nil {
			return nil, err
		}
		lines = append(lines, v)
	}
}

// call is one request of the scenario.
type call struct {
	base, method, path, body string
	header                   http.Header
	// want is the status expected.
	want int
	// invalid: the request breaks the spec on purpose (no credentials, a
	// field the schema refuses), and the validator must say so.
	invalid bool
	// stream: read the answer up to its first event, then hang up.
	stream bool
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) errorCode() string {
	var e api.ErrorBody
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

func (c *checker) newRequest(ctx context.Context, k call) *http.Request {
	var body io.Reader
	if k.body != "" {
		body = strings.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, k.base+k.path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for name, vs := range k.header {
		req.Header[name] = vs
	}
	if k.body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func (c *checker) do(k call) answer {
	c.t.Helper()
	a, hangUp := c.open(k)
	hangUp()
	return a
}

// open sends k and reads its answer (for a stream, up to its first
// event); hangUp ends the request.
func (c *checker) open(k call) (a answer, hangUp func()) {
	t := c.t
	t.Helper()
	what := k.method + " " + k.path
	// The validator reads the body: it gets a request of its own.
	reqOK, reqErrs := c.v.ValidateHttpRequestSync(c.newRequest(context.Background(), k))
	switch {
	case k.invalid && reqOK:
		t.Errorf("%s: the spec accepts a request the scenario sends as invalid", what)
	case !k.invalid && !reqOK:
		for _, e := range reqErrs {
			t.Errorf("%s: request does not follow the spec: %s", what, describe(e))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req := c.newRequest(ctx, k)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s: %v", what, err)
	}
	hangUp = func() {
		cancel()
		resp.Body.Close()
	}
	var body []byte
	if k.stream {
		body = readFirstEvent(t, resp.Body)
	} else if body, err = io.ReadAll(resp.Body); err != nil {
		hangUp()
		t.Fatalf("%s: read answer: %v", what, err)
	}
	a = answer{status: resp.StatusCode, header: resp.Header, body: body}
	if a.status != k.want {
		t.Errorf("%s: HTTP %d %s, want %d", what, a.status, bytes.TrimSpace(body), k.want)
	}
	c.validateAnswer(req, resp, body, what)
	return a, hangUp
}

// validateAnswer checks an answer (whose body was read) against the spec.
func (c *checker) validateAnswer(req *http.Request, resp *http.Response, body []byte, what string) {
	c.t.Helper()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	ok, errs := c.v.ValidateHttpResponse(req, resp)
	if !ok {
		for _, e := range errs {
			c.t.Errorf("%s: HTTP %d %s: answer does not follow the spec: %s", what, resp.StatusCode, bytes.TrimSpace(body), describe(e))
		}
	}
	c.record(req, resp.StatusCode)
}

// record notes that the operation of req answered status.
func (c *checker) record(req *http.Request, status int) {
	tmpl := templateOf(req.URL.Path)
	key := req.Method + " " + tmpl
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answered[key] == nil {
		c.answered[key] = map[int]bool{}
	}
	c.answered[key][status] = true
}

// templateOf maps a request path to the spec's path template.
func templateOf(p string) string {
	seg := strings.Split(p, "/")
	switch {
	case len(seg) >= 4 && seg[1] == "v1" && (seg[2] == "sales" || seg[2] == "orders"):
		seg[3] = "{id}"
	case len(seg) == 4 && seg[1] == "debug" && seg[2] == "pprof" && seg[3] != "":
		seg[3] = "{profile}"
	}
	return strings.Join(seg, "/")
}

// describe says what the validator found wrong, with the schema's reasons.
func describe(e *verrors.ValidationError) string {
	s := e.Message + ": " + e.Reason
	for _, f := range e.SchemaValidationErrors {
		s += "; " + f.FieldPath + ": " + f.Reason
	}
	return s
}

// readFirstEvent reads a stream up to the end of its first event.
func readFirstEvent(t *testing.T, r io.Reader) []byte {
	t.Helper()
	br := bufio.NewReader(r)
	var out []byte
	for {
		line, err := br.ReadBytes('\n')
		out = append(out, line...)
		if bytes.HasPrefix(line, []byte("data:")) {
			if rest, err := br.ReadBytes('\n'); err == nil {
				out = append(out, rest...)
			}
			return out
		}
		if err != nil {
			return out
		}
	}
}

// validateEvents checks the data of each event of a queue stream as the
// JSON answer of GET …/queue it is documented to be: a Queue object, or
// for an error event the error answer of GET …/queue/events that carries
// its code (sale_not_found is a 404, unavailable a 503, …), a code the
// stream's description in the spec must name.
func (c *checker) validateEvents(base, saleID string, stream []byte) (events []string) {
	c.t.Helper()
	var name string
	for line := range strings.Lines(string(stream)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
			events = append(events, name)
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			noStore := http.Header{"Cache-Control": {"no-store"}}
			if name != "error" {
				c.validateAs(base, "GET", "/v1/sales/"+saleID+"/queue", http.StatusOK, noStore, data, "event "+name)
				continue
			}
			var body api.ErrorBody
			if err := json.Unmarshal(data, &body); err != nil {
				c.t.Errorf("error event %s: %v", data, err)
				continue
			}
			status, ok := c.streamErrorStatus(body.Error.Code)
			if !ok {
				continue
			}
			h := noStore
			if status == http.StatusServiceUnavailable {
				// An event has no headers; the spec's Retry-After of
				// the answer is the second the description tells.
				h = http.Header{"Cache-Control": {"no-store"}, "Retry-After": {"1"}}
			}
			c.validateAs(base, "GET", "/v1/sales/"+saleID+"/queue/events", status, h, data, "error event "+body.Error.Code)
		}
	}
	return events
}

// streamErrorStatus is the status of the answer of GET …/queue/events
// whose codes (in the spec) include code, which an error event carrying
// code is validated as; false, with the test failed, if no answer has
// it, or the stream's description does not name it.
func (c *checker) streamErrorStatus(code string) (int, bool) {
	c.t.Helper()
	_, doc := readSpec(c.t)
	op, _ := doc.Paths["/v1/sales/{id}/queue/events"]["get"].(map[string]any)
	if desc, _ := op["description"].(string); !strings.Contains(desc, code) {
		c.t.Errorf("an error event with code %q, which the spec's description of the stream does not name", code)
		return 0, false
	}
	shared, _ := doc.Components["responses"].(map[string]any)
	responses, _ := op["responses"].(map[string]any)
	var statuses []int
	for s, r := range responses {
		status, err := strconv.Atoi(s)
		if err != nil || status < 400 {
			continue
		}
		if m, ok := r.(map[string]any); ok {
			if ref, ok := m["$ref"].(string); ok {
				r = shared[strings.TrimPrefix(ref, "#/components/responses/")]
			}
		}
		codes := map[string]bool{}
		collectCodes(r, codes)
		if codes[code] {
			statuses = append(statuses, status)
		}
	}
	if len(statuses) != 1 {
		c.t.Errorf("an error event with code %q: the spec's answers of the stream with that code have statuses %v, want one", code, statuses)
		return 0, false
	}
	return statuses[0], true
}

// validateAs validates body as the JSON answer of method path with status.
func (c *checker) validateAs(base, method, path string, status int, h http.Header, body []byte, what string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	hdr := http.Header{"Content-Type": {"application/json"}}
	for k, v := range h {
		hdr[k] = v
	}
	resp := &http.Response{StatusCode: status, Header: hdr, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	ok, errs := c.v.ValidateHttpResponse(req, resp)
	if !ok {
		for _, e := range errs {
			c.t.Errorf("%s: %s does not follow the spec: %s", what, body, describe(e))
		}
	}
}

// stubService is enough of a Service (and a PaymentService) for the
// routes to be registered; none is called.
type stubService struct{ surgehttp.Service }

func (stubService) RecordPayment(context.Context, surge.PaymentEvent) (surge.PaymentResult, error) {
	return surge.PaymentResult{}, nil
}

func signature(body string) http.Header {
	now := time.Now().Unix()
	return http.Header{"Surge-Signature": {fmt.Sprintf("t=%d,v1=%s", now, testtoken.WebhookV1(hookSecret, now, []byte(body)))}}
}

func buyerJWT(t *testing.T, user string) string {
	t.Helper()
	return testtoken.Buyer(t, jwtSecret, user)
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

var (
	admin = hdr("Authorization", "Bearer "+adminToken)
	alice = hdr("X-User-ID", "alice")
)

func user(id string) http.Header { return hdr("X-User-ID", id) }

func mustDecode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
	return v
}
