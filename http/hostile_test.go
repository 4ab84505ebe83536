package http_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/waitroom"
)

// hostileCase is one malformed or hostile request and who must refuse it.
type hostileCase struct {
	name string
	// An HTTP request sent by net/http's client...
	method, path string
	header       http.Header
	body         []byte
	chunked      bool
	// ...or, when set, raw bytes written to a fresh connection: for what
	// the client refuses to send (broken framing, control characters).
	raw []byte
	// conn marks requests net/http refuses before any handler runs: its
	// answers are text/plain ("400 Bad Request", "431 Request Header Fields
	// Too Large"). Every other case is answered by our handlers, in the
	// JSON error shape.
	conn bool
	// status is the exact status wanted; 0 accepts any 4xx.
	status int
}

// errorRecorder keeps error records (a panic or a 500 in a handler is
// logged at error level) and what net/http's ErrorLog writes.
type errorRecorder struct{ servicetest.Records }

func newErrorRecorder() *errorRecorder {
	return &errorRecorder{servicetest.Records{Level: slog.LevelError}}
}

func (h *errorRecorder) Write(p []byte) (int, error) { // net/http's ErrorLog
	return len(p), h.Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelError, string(p), 0))
}

// hostileEnv is a real engine and SQLite store behind the API, served like
// surge serve does (64 KiB header limit) with buyer tokens from the shared
// secret and from the test JWKS.
type hostileEnv struct {
	*env
	keys   surgehttp.TestKeys
	errs   *errorRecorder
	client *http.Client
	// tickets of alice and bob in the queue of sale "w" (a waiting room,
	// starting far in the future)
	aliceTicket, bobTicket string
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	e := newEnv(t, envOptions{noServer: true})
	h := &hostileEnv{env: e, keys: surgehttp.LoadTestKeys(t), errs: newErrorRecorder()}
	e.handler = surgehttp.New(e.eng, surgehttp.Config{
		AdminToken: adminToken,
		JWTSecret:  jwtSecret,
		Logger:     slog.New(h.errs),
	})
	e.handler.UseBuyerAuth(surgehttp.BuyerAuth{JWKS: h.keys.JWKS})
	srv := httptest.NewUnstartedServer(e.handler)
	srv.Config.MaxHeaderBytes = 64 << 10 // as surge serve
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.ErrorLog = log.New(h.errs, "", 0)
	srv.Config.DisableGeneralOptionsHandler = true // as surge serve: OPTIONS * reaches the handler
	srv.Start()
	e.srv = srv // newEnv's cleanup closes it
	h.client = &http.Client{
		// A fresh connection per request: a 413 or 431 closes its
		// connection, and a POST is not retried on a dead one.
		Transport: &http.Transport{DisableKeepAlives: true},
		// Redirects are answers to check, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	t.Cleanup(h.client.CloseIdleConnections)
	return h
}

// token signs a buyer token for sub with a key of the test JWKS.
func (h *hostileEnv) token(t *testing.T, method jwt.SigningMethod, kid, sub string) string {
	t.Helper()
	var key any = h.keys.Ed25519
	if method != jwt.SigningMethodEdDSA {
		key = h.keys.RSA
	}
	tok := jwt.NewWithClaims(method, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// send delivers one case and returns the answer.
func (h *hostileEnv) send(t *testing.T, c hostileCase) (response, error) {
	if c.raw != nil {
		return h.sendRaw(c.raw)
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, h.srv.URL+c.path, body)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	for k, v := range c.header {
		req.Header[k] = v // as given: several values, odd bytes
	}
	if c.chunked {
		chunked()(req)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// sendRaw writes raw to a new connection and reads one response. The write
// runs alongside the read: the server may answer, and stop reading, before
// a huge request is all sent.
func (h *hostileEnv) sendRaw(raw []byte) (response, error) {
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		return response{}, err
	}
	defer conn.Close()
	// A safety net against a hang, not a synchronisation.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() { _, _ = conn.Write(raw) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, close: resp.Close}, err
}

// rawRequest formats an HTTP/1.1 request by hand, with Content-Length.
func rawRequest(method, target string, headers []string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: surge.test\r\n", method, target)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// maxClientBody is the largest body sent through net/http's client. For a
// larger one the server stops reading, answers and resets the connection,
// and the client may report the reset instead of the answer; such bodies
// go raw, their answer read while they are still being written.
const maxClientBody = 256 << 10

// wire formats an HTTP request case as raw bytes.
func (c hostileCase) wire() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: surge.test\r\n", c.method, c.path)
	for _, k := range slices.Sorted(maps.Keys(c.header)) {
		for _, v := range c.header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	if !c.chunked {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(c.body))
		b.Write(c.body)
		return b.Bytes()
	}
	b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	for body := c.body; len(body) > 0; {
		n := min(len(body), 32<<10)
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// headerOf applies the harness's request options to an empty request and
// returns the header they set.
func headerOf(opts ...opt) http.Header {
	r := httptest.NewRequest("GET", "/", nil)
	for _, o := range opts {
		o(r)
	}
	return r.Header
}

func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// controlBytes are bytes JSON allows nowhere outside strings and nowhere
// raw inside them: inserting one anywhere makes any JSON text invalid.
const controlBytes = "\x00\x01\x02\x07\x08\x0b\x0c\x0e\x1b\x1f"

// insertControl inserts a control byte at a random position.
func insertControl(rng *rand.Rand, b string) []byte {
	i := rng.IntN(len(b) + 1)
	return slices.Concat([]byte(b[:i]), []byte{controlBytes[rng.IntN(len(controlBytes))]}, []byte(b[i:]))
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// hostileCases generates the cases with a fixed seed.
func (h *hostileEnv) hostileCases(t *testing.T, orderID string) []hostileCase {
	rng := rand.New(rand.NewPCG(2031, 314))
	var cases []hostileCase
	add := func(c hostileCase) { cases = append(cases, c) }

	// Valid buyers, one per verification path: the request is what is
	// hostile, not the identity.
	buyers := []http.Header{
		bearerHeader(userToken(t, "h-buyer")),
		bearerHeader(h.token(t, jwt.SigningMethodEdDSA, "ed", "e-buyer")),
		bearerHeader(h.token(t, jwt.SigningMethodRS256, "rsa", "r-buyer")),
	}
	buyer := func(i int) http.Header { return buyers[i%len(buyers)].Clone() }
	admin := bearerHeader(adminToken)

	// Purchase bodies. expectPurchase (the fuzz oracle) must call each
	// one a 400 or 413: a body it would accept is not hostile, so a
	// generator producing one is a bug in the test.
	purchase := func(name string, body []byte, chunked bool) {
		status, _ := expectPurchase(body, "", false)
		if status == http.StatusCreated {
			t.Fatalf("case %s: body %q is a valid purchase", name, body)
		}
		add(hostileCase{name: name, method: "POST", path: "/v1/sales/s/purchases", header: buyer(len(cases)),
			body: body, chunked: chunked, status: status})
	}
	nest := func(open, close string, n int) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	fixedPurchase := []string{
		// wrong types
		`{"quantity":"1"}`, `{"quantity":true}`, `{"quantity":[1]}`, `{"quantity":{}}`, `{"quantity":{"n":1}}`,
		`{"quantity":null}`, `null`, `[]`, `[{"quantity":1}]`, `"quantity"`, `1`, `true`, `{"quantity":""}`,
		// numbers
		`{"quantity":1.5}`, `{"quantity":1.0}`, `{"quantity":1e0}`, `{"quantity":0}`, `{"quantity":-0}`, `{"quantity":-1}`,
		`{"quantity":4}`, `{"quantity":1e400}`, `{"quantity":-1e400}`, `{"quantity":9223372036854775807}`,
		`{"quantity":9223372036854775808}`, `{"quantity":-9223372036854775808}`, `{"quantity":-9223372036854775809}`,
		`{"quantity":18446744073709551616}`, `{"quantity":` + strings.Repeat("9", 1000) + `}`, `{"quantity":0x1}`,
		`{"quantity":01}`, `{"quantity":+1}`, `{"quantity":.5}`, `{"quantity":1.}`, `{"quantity":NaN}`,
		`{"quantity":Infinity}`, `{"quantity":-Infinity}`, `{"quantity":1e-400}`, `{"quantity":2e308}`,
		// duplicate names, whichever comes last, even when equal or escaped
		`{"quantity":1,"quantity":0}`, `{"quantity":1,"quantity":"1"}`, `{"quantity":1,"quantity":null}`,
		`{"quantity":2,"quantity":9}`, `{"quantity":1,"quantity":1e400}`, `{"quantity":0,"quantity":1}`,
		`{"quantity":1,"quantity":1}`, `{"quantity":1,"quant\u0069ty":1}`, `{"quantity":2,"quantity":2,"quantity":2}`,
		// names in another case, which encoding/json would have matched
		`{"Quantity":1}`, `{"QUANTITY":2}`, `{"quantitY":1}`, `{"quant\u0049ty":1}`, `{"quantity":1,"Quantity":1}`,
		`{"Quantity":1,"quantity":1}`,
		// syntax
		`{"quantity":1,"x":1}`, `{"quantity":1}{}`, `{"quantity":1}x`, `{"quantity":1}]`, `{"quantity":1,}`,
		`{,"quantity":1}`, `{'quantity':1}`, `{quantity:1}`, `{"quantity":1}/*c*/`, "// c\n{\"quantity\":1}",
		`{"quantity":1`, `{"quantity":`, `{"quantity"`, `{"`, `{`, `}`, `]`, `,`, `:`, `"`, `\`,
		// invalid UTF-8, BOM, UTF-16, odd whitespace
		"{\"quantity\xff\":1}", "{\"\xff\":1}", "\xef\xbb\xbf{\"quantity\":1}", "{\"quantity\":1}\xff",
		"{\"quantity\":\"\xff\"}", "{\"quantity\":1,\"\xc3\x28\":1}", "\xfe\xff", "\xff\xfe{\x00\"\x00q\x00",
		"{\x00\"\x00q\x00u\x00a\x00n\x00t\x00i\x00t\x00y\x00\"\x00:\x001\x00}\x00",
		"\v", "\f", "\u00a0{\"quantity\":1}", "{\"quantity\":1}\u2028", "\x00", "{\"quantity\":1}\x00",
		`{"quantity\u0000":1}`, `{"quant\u0069ty":"x"}`,
		// nesting inside the 4 KiB limit
		nest("[", "]", 2000), strings.Repeat("[", 4000), nest("{\"a\":", "}", 500), `{"quantity":` + nest("[", "]", 1500) + `}`,
		`{"quantity":` + nest("{\"q\":", "}", 400) + `}`,
	}
	for i, b := range fixedPurchase {
		purchase(fmt.Sprintf("purchase body %d", i), []byte(b), i%5 == 0)
	}
	// Over 4 KiB: deep nesting, padding, big bodies, declared or chunked.
	for _, b := range []string{
		strings.Repeat("[", 10000), nest("[", "]", 10000), nest("{\"a\":", "}", 10000),
		`{"quantity":1}` + strings.Repeat(" ", surgehttp.MaxPurchaseBody-13),
		strings.Repeat(" ", surgehttp.MaxPurchaseBody+1),
		`{"quantity":1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`,
		strings.Repeat("x", 1<<20),
	} {
		for _, chunked := range []bool{false, true} {
			purchase(fmt.Sprintf("oversized purchase body of %d bytes (chunked %v)", len(b), chunked), []byte(b), chunked)
		}
	}
	// Truncations of valid bodies.
	for _, valid := range []string{`{"quantity":1}`, `{ "quantity" : 3 }`, `{"quantity":2}`} {
		for n := 1; n < len(valid); n++ {
			if strings.TrimSpace(valid[:n]) != "" {
				purchase(fmt.Sprintf("truncated purchase body %q", valid[:n]), []byte(valid[:n]), n%2 == 0)
			}
		}
	}
	// A control byte anywhere.
	for i := range 150 {
		base := []string{`{"quantity":1}`, `{"quantity": 2}`, ` {"quantity":3} `, `{}`}[i%4]
		purchase(fmt.Sprintf("purchase body with a control byte %d", i), insertControl(rng, base), i%3 == 0)
	}
	// Random bytes, whatever the oracle says they are (it never says 201
	// here: random bytes are never only JSON whitespace or an object).
	for i := range 120 {
		b := randomBytes(rng, 1+rng.IntN(600))
		if status, _ := expectPurchase(b, "", false); status == http.StatusCreated {
			continue
		}
		purchase(fmt.Sprintf("random purchase body %d", i), b, i%2 == 1)
	}

	// Bad Idempotency-Keys on a valid purchase.
	badKeys := [][]string{
		{""}, {strings.Repeat("k", 129)}, {strings.Repeat("k", 4000)}, {"clé"}, {"\x80"}, {"a\tb"}, {"\t"},
		{"k1", "k2"}, {"k", "k"}, {"k", ""}, {"日本"},
	}
	for i := range 80 {
		n := 1 + rng.IntN(200)
		k := make([]byte, n)
		for j := range k {
			k[j] = byte(0x21 + rng.IntN(0x7e-0x21+1))
		}
		if n <= surge.MaxKeyLen {
			// Make it invalid: a non-ASCII byte anywhere, or a tab inside
			// (net/http trims a leading or trailing one away).
			if i%2 == 0 && n >= 3 {
				k[1+rng.IntN(n-2)] = '\t'
			} else {
				k[rng.IntN(n)] = 0x80 + byte(rng.IntN(0x80))
			}
		}
		badKeys = append(badKeys, []string{string(k)})
	}
	for i, keys := range badKeys {
		// A single key must be invalid as the server will see it: net/http
		// trims leading and trailing spaces and tabs.
		if len(keys) == 1 && surge.ValidKey(strings.Trim(keys[0], " \t")) {
			t.Fatalf("bad key %q is valid", keys[0])
		}
		hd := buyer(i)
		hd["Idempotency-Key"] = keys
		add(hostileCase{name: fmt.Sprintf("bad Idempotency-Key %d %.40q", i, keys), method: "POST",
			path: "/v1/sales/s/purchases", header: hd, body: []byte(`{"quantity":1}`), status: http.StatusBadRequest})
	}
	// Keys net/http itself refuses: control characters in a header value.
	for i, k := range []string{"a\x00b", "a\x01b", "a\x7fb", "\x1b[31m", "a\rb"} {
		add(hostileCase{name: fmt.Sprintf("control character in Idempotency-Key %d", i), conn: true, status: http.StatusBadRequest,
			raw: rawRequest("POST", "/v1/sales/s/purchases", []string{"Authorization: Bearer " + userToken(t, "h-buyer"),
				"Idempotency-Key: " + k}, []byte(`{"quantity":1}`))})
	}

	// Sale bodies, with the admin token.
	sale := func(name string, body []byte, chunked bool) {
		add(hostileCase{name: name, method: "POST", path: "/v1/sales", header: admin.Clone(), body: body, chunked: chunked})
	}
	fixedSale := []string{
		`null`, `[]`, `"x"`, `1`, `{}`, `{"name":"x"}`, `{"stock":1}`, `{"name":1,"stock":1}`, `{"name":null,"stock":1}`,
		`{"name":"x","stock":"1"}`, `{"name":"x","stock":1.5}`, `{"name":"x","stock":1e400}`, `{"name":"x","stock":-1e400}`,
		`{"name":"x","stock":9223372036854775808}`, `{"name":"x","stock":-9223372036854775809}`, `{"name":"x","stock":-1}`,
		`{"name":"x","stock":0}`, `{"name":"x","stock":1000000001}`, `{"name":"x","stock":[1]}`, `{"name":"x","stock":{"n":1}}`,
		`{"name":"x","stock":1,"per_user_limit":2}`, `{"name":"x","stock":1,"per_user_limit":0}`,
		`{"name":"x","stock":1,"price_cents":-1}`, `{"name":"x","stock":1,"price_cents":1e400}`,
		`{"name":"x","stock":1,"price_cents":9223372036854775808}`, `{"name":"x","stock":1,"currency":"usd"}`,
		`{"name":"x","stock":1,"currency":"US"}`, `{"name":"x","stock":1,"currency":"\xffSD"}`, `{"name":"x","stock":1,"currency":1}`,
		`{"name":"x","stock":1,"hold_seconds":0}`, `{"name":"x","stock":1,"hold_seconds":604801}`,
		`{"name":"x","stock":1,"starts_at":"yesterday"}`, `{"name":"x","stock":1,"starts_at":"10000-01-01T00:00:00Z"}`,
		`{"name":"x","stock":1,"starts_at":"0000-01-01T00:00:00+00:01"}`, `{"name":"x","stock":1,"starts_at":123}`,
		`{"name":"x","stock":1,"starts_at":"2031-03-14T10:00:00Z","ends_at":"2031-03-14T09:00:00Z"}`,
		`{"name":"x","stock":1,"ends_at":"2031-03-14T10:00:00"}`,
		`{"id":"../x","name":"x","stock":1}`, `{"id":"a b","name":"x","stock":1}`, `{"id":"","name":"x","stock":1}`,
		"{\"id\":\"\xff\",\"name\":\"x\",\"stock\":1}", `{"id":"` + strings.Repeat("a", 65) + `","name":"x","stock":1}`,
		`{"id":"s","name":"x","stock":1}`, "{\"id\":\"s\",\"name\":\"\xff\xfe\",\"stock\":1}", `{"id":"s","name":"\ud800","stock":1}`,
		`{"id":1,"name":"x","stock":1}`, `{"name":"` + strings.Repeat("n", 201) + `","stock":1}`, `{"name":"   ","stock":1}`,
		`{"name":"x","stock":1,"stock":0}`, `{"name":"x","name":null,"stock":1}`, `{"name":"x","stock":1,"colour":"red"}`,
		`{"name":"x","stock":1}{}`, `{"name":"x","stock":1}x`, `{"name":"x","stock":1,}`, `{"name":"x","stock":1`,
		"\x00", "\xef\xbb\xbf{\"name\":\"x\",\"stock\":1}",
		nest("[", "]", 10000), strings.Repeat("[", 10001), `{"name":` + nest("[", "]", 10000) + `,"stock":1}`,
		nest("{\"a\":", "}", 10000), `{"name":"x","stock":1,"x":` + nest("{\"a\":", "}", 5000) + `}`,
	}
	for i, b := range fixedSale {
		sale(fmt.Sprintf("sale body %d", i), []byte(b), i%7 == 0)
	}
	// Duplicate and case-variant names, each otherwise a valid new sale:
	// the strict decoder must refuse them with a 400.
	for i, b := range []string{
		`{"id":"d1","name":"x","stock":1,"stock":2}`, `{"id":"d2","name":"x","name":"y","stock":1}`,
		`{"id":"d3","id":"d4","name":"x","stock":1}`, `{"id":"d5","name":"x","stock":1,"st\u006fck":1}`,
		`{"id":"d6","name":"x","stock":2,"per_user_limit":1,"per_user_limit":2}`,
		`{"id":"c1","Name":"x","stock":1}`, `{"id":"c2","name":"x","STOCK":1}`, `{"ID":"c3","name":"x","stock":1}`,
		`{"id":"c4","name":"x","\u017ftoc\u212a":1}`, `{"id":"c5","name":"x","stock":1,"Hold_Seconds":60}`,
		`{"id":"c6","name":"x","stock":1,"currency":"EUR","Currency":"USD"}`,
	} {
		add(hostileCase{name: fmt.Sprintf("sale body with a duplicate or case-variant name %d", i), method: "POST",
			path: "/v1/sales", header: admin.Clone(), body: []byte(b), chunked: i%2 == 1, status: http.StatusBadRequest})
	}
	for _, b := range []string{
		strings.Repeat("[", 70000), `{"name":"` + strings.Repeat("x", surgehttp.MaxSaleBody) + `","stock":1}`, strings.Repeat(" ", 1<<20),
	} {
		for _, chunked := range []bool{false, true} {
			add(hostileCase{name: fmt.Sprintf("oversized sale body of %d bytes (chunked %v)", len(b), chunked), method: "POST",
				path: "/v1/sales", header: admin.Clone(), body: []byte(b), chunked: chunked, status: http.StatusRequestEntityTooLarge})
		}
	}
	fullSale := `{"id":"t1","name":"Truncated","stock":5,"per_user_limit":2,"currency":"EUR","starts_at":"2031-03-14T10:00:00Z"}`
	for n := 1; n < len(fullSale); n++ {
		sale(fmt.Sprintf("truncated sale body %d", n), []byte(fullSale[:n]), n%4 == 0)
	}
	for i := range 120 {
		sale(fmt.Sprintf("sale body with a control byte %d", i), insertControl(rng, fullSale), i%3 == 0)
	}

	// Forged, expired, unsigned and confused buyer tokens on every buyer
	// endpoint, including one that names alice's order.
	pubDER, err := x509.MarshalPKIXPublicKey(&h.keys.RSA.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	enc := base64.RawURLEncoding
	payload := fmt.Sprintf(`{"sub":"alice","exp":%d}`, time.Now().Add(time.Hour).Unix())
	hmacWith := func(header string, key []byte) string { return craftToken(header, payload, key) }
	edTok := h.token(t, jwt.SigningMethodEdDSA, "ed", "alice")
	edParts := strings.Split(edTok, ".")
	sign := func(method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hour := time.Now().Add(time.Hour).Unix()
	creds := map[string]http.Header{}
	for _, c := range badBuyerCredentials(t) {
		if c.name != "admin token" { // the operator may read and cancel orders
			creds[c.name] = headerOf(c.opts...)
		}
	}
	for name, tok := range map[string]string{
		"HS256 keyed with the RSA public key PEM":      hmacWith(`{"alg":"HS256","kid":"rsa"}`, pubPEM),
		"HS256 keyed with the RSA public key DER":      hmacWith(`{"alg":"HS256","kid":"rsa"}`, pubDER),
		"HS256 keyed with the RSA modulus":             hmacWith(`{"alg":"HS256"}`, h.keys.RSA.N.Bytes()),
		"HS256 keyed with the Ed25519 public key":      hmacWith(`{"alg":"HS256","kid":"ed"}`, []byte(h.keys.Ed25519.Public().(ed25519.PublicKey))),
		"HS256 keyed with the JWKS document":           hmacWith(`{"alg":"HS256"}`, h.keys.JWKSJSON),
		"RS256 header, HMAC keyed with the public key": hmacWith(`{"alg":"RS256","kid":"rsa"}`, pubPEM),
		"EdDSA header, HMAC with the secret":           hmacWith(`{"alg":"EdDSA","kid":"ed"}`, jwtSecret),
		"EdDSA with an unknown kid":                    h.token(t, jwt.SigningMethodEdDSA, "nope", "alice"),
		"EdDSA with the RSA key's kid":                 h.token(t, jwt.SigningMethodEdDSA, "rsa", "alice"),
		"EdDSA without kid, two-key set":               sign(jwt.SigningMethodEdDSA, h.keys.Ed25519, "", jwt.MapClaims{"sub": "alice", "exp": hour}),
		"RS256 by a key outside the set":               sign(jwt.SigningMethodRS256, h.keys.OtherRSA, "rsa", jwt.MapClaims{"sub": "alice", "exp": hour}),
		"PS256 by the set's RSA key":                   sign(jwt.SigningMethodPS256, h.keys.RSA, "rsa", jwt.MapClaims{"sub": "alice", "exp": hour}),
		"RS512 by the set's RSA key":                   sign(jwt.SigningMethodRS512, h.keys.RSA, "rsa", jwt.MapClaims{"sub": "alice", "exp": hour}),
		"alg none with kid":                            enc.EncodeToString([]byte(`{"alg":"none","kid":"ed"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".",
		"EdDSA expired":                                sign(jwt.SigningMethodEdDSA, h.keys.Ed25519, "ed", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}),
		"EdDSA not valid yet":                          sign(jwt.SigningMethodEdDSA, h.keys.Ed25519, "ed", jwt.MapClaims{"sub": "alice", "exp": hour, "nbf": hour - 60}),
		"EdDSA nbf 1e19":                               sign(jwt.SigningMethodEdDSA, h.keys.Ed25519, "ed", jwt.MapClaims{"sub": "alice", "exp": hour, "nbf": 1e19}),
		"EdDSA with a crit header":                     signWithHeader(t, h.keys.Ed25519, map[string]any{"kid": "ed", "crit": []string{"exp"}}, jwt.MapClaims{"sub": "alice", "exp": hour}),
		"EdDSA with a numeric kid":                     signWithHeader(t, h.keys.Ed25519, map[string]any{"kid": 1}, jwt.MapClaims{"sub": "alice", "exp": hour}),
		"EdDSA with a flipped signature bit":           edParts[0] + "." + edParts[1] + "." + flipBit(edParts[2]),
		"EdDSA payload swapped":                        edParts[0] + "." + strings.Split(h.token(t, jwt.SigningMethodEdDSA, "ed", "mallory"), ".")[1] + "." + edParts[2],
		"EdDSA with an invalid sub":                    h.token(t, jwt.SigningMethodEdDSA, "ed", "../admin"),
		"EdDSA with upper-case SUB":                    signWithHeader(t, h.keys.Ed25519, map[string]any{"kid": "ed"}, jwt.MapClaims{"SUB": "alice", "exp": hour}),
		"RS256 token over 8 KiB":                       sign(jwt.SigningMethodRS256, h.keys.RSA, "rsa", jwt.MapClaims{"sub": "alice", "exp": hour, "pad": strings.Repeat("p", 8<<10)}),
		"60 KiB of garbage":                            strings.Repeat("A", 60<<10),
		"three empty segments":                         "..",
		"four segments":                                edTok + ".x",
	} {
		creds[name] = bearerHeader(tok)
	}
	for i := range 40 {
		segs := make([]string, 3)
		for j := range segs {
			segs[j] = enc.EncodeToString(randomBytes(rng, rng.IntN(64)))
		}
		creds[fmt.Sprintf("random token %d", i)] = bearerHeader(strings.Join(segs, "."))
	}
	for _, name := range slices.Sorted(maps.Keys(creds)) {
		for _, req := range []struct{ method, path string }{
			{"POST", "/v1/sales/s/purchases"},
			{"GET", "/v1/orders/" + orderID},
			{"POST", "/v1/orders/" + orderID + "/cancel"},
		} {
			add(hostileCase{name: "credentials " + name + ": " + req.method + " " + req.path, method: req.method, path: req.path,
				header: creds[name].Clone(), body: []byte(`{"quantity":1}`), status: http.StatusUnauthorized})
		}
	}
	// Another buyer on alice's order: the same 404 as a missing order.
	for _, hd := range buyers {
		for _, p := range []string{"/v1/orders/" + orderID, "/v1/orders/" + orderID + "/cancel"} {
			method := map[bool]string{true: "POST", false: "GET"}[strings.HasSuffix(p, "cancel")]
			add(hostileCase{name: "another buyer: " + method + " " + p, method: method, path: p, header: hd.Clone(),
				status: http.StatusNotFound})
		}
	}
	// Admin endpoints without the admin token, each with a body that would
	// succeed with it.
	adminCreds := map[string]http.Header{
		"none":                 {},
		"prefix":               bearerHeader(adminToken[:len(adminToken)-1]),
		"one byte short":       bearerHeader(adminToken[1:]),
		"suffix":               bearerHeader(adminToken + "x"),
		"same length, wrong":   bearerHeader(strings.Repeat("x", len(adminToken))),
		"last byte wrong":      bearerHeader(adminToken[:len(adminToken)-1] + "N"),
		"upper case":           bearerHeader(strings.ToUpper(adminToken)),
		"two spaces":           http.Header{"Authorization": {"Bearer  " + adminToken}},
		"no scheme":            http.Header{"Authorization": {adminToken}},
		"Basic":                http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminToken))}},
		"Token scheme":         http.Header{"Authorization": {"Token " + adminToken}},
		"X-Admin-Token":        http.Header{"X-Admin-Token": {adminToken}},
		"buyer JWT":            buyer(0),
		"EdDSA JWT, sub admin": bearerHeader(h.token(t, jwt.SigningMethodEdDSA, "ed", "admin")),
		"second Authorization": http.Header{"Authorization": {"Bearer wrong", "Bearer " + adminToken}},
	}
	for _, name := range slices.Sorted(maps.Keys(adminCreds)) {
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/v1/sales", `{"id":"new","name":"New","stock":1}`},
			{"GET", "/v1/sales/s/orders", ""},
			{"POST", "/v1/orders/" + orderID + "/pay", ""},
		} {
			var body []byte
			if req.body != "" {
				body = []byte(req.body)
			}
			add(hostileCase{name: "admin credentials " + name + ": " + req.method + " " + req.path, method: req.method,
				path: req.path, header: adminCreds[name].Clone(), body: body, status: http.StatusUnauthorized})
		}
	}

	// The waiting room: bad tickets on queue reads, streams and purchases,
	// hostile join bodies, queue endpoints of a sale without one.
	otherKey, err := waitroom.New(waitroom.Config{Secret: []byte("not the server's secret, 32 byte")})
	if err != nil {
		t.Fatal(err)
	}
	wSale := &surge.Sale{ID: "w", StartsAt: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: "fifo", TicketSeconds: 60}}
	forgedTicket, _, err := otherKey.Join(context.Background(), wSale, "alice")
	if err != nil {
		t.Fatal(err)
	}
	tk := h.aliceTicket
	flipped := []byte(tk)
	flipped[len(flipped)/2] ^= 0x01 // another base64url character, or none
	badTickets := []string{
		forgedTicket.Ticket, tk[:len(tk)-1], tk[1:], tk + "A", tk + "=", string(flipped), strings.ToUpper(tk),
		"x", "!!!!", strings.Repeat("A", waitroom.MaxTicketLen),
		strings.Repeat("A", waitroom.MaxTicketLen+1), strings.Repeat("A", 8<<10), "é", "AQÿ", userToken(t, "alice"),
		base64.RawURLEncoding.EncodeToString(make([]byte, 64)),
	}
	// The standard alphabet instead of the URL one: a bad ticket only if
	// the ticket has a character the two spell differently.
	if std := strings.ReplaceAll(strings.ReplaceAll(tk, "-", "+"), "_", "/"); std != tk {
		badTickets = append(badTickets, std)
	}
	for range 60 {
		badTickets = append(badTickets, base64.RawURLEncoding.EncodeToString(randomBytes(rng, 1+rng.IntN(200))))
		b, _ := base64.RawURLEncoding.DecodeString(tk)
		b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		badTickets = append(badTickets, base64.RawURLEncoding.EncodeToString(b))
	}
	for i, bad := range badTickets {
		hd := http.Header{surgehttp.TicketHeader: {bad}}
		add(hostileCase{name: fmt.Sprintf("bad ticket %d on GET queue", i), method: "GET", path: "/v1/sales/w/queue",
			header: hd, status: http.StatusForbidden})
		if i%3 == 0 {
			add(hostileCase{name: fmt.Sprintf("bad ticket %d on the event stream", i), method: "GET", path: "/v1/sales/w/queue/events",
				header: hd.Clone(), status: http.StatusForbidden})
			add(hostileCase{name: fmt.Sprintf("bad ticket %d as a query parameter", i), method: "GET",
				path: "/v1/sales/w/queue/events?ticket=" + url.QueryEscape(bad), status: http.StatusForbidden})
		}
		hd = buyer(i)
		hd[surgehttp.TicketHeader] = []string{bad}
		add(hostileCase{name: fmt.Sprintf("bad ticket %d on a purchase", i), method: "POST", path: "/v1/sales/w/purchases",
			header: hd, body: []byte(`{"quantity":1}`), status: http.StatusForbidden})
	}
	for _, c := range []struct {
		name string
		hd   http.Header
	}{
		{"no ticket", buyer(0)},
		{"alice's ticket, other user", buyer(1)}, // e-buyer
		{"two tickets", buyer(0)},
		{"empty ticket", buyer(0)},
		{"not admitted yet", bearerHeader(userToken(t, "alice"))},
		{"bob's ticket for alice", bearerHeader(userToken(t, "alice"))},
	} {
		name, hd := c.name, c.hd
		switch name {
		case "alice's ticket, other user":
			hd[surgehttp.TicketHeader] = []string{h.aliceTicket}
		case "two tickets":
			hd[surgehttp.TicketHeader] = []string{h.aliceTicket, h.aliceTicket}
		case "empty ticket":
			hd[surgehttp.TicketHeader] = []string{""}
		case "not admitted yet":
			hd[surgehttp.TicketHeader] = []string{h.aliceTicket}
		case "bob's ticket for alice":
			hd[surgehttp.TicketHeader] = []string{h.bobTicket}
		}
		add(hostileCase{name: "purchase in a waiting room: " + name, method: "POST", path: "/v1/sales/w/purchases",
			header: hd, status: http.StatusForbidden})
	}
	add(hostileCase{name: "two tickets on GET queue", method: "GET", path: "/v1/sales/w/queue",
		header: http.Header{surgehttp.TicketHeader: {h.aliceTicket, h.bobTicket}}, status: http.StatusForbidden})
	add(hostileCase{name: "GET queue without a ticket", method: "GET", path: "/v1/sales/w/queue", status: http.StatusForbidden})
	for i, b := range []string{`{"position":1}`, `[]`, `null`, `"x"`, `{"user_id":"bob"}`, `{}{}`, `{`, "ÿ", `{"":1}`,
		strings.Repeat("[", 3000), strings.Repeat(" ", surgehttp.MaxPurchaseBody+1)} {
		status := http.StatusBadRequest
		if len(b) > surgehttp.MaxPurchaseBody {
			status = http.StatusRequestEntityTooLarge
		}
		add(hostileCase{name: fmt.Sprintf("join body %d", i), method: "POST", path: "/v1/sales/w/queue", header: buyer(i),
			body: []byte(b), chunked: i%2 == 1, status: status})
	}
	for _, name := range slices.Sorted(maps.Keys(creds)) {
		add(hostileCase{name: "join with credentials " + name, method: "POST", path: "/v1/sales/w/queue",
			header: creds[name].Clone(), status: http.StatusUnauthorized})
	}
	for _, p := range []string{"/v1/sales/s/queue", "/v1/sales/s/queue/events"} {
		method := map[bool]string{true: "GET", false: "POST"}[strings.HasSuffix(p, "events")]
		hd := buyer(0)
		hd[surgehttp.TicketHeader] = []string{h.aliceTicket}
		add(hostileCase{name: method + " " + p + " (no waiting room)", method: method, path: p, header: hd, status: http.StatusConflict})
	}

	// Wrong methods.
	paths := map[string]string{
		"/v1/sales/w/queue": "GET, POST", "/v1/sales/w/queue/events": "GET",
		"/v1/sales": "GET, POST", "/v1/sales/s": "GET, PATCH", "/v1/sales/s/orders": "GET", "/v1/sales/s/purchases": "POST",
		"/v1/orders/" + orderID: "GET", "/v1/orders/" + orderID + "/cancel": "POST", "/v1/orders/" + orderID + "/pay": "POST",
		"/healthz": "GET", "/readyz": "GET",
	}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "FOO", "post", "Get"} {
			allowed := strings.Split(paths[p], ", ")
			if slices.Contains(allowed, m) || m == "HEAD" && slices.Contains(allowed, "GET") {
				continue
			}
			add(hostileCase{name: "method " + m + " " + p, method: m, path: p, header: admin.Clone(), status: http.StatusMethodNotAllowed})
		}
	}
	for i := range 40 {
		m := make([]byte, 3+rng.IntN(8))
		for j := range m {
			m[j] = byte('A' + rng.IntN(26))
		}
		add(hostileCase{name: fmt.Sprintf("random method %d %s", i, m), method: string(m), path: "/v1/sales/s/purchases",
			header: buyer(i), body: []byte(`{"quantity":1}`), status: http.StatusMethodNotAllowed})
	}

	// Odd paths, sent as is. Dot segments and "//" are not here: ServeMux
	// redirects them (see TestHostileOutsideTheHandlers).
	for _, p := range []string{
		"/v1/sales/%2e%2e/purchases", "/v1/sales/%2e%2e", "/v1/sales/..%2f..%2fetc%2fpasswd", "/v1/sales/%2e%2e%2f%2e%2e%2fetc/passwd",
		"/v1/sales/%2e%2e/%2e%2e/etc/passwd", "/v1/sales/s%00", "/v1/sales/s%00/purchases", "/v1/sales/s%2fpurchases",
		"/v1/sales/s%252f", "/v1/sales/" + strings.Repeat("a", 65), "/v1/sales/" + strings.Repeat("a", 60<<10),
		"/v1/sales/s/purchases/", "/v1/sales/s/purchases/x", "/V1/SALES/s", "/v1/sales/s;x", "/v1/sales/s%20",
		"/v1/sales/%ff%fe", "/v1/sales/\xff", "/v1/sales/s\\..\\..\\x", "/v1/sales/%5c..%5c", "/v1/orders/%2e%2e%2fsales",
		"/v1/orders/" + orderID + "%00", "/v1/orders/" + orderID + "/pay/", "/v1/orders/", "/v1/orders", "/v1", "/v1/",
		"/etc/passwd", "/.env", "/.git/config", "/admin", "/debug/pprof/", "/v1/sales/s/orders.json", "/v2/sales",
		"/v1/sales/s#frag", "/v1/sales/s/purchases?quantity=3", "/v1/sales/" + orderID, "/healthz/x", "/readyz%00",
	} {
		// Public reads of a real sale would answer 200; these use POST.
		add(hostileCase{name: "odd path POST " + p, raw: rawRequest("POST", p, []string{"Connection: close"}, []byte(`{"quantity":1}`))})
		add(hostileCase{name: "odd path DELETE " + p, raw: rawRequest("DELETE", p, []string{"Connection: close",
			"Authorization: Bearer " + adminToken}, nil)})
	}
	add(hostileCase{name: "absolute-form target", raw: rawRequest("POST", "http://evil.example/v1/sales/s/purchases",
		[]string{"Connection: close"}, []byte(`{}`)), status: http.StatusUnauthorized})

	// Oversized headers: over the 64 KiB limit net/http answers 431 itself;
	// just under it the request reaches our handler.
	for _, hd := range []string{
		"X-Big: " + strings.Repeat("a", 70<<10),
		"Authorization: Bearer " + strings.Repeat("a", 70<<10),
		"Idempotency-Key: " + strings.Repeat("k", 70<<10),
		strings.TrimSuffix(strings.Repeat("X-Many: "+strings.Repeat("m", 30)+"\r\n", 2500), "\r\n"),
		"X-Huge: " + strings.Repeat("h", 1<<20),
	} {
		add(hostileCase{name: fmt.Sprintf("oversized header of %d bytes", len(hd)), conn: true,
			status: http.StatusRequestHeaderFieldsTooLarge, raw: rawRequest("POST", "/v1/sales/s/purchases", []string{hd}, nil)})
	}
	add(hostileCase{name: "60 KiB Authorization header", status: http.StatusUnauthorized,
		raw: rawRequest("POST", "/v1/sales/s/purchases", []string{"Authorization: Bearer " + strings.Repeat("a", 60<<10)}, nil)})

	// Broken framing, answered by net/http.
	tok := userToken(t, "h-buyer")
	for i, r := range []string{
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		"GET /v1/sales/missing HTTP/1.1\r\n\r\n",
		"GET /v1/sales/missing HTTP/1.1\r\nHost: x y\r\n\r\n",
		"GET /v1/sales/missing HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET /v1/sales/missing HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
		"GET /v1/sales/missing HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
		"GET /v1/sales/missing HTTP/1.1.1\r\nHost: x\r\n\r\n",
		"GET /v1/sales/missing\r\n\r\n",
		"GET  /v1/sales/missing HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /% HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/sales/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/sales/a b HTTP/1.1\r\nHost: x\r\n\r\n",
		"G@T /v1/sales/s HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00" + tok + "\r\n\r\n",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", // a TLS ClientHello
	} {
		add(hostileCase{name: fmt.Sprintf("broken framing %d", i), raw: []byte(r), conn: true, status: http.StatusBadRequest})
	}
	// Broken bodies, answered by our handler.
	for i, r := range []string{
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"quantity\":1}\r\n0\r\n\r\n",
		"POST /v1/sales HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminToken + "\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n",
		"POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	} {
		add(hostileCase{name: fmt.Sprintf("broken body framing %d", i), raw: []byte(r)})
	}
	// Random bytes: a request line and headers of garbage.
	for i := range 120 {
		b := randomBytes(rng, 1+rng.IntN(1000))
		add(hostileCase{name: fmt.Sprintf("random bytes %d", i), raw: append(b, "\r\n\r\n"...), conn: true, status: http.StatusBadRequest})
	}
	for i, c := range cases {
		if c.raw == nil && len(c.body) > maxClientBody {
			cases[i].raw = c.wire()
		}
	}
	return cases
}

// joinQueue joins a sale's queue and returns the ticket.
func (h *hostileEnv) joinQueue(t *testing.T, saleID string, who opt) string {
	t.Helper()
	r := h.do(t, "POST", "/v1/sales/"+saleID+"/queue", "", who)
	wantStatus(t, r, http.StatusCreated)
	var q struct {
		Ticket string `json:"ticket"`
	}
	if err := json.Unmarshal(r.body, &q); err != nil || q.Ticket == "" {
		t.Fatalf("join: %v (%v)", r, err)
	}
	return q.Ticket
}

func signWithHeader(t *testing.T, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func flipBit(seg string) string {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		panic(err)
	}
	b[len(b)/2] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestHostileRequests sends over a thousand malformed or hostile requests
// through a real server, engine and store. Every answer is a 4xx: in the
// JSON error shape when our handler answers, in net/http's plain text when
// the HTTP framing itself is broken. Nothing panics, nothing is logged as
// an error, and the sale is exactly as before.
func TestHostileRequests(t *testing.T) {
	h := newHostileEnv(t)
	h.createSale(t, fmt.Sprintf(`{"id":"s","name":"Target","stock":10,"per_user_limit":%d}`, fuzzLimit))
	// One order per verification path: the tokens the cases reuse work.
	alice := h.buy(t, "s", asUser(t, "alice"))
	h.buy(t, "s", bearerAuth(h.token(t, jwt.SigningMethodEdDSA, "ed", "e-buyer")))
	h.buy(t, "s", bearerAuth(h.token(t, jwt.SigningMethodRS256, "rsa", "r-buyer")))
	h.createSale(t, `{"id":"w","name":"Queued","stock":10,"starts_at":"2099-01-01T00:00:00Z",
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":60}}`)
	h.aliceTicket = h.joinQueue(t, "w", asUser(t, "alice"))
	h.bobTicket = h.joinQueue(t, "w", asUser(t, "bob"))
	before := h.snapshot(t, "s")
	beforeW := h.snapshot(t, "w")
	sales := h.do(t, "GET", "/v1/sales", "")

	cases := h.hostileCases(t, alice.ID)
	if len(cases) < 1000 {
		t.Fatalf("only %d cases", len(cases))
	}
	var fromHandler, fromConn int
	for _, c := range cases {
		r, err := h.send(t, c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		ct := r.header.Get("Content-Type")
		switch {
		case r.status < 400 || r.status > 499:
			t.Errorf("%s: %v, want a 4xx", c.name, r)
			continue
		case c.status != 0 && r.status != c.status:
			t.Errorf("%s: %v, want %d", c.name, r, c.status)
		case c.conn:
			fromConn++
			if ct != "text/plain; charset=utf-8" || r.status != http.StatusBadRequest && r.status != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: %v (%s), want net/http's plain 400 or 431", c.name, r, ct)
			}
		default:
			fromHandler++
			if ct != "application/json" {
				t.Errorf("%s: %v: Content-Type %q, want our JSON error", c.name, r, ct)
			} else if c.method != "HEAD" {
				if err := checkErrorShape(r.body); err != nil {
					t.Errorf("%s: %v: %v", c.name, r, err)
				}
			}
		}
	}
	t.Logf("%d hostile requests: %d refused by our handlers (JSON), %d by net/http (plain text)", len(cases), fromHandler, fromConn)

	h.wantUnchanged(t, "s", before)
	h.wantUnchanged(t, "w", beforeW)
	// Nobody joined the queue: the next buyer comes third.
	if r := h.do(t, "POST", "/v1/sales/w/queue", "", asUser(t, "carol")); r.status != http.StatusCreated ||
		!bytes.Contains(r.body, []byte(`"position":3,`)) {
		t.Errorf("a join after the hostile requests: %v", r)
	}
	if after := h.do(t, "GET", "/v1/sales", ""); !bytes.Equal(after.body, sales.body) {
		t.Errorf("sales changed:\nbefore %s\nafter  %s", sales.body, after.body)
	}
	if msgs := h.errs.Messages(); len(msgs) > 0 {
		t.Errorf("errors logged (a panic or a 500): %q", msgs)
	}
}

// TestHostileOutsideTheHandlers: requests the routes do not describe
// (unclean paths, CONNECT, asterisk targets) are answered in the JSON error
// shape, by Server.ServeHTTP instead of ServeMux's redirects and plain
// text. What net/http answers itself, before any handler runs, cannot be:
// a 501 for an unsupported Transfer-Encoding and a 505 for an HTTP version
// other than 1.x are pinned here as the exceptions docs/api.md lists, so
// that a change in net/http is noticed; its 400 and 431 are in
// TestHostileRequests. Lines ending in a bare LF are accepted, as RFC 9112
// §2.2 allows (net/http offers no switch), and pinned too.
func TestHostileOutsideTheHandlers(t *testing.T) {
	h := newHostileEnv(t)
	h.createSale(t, `{"id":"s","name":"Target","stock":10}`)
	before := h.snapshot(t, "s")
	const plain = "text/plain; charset=utf-8"
	for _, c := range []struct {
		name, raw string
		status    int
		code      string // our JSON error code; "" for net/http's own answer
		plain     bool   // net/http's text/plain answer
		close     bool   // Connection: close
	}{
		{"Transfer-Encoding gzip", "POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "", true, true},
		{"Transfer-Encoding chunked twice", "POST /v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501, "", true, true},
		{"HTTP/2.0 request line", "GET /v1/sales/s HTTP/2.0\r\nHost: x\r\n\r\n", 505, "", true, true},
		{"HTTP/9.9 request line", "GET /v1/sales/s HTTP/9.9\r\nHost: x\r\n\r\n", 505, "", true, true},
		{"dot segments", "POST /v1/sales/../../etc/passwd HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not_found", false, false},
		{"dot segment into a route", "POST /v1/sales/x/../s/purchases HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not_found", false, false},
		{"double slash", "POST //v1/sales/s/purchases HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not_found", false, false},
		{"dot segments, GET", "GET /v1/orders/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", false, false},
		{"trailing dot", "GET /v1/sales/. HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", false, false},
		{"absolute form without a path", "GET http://x HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", false, false},
		{"CONNECT authority", "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 404, "not_found", false, true},
		{"asterisk target", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", false, true},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "invalid_request", false, true},
		{"OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", false, true},
		{"wrong method", "DELETE /v1/sales/s HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed", false, false},
		{"bare LF line endings", "GET /v1/sales/missing HTTP/1.1\nHost: x\n\n", 404, "sale_not_found", false, false},
	} {
		r, err := h.sendRaw([]byte(c.raw))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.status != c.status {
			t.Errorf("%s: %v, want %d", c.name, r, c.status)
		}
		if c.plain {
			if ct := r.header.Get("Content-Type"); ct != plain {
				t.Errorf("%s: %v: Content-Type %q, want net/http's %q", c.name, r, ct, plain)
			}
		} else if got := errorCode(t, r); got != c.code {
			t.Errorf("%s: %v: code %q, want %q", c.name, r, got, c.code)
		}
		if loc := r.header.Get("Location"); loc != "" {
			t.Errorf("%s: %v: redirected to %q", c.name, r, loc)
		}
		if r.close != c.close {
			t.Errorf("%s: %v: Connection: close %v, want %v", c.name, r, r.close, c.close)
		}
	}
	h.wantUnchanged(t, "s", before)
	if msgs := h.errs.Messages(); len(msgs) > 0 {
		t.Errorf("errors logged: %q", msgs)
	}
}
