package http_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testtoken"
)

// craftToken builds a JWT by hand: any header, HMAC-SHA256 signature with
// key. It makes tokens a library refuses to sign, such as one whose header
// claims RS256 but whose signature is an HMAC (algorithm confusion).
func craftToken(header, payload string, key []byte) string {
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// unsignedToken builds a JWT with an empty signature.
func unsignedToken(header, payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "."
}

// badBuyerCredentials are credentials that must not identify a buyer.
func badBuyerCredentials(t *testing.T) []struct {
	name string
	opts []opt
} {
	t.Helper()
	hour := time.Now().Add(time.Hour).Unix()
	hs256 := func(claims jwt.MapClaims) opt {
		return bearerAuth(testtoken.Sign(t, jwt.SigningMethodHS256, jwtSecret, claims))
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := userToken(t, "alice")
	parts := strings.Split(valid, ".")
	// The payload of a token for mallory under alice's signature.
	forged := parts[0] + "." + strings.Split(userToken(t, "mallory"), ".")[1] + "." + parts[2]
	return []struct {
		name string
		opts []opt
	}{
		{"no credentials", nil},
		{"garbage token", []opt{bearerAuth("garbage")}},
		{"three garbage segments", []opt{bearerAuth("a.b.c")}},
		{"expired JWT", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})}},
		{"JWT without exp", []opt{hs256(jwt.MapClaims{"sub": "alice"})}},
		{"JWT with a string exp", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": "tomorrow"})}},
		// NumericDates are JSON numbers: a string of digits is not one,
		// though encoding/json would read it into a json.Number.
		{"JWT with a numeric string exp", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": strconv.FormatInt(hour, 10)})}},
		{"JWT with a numeric string nbf", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": hour, "nbf": "0"})}},
		{"JWT with a numeric string iat", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": hour, "iat": "0"})}},
		{"JWT with a null nbf", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": hour, "nbf": nil})}},
		{"JWT with a null iat", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": hour, "iat": nil})}},
		{"JWT not valid yet", []opt{hs256(jwt.MapClaims{"sub": "alice", "exp": hour, "nbf": time.Now().Add(30 * time.Minute).Unix()})}},
		{"JWT signed with the wrong secret", []opt{bearerAuth(testtoken.Sign(t, jwt.SigningMethodHS256, []byte("not the secret"),
			jwt.MapClaims{"sub": "alice", "exp": hour}))}},
		{"alg none", []opt{bearerAuth(testtoken.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			jwt.MapClaims{"sub": "alice", "exp": hour}))}},
		{"alg none, hand-made", []opt{bearerAuth(unsignedToken(`{"alg":"none","typ":"JWT"}`, `{"sub":"alice","exp":4102444800}`))}},
		{"alg HS256, no signature", []opt{bearerAuth(unsignedToken(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"alice","exp":4102444800}`))}},
		{"HS384 with the right secret", []opt{bearerAuth(testtoken.Sign(t, jwt.SigningMethodHS384, jwtSecret,
			jwt.MapClaims{"sub": "alice", "exp": hour}))}},
		{"HS512 with the right secret", []opt{bearerAuth(testtoken.Sign(t, jwt.SigningMethodHS512, jwtSecret,
			jwt.MapClaims{"sub": "alice", "exp": hour}))}},
		{"RS256 declared, HMAC signature", []opt{bearerAuth(craftToken(`{"alg":"RS256","typ":"JWT"}`,
			`{"sub":"alice","exp":4102444800}`, jwtSecret))}},
		{"ES256 signed", []opt{bearerAuth(testtoken.Sign(t, jwt.SigningMethodES256, ecKey,
			jwt.MapClaims{"sub": "alice", "exp": hour}))}},
		{"payload swapped under a valid signature", []opt{bearerAuth(forged)}},
		{"sub missing", []opt{hs256(jwt.MapClaims{"exp": hour})}},
		{"sub empty", []opt{hs256(jwt.MapClaims{"sub": "", "exp": hour})}},
		{"sub with a space", []opt{hs256(jwt.MapClaims{"sub": "alice smith", "exp": hour})}},
		{"sub with a slash", []opt{hs256(jwt.MapClaims{"sub": "../admin", "exp": hour})}},
		{"sub of 65 characters", []opt{hs256(jwt.MapClaims{"sub": strings.Repeat("a", 65), "exp": hour})}},
		{"sub a number", []opt{hs256(jwt.MapClaims{"sub": 42, "exp": hour})}},
		{"token without the Bearer scheme", []opt{header("Authorization", valid)}},
		{"Basic scheme", []opt{header("Authorization", "Basic YWxpY2U6cGFzcw==")}},
		{"Bearer without a token", []opt{header("Authorization", "Bearer ")}},
		{"X-User-ID when header mode is off", []opt{header(userHeader, "alice")}},
		{"admin token", []opt{asAdmin()}},
	}
}

func TestBuyerAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	o := e.buy(t, "s", asUser(t, "alice"))
	for _, c := range badBuyerCredentials(t) {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "admin token" {
				// The operator may read and cancel orders, but is no buyer.
				r := e.do(t, "POST", "/v1/sales/s/purchases", "", c.opts...)
				wantUnauthenticated(t, r)
				return
			}
			before := e.snapshot(t, "s")
			for _, req := range []struct{ method, path string }{
				{"POST", "/v1/sales/s/purchases"},
				{"POST", "/v1/sales/missing/purchases"},
				{"GET", "/v1/orders/" + o.ID},
				{"GET", "/v1/orders/o_missing"},
				{"POST", "/v1/orders/" + o.ID + "/cancel"},
			} {
				r := e.do(t, req.method, req.path, `{"quantity":1}`, append(c.opts, idemKey("k"))...)
				wantUnauthenticated(t, r)
			}
			e.wantUnchanged(t, "s", before)
		})
	}
}

func wantUnauthenticated(t *testing.T, r response) {
	t.Helper()
	wantError(t, r, http.StatusUnauthorized, "unauthenticated")
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
	}
}

func TestBuyerIdentity(t *testing.T) {
	off := newEnv(t, envOptions{})
	on := newEnv(t, envOptions{insecureUserHeader: true})
	for _, e := range []*env{off, on} {
		e.createSale(t, `{"id":"s","name":"S","stock":10}`)
	}
	hour := time.Now().Add(time.Hour).Unix()
	cases := []struct {
		name   string
		env    *env
		opts   []opt
		user   string // the buyer of the order; "" for 401
		status int
	}{
		{"JWT", off, []opt{asUser(t, "alice")}, "alice", 201},
		{"JWT with more claims", off, []opt{bearerAuth(testtoken.Sign(t, jwt.SigningMethodHS256, jwtSecret,
			jwt.MapClaims{"sub": "bob", "exp": hour, "iat": time.Now().Unix(), "aud": "surge", "name": "Bob"}))}, "bob", 201},
		{"lower-case scheme", off, []opt{header("Authorization", "bearer "+userToken(t, "carol"))}, "carol", 201},
		{"JWT in header mode", on, []opt{asUser(t, "dave")}, "dave", 201},
		{"X-User-ID in header mode", on, []opt{header(userHeader, "erin")}, "erin", 201},
		{"X-User-ID ignored when header mode is off", off, []opt{header(userHeader, "erin")}, "", 401},
		{"invalid X-User-ID", on, []opt{header(userHeader, "erin smith")}, "", 401},
		{"X-User-ID too long", on, []opt{header(userHeader, strings.Repeat("e", 65))}, "", 401},
		// Two headers were read as the first: a gateway that adds the buyer's
		// id after one the client sent would have bought as the client's.
		{"two X-User-ID headers", on, []opt{header(userHeader, "ivan"), header(userHeader, "judy")}, "", 401},
		{"two equal X-User-ID headers", on, []opt{header(userHeader, "ivan"), header(userHeader, "ivan")}, "", 401},
		{"two Authorization headers", off, []opt{asUser(t, "kim"), asUser(t, "lee")}, "", 401},
		{"bad JWT does not fall back to X-User-ID", on, []opt{bearerAuth("garbage"), header(userHeader, "frank")}, "", 401},
		{"JWT wins over X-User-ID", on, []opt{asUser(t, "grace"), header(userHeader, "frank")}, "grace", 201},
		{"expired JWT in header mode", on, []opt{bearerAuth(testtoken.Sign(t, jwt.SigningMethodHS256, jwtSecret,
			jwt.MapClaims{"sub": "heidi", "exp": time.Now().Add(-time.Hour).Unix()}))}, "", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := c.env.snapshot(t, "s")
			r := c.env.do(t, "POST", "/v1/sales/s/purchases", "", c.opts...)
			if c.status == http.StatusUnauthorized {
				wantUnauthenticated(t, r)
				c.env.wantUnchanged(t, "s", before)
				return
			}
			wantStatus(t, r, c.status)
			o := mustOrder(t, r)
			if o.UserID != c.user {
				t.Errorf("order of %q, want %q", o.UserID, c.user)
			}
			// The same identity reads its order back.
			wantStatus(t, c.env.do(t, "GET", "/v1/orders/"+o.ID, "", c.opts...), http.StatusOK)
		})
	}
}

func TestAdminAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	o := e.buy(t, "s", asUser(t, "alice"))
	creds := []struct {
		name string
		opts []opt
	}{
		{"no credentials", nil},
		{"wrong token", []opt{bearerAuth("admin-secret-tokem")}},
		{"token prefix", []opt{bearerAuth(adminToken[:len(adminToken)-1])}},
		{"token with a suffix", []opt{bearerAuth(adminToken + "x")}},
		{"token without the Bearer scheme", []opt{header("Authorization", adminToken)}},
		{"Basic scheme", []opt{header("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+adminToken)))}},
		{"buyer JWT", []opt{asUser(t, "alice")}},
		{"JWT with sub admin", []opt{asUser(t, "admin")}},
		{"X-User-ID", []opt{header(userHeader, "admin")}},
		{"token in X-Admin-Token", []opt{header("X-Admin-Token", adminToken)}},
		// Two were read as the first: a token a gateway added after the
		// client's would not be the one that counts.
		{"admin token, then a buyer's", []opt{asAdmin(), asUser(t, "alice")}},
		{"admin token twice", []opt{asAdmin(), asAdmin()}},
	}
	reqs := []struct{ method, path, body string }{
		{"POST", "/v1/sales", `{"id":"new","name":"New","stock":1}`},
		{"GET", "/v1/sales/s/orders", ""},
		{"GET", "/v1/sales/missing/orders", ""},
		{"POST", "/v1/orders/" + o.ID + "/pay", ""},
		{"POST", "/v1/orders/o_missing/pay", ""},
	}
	before := e.snapshot(t, "s")
	for _, c := range creds {
		t.Run(c.name, func(t *testing.T) {
			for _, req := range reqs {
				r := e.do(t, req.method, req.path, req.body, c.opts...)
				wantUnauthenticated(t, r)
				if t.Failed() {
					t.Fatalf("%s %s", req.method, req.path)
				}
			}
		})
	}
	e.wantUnchanged(t, "s", before)
	if r := e.do(t, "GET", "/v1/sales/new", ""); r.status != http.StatusNotFound {
		t.Errorf("a sale was created without the admin token: %v", r)
	}
	// And the real token works on each.
	wantStatus(t, e.do(t, "POST", "/v1/sales", reqs[0].body, asAdmin()), http.StatusCreated)
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/pay", "", asAdmin()), http.StatusOK)
}

// TestTokenChecksCounted: the source of surge_buyer_token_checks_total
// counts a buyer's token once when it is first checked, not on the
// retries the cache answers, and a refused token every time; a reload
// keeps the counts running (and the cache, unless the keys changed).
func TestTokenChecksCounted(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"tc","name":"Token checks","stock":1}`)
	tok := userToken(t, "alice")
	want := func(accepted, refused int64) {
		t.Helper()
		if got := e.handler.TokenChecks(); got.Accepted != accepted || got.Refused != refused {
			t.Fatalf("token checks %+v, want %d accepted and %d refused", got, accepted, refused)
		}
	}
	want(0, 0)
	for range 3 {
		r := e.do(t, "POST", "/v1/sales/tc/purchases", `{"quantity":1}`, bearerAuth(tok), idemKey("k"))
		wantStatus(t, r, http.StatusCreated)
	}
	want(1, 0)
	for range 2 {
		r := e.do(t, "POST", "/v1/sales/tc/purchases", `{"quantity":1}`, bearerAuth(tok[:len(tok)-2]))
		wantStatus(t, r, http.StatusUnauthorized)
	}
	want(1, 2)
	// A reload that keeps the keys keeps the cache too.
	e.handler.Apply(surgehttp.Config{AdminToken: adminToken, JWTSecret: jwtSecret})
	wantStatus(t, e.do(t, "POST", "/v1/sales/tc/purchases", `{"quantity":1}`, bearerAuth(tok), idemKey("k")), http.StatusCreated)
	want(1, 2)
	// One that changes them checks the token again, and counts it.
	e.handler.Apply(surgehttp.Config{AdminToken: adminToken, JWTSecret: jwtSecret,
		BuyerAuth: surgehttp.BuyerAuth{JWKS: surgehttp.LoadTestKeys(t).JWKS}})
	wantStatus(t, e.do(t, "POST", "/v1/sales/tc/purchases", `{"quantity":1}`, bearerAuth(tok), idemKey("k")), http.StatusCreated)
	want(2, 2)
}

// TestAdminRouteTokenChecks: an admin route verifies a token that is not
// the admin's only to tell a buyer's good token from a bad one for its
// challenge, and counts neither. It must not count in the buyers' checks
// either by leaving the token in the cache of verified tokens: the buyer
// who met an admin route first would then be answered from the cache on
// every purchase, and never counted as checked at all.
func TestAdminRouteTokenChecks(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"tc","name":"Token checks","stock":1}`)
	tok := userToken(t, "alice")
	for _, bad := range []string{tok, tok[:len(tok)-2]} {
		wantStatus(t, e.do(t, "GET", "/v1/sales/tc/orders", "", bearerAuth(bad)), http.StatusUnauthorized)
	}
	if got := e.handler.TokenChecks(); got.Accepted != 0 || got.Refused != 0 {
		t.Fatalf("token checks %+v after tokens on an admin route only, want none: they are no buyer's checks", got)
	}
	wantStatus(t, e.do(t, "POST", "/v1/sales/tc/purchases", `{"quantity":1}`, bearerAuth(tok), idemKey("k")), http.StatusCreated)
	if got := e.handler.TokenChecks(); got.Accepted != 1 || got.Refused != 0 {
		t.Fatalf("token checks %+v after the buyer's first purchase, want 1 accepted and 0 refused: "+
			"the token an admin route verified was answered from the cache, never counted", got)
	}
}
