package http

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge/servicetest"
)

// TestJWKSURLPasswordNotShown: a --jwks-url may carry the key server's
// credentials (https://user:password@host/...). Neither the errors of a
// fetch (at start, on a reload) nor the logs of the refreshes show the
// password, as none shows a store URL's: it is masked, and a URL that
// does not parse is not quoted at all.
func TestJWKSURLPasswordNotShown(t *testing.T) {
	const password = "jwks-pass-0123"
	k1, k2 := newEd25519(t), newEd25519(t)
	srv := newJWKSServer(t, jwksDoc(t, PublicJWK("k1", k1.Public())))
	url := "http://surge:" + password + "@" + srv.Listener.Addr().String() + "/keys"
	logs := &servicetest.Log{} // the refresh goroutine writes it
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	remote, err := FetchJWKS(t.Context(), url, RemoteJWKSOptions{Refresh: 50 * time.Millisecond, MinRefetch: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()

	// A rotation is logged (info), naming the key server.
	srv.serve(http.StatusOK, jwksDoc(t, PublicJWK("k2", k2.Public())))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := remote.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// The key server fails: a reload's fetch is refused, the scheduled
	// refreshes log a warning.
	srv.serve(http.StatusInternalServerError, []byte("down"))
	refreshErr := remote.Refresh(ctx)
	if refreshErr == nil {
		t.Fatal("a fetch from a key server answering 500 succeeded")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "refresh failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "refresh failed") {
		t.Fatalf("no scheduled refresh failed within 10 s; the log:\n%s", logs.String())
	}
	remote.Close()

	// The start: a key server down, and a URL that does not parse.
	_, startErr := FetchJWKS(t.Context(), url, RemoteJWKSOptions{Logger: log})
	if startErr == nil {
		t.Fatal("a first fetch from a key server answering 500 succeeded")
	}
	_, badErr := FetchJWKS(t.Context(), "http://surge:"+password+"@"+srv.Listener.Addr().String()+"/%zz", RemoteJWKSOptions{Logger: log})
	if badErr == nil {
		t.Fatal("a URL with a bad escape was fetched")
	}

	for _, c := range []struct{ what, text string }{
		{"the logs of the key rotation and of the failed refreshes", logs.String()},
		{"the error of a fetch refused on a reload", refreshErr.Error()},
		{"the error of a failed first fetch (at start)", startErr.Error()},
		{"the error of a URL that does not parse (at start)", badErr.Error()},
	} {
		if strings.Contains(c.text, password) {
			t.Errorf("%s: the key server's password %q of --jwks-url is shown; want it masked (xxxxx), as a store URL's password is:\n%s",
				c.what, password, c.text)
		}
	}
	if !strings.Contains(logs.String(), "keys changed") {
		t.Errorf("the rotation was not logged; the log:\n%s", logs.String())
	}
}

// TestJWKSURLQueryNotShown: a --jwks-url may carry a secret in its query
// string (https://keys/jwks?access_token=…), as some key servers want.
// Neither the errors of a fetch (at start, on a reload) nor the logs (a
// scheduled refresh, a fetch for an unknown kid that failed) show it:
// query values are masked as the password is.
func TestJWKSURLQueryNotShown(t *testing.T) {
	const secret = "jwks-query-secret-0123"
	k1 := newEd25519(t)
	srv := newJWKSServer(t, jwksDoc(t, PublicJWK("k1", k1.Public())))
	url := srv.URL + "/keys?tenant=shop&access_token=" + secret
	logs := &servicetest.Log{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	remote, err := FetchJWKS(t.Context(), url, RemoteJWKSOptions{Refresh: 50 * time.Millisecond, MinRefetch: time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	// The key server goes away: a transport error, whose text names the URL.
	srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	refreshErr := remote.Refresh(ctx)
	if refreshErr == nil {
		t.Fatal("a fetch from a key server that is gone succeeded")
	}
	a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: remote}})
	kit := tokenKit{t: t}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	if _, err := a.verifyJWT(kit.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": "new"}, claims)); err == nil {
		t.Fatal("a token with an unknown kid was accepted")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "refresh failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "refresh failed") || !strings.Contains(logs.String(), "unknown kid failed") {
		t.Fatalf("no scheduled refresh and no fetch for an unknown kid failed within 10 s; the log:\n%s", logs.String())
	}
	remote.Close()
	_, startErr := FetchJWKS(t.Context(), url, RemoteJWKSOptions{Logger: log})
	if startErr == nil {
		t.Fatal("a first fetch from a key server that is gone succeeded")
	}
	for _, c := range []struct{ what, text string }{
		{"the logs of the failed refreshes", logs.String()},
		{"the error of a fetch refused on a reload", refreshErr.Error()},
		{"the error of a failed first fetch (at start)", startErr.Error()},
	} {
		if strings.Contains(c.text, secret) {
			t.Errorf("%s: the secret %q in --jwks-url's query is shown; want query values masked (xxxxx), as the password is:\n%s",
				c.what, secret, c.text)
		}
	}
}

// TestJWKSURLBareQuerySecretNotShown: a key server may take its
// credential as the whole query, a bare word without a name
// (https://keys/jwks?s3cret). The query parser reads it as a name with an
// empty value, and masking the values showed it whole as "s3cret=xxxxx":
// neither --print-config (MaskedQuery) nor the error of a fetch may show
// it.
func TestJWKSURLBareQuerySecretNotShown(t *testing.T) {
	const secret = "bare-query-secret-0123"
	for _, c := range []struct{ raw, want string }{
		{secret, "xxxxx"},
		{secret + "=", "xxxxx"},
		{"tenant=a&" + secret, "tenant=xxxxx&xxxxx"},
		{secret + "&access_token=" + secret, "access_token=xxxxx&xxxxx"},
	} {
		if got := MaskedQuery(c.raw); got != c.want {
			t.Errorf("MaskedQuery(%q) = %q; want %q: a bare word is the secret itself, nothing of it shown", c.raw, got, c.want)
		}
	}
	// The error of a fetch from a key server that is gone.
	srv := newJWKSServer(t, nil)
	srv.Close()
	_, err := FetchJWKS(t.Context(), srv.URL+"/keys?"+secret, RemoteJWKSOptions{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Fatal("a first fetch from a key server that is gone succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error of a failed first fetch shows the bare secret of --jwks-url's query:\n%v", err)
	}
}

// TestJWKSURLRedirectQueryNotShown: a key server may redirect the fetch
// to a signed URL whose query is a credential (?sig=…). When the fetch
// of the redirect's target fails, net/http's error quotes that URL whole
// but for its password, and only --jwks-url's own query was masked: the
// errors of a fetch (at start, on a reload) and the logs of the
// refreshes must not show the target's query values either.
func TestJWKSURLRedirectQueryNotShown(t *testing.T) {
	const secret = "redirect-query-secret-0123"
	k1 := newEd25519(t)
	doc := jwksDoc(t, PublicJWK("k1", k1.Public()))
	// The redirect's target: a port where nothing listens any more.
	gone := newJWKSServer(t, doc)
	gone.Close()
	target := gone.URL + "/signed/keys?sig=" + secret + "&expires=1"
	var redirect atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirect.Load() {
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	refreshErr, startErr, logs := failRedirected(t, srv.URL+"/keys", &redirect, "a key server that is gone")
	for _, c := range []struct{ what, text string }{
		{"the error of a fetch refused on a reload", refreshErr.Error()},
		{"the error of a failed first fetch (at start)", startErr.Error()},
		{"the logs of the failed refreshes", logs},
	} {
		if strings.Contains(c.text, secret) {
			t.Errorf("%s: the secret %q in the query of the redirect's target is shown; want query values masked (xxxxx), as --jwks-url's own are:\n%s",
				c.what, secret, c.text)
		}
	}
}

// TestJWKSURLQueryMaskedAsQuoted: net/http's errors quote the URL (%q),
// which escapes a backslash or a double quote in its query, so the query
// as configured is not in their text: its secret was shown there. And a
// short query (?a) was masked wherever its text appeared in the error,
// the message mangled ("fxxxxxiled to perform"). The query is masked in
// the URL as the error quotes it, and nowhere else.
func TestJWKSURLQueryMaskedAsQuoted(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.Close()
	for _, q := range []string{`access_token=quoted\secret-0123`, `access_token=quoted"secret-0123`, `a`} {
		_, err := FetchJWKS(t.Context(), srv.URL+"/keys?"+q, RemoteJWKSOptions{Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			t.Fatal("a first fetch from a key server that is gone succeeded")
		}
		if msg := err.Error(); strings.Contains(msg, "secret-0123") {
			t.Errorf("--jwks-url ?%s: the error of a failed first fetch shows the query's secret:\n%s", q, msg)
		} else if !strings.Contains(msg, "failed to perform") || !strings.Contains(msg, "dial tcp") {
			t.Errorf("--jwks-url ?%s: the error of a failed first fetch is mangled beyond the URL's query:\n%s", q, msg)
		}
	}
}

// TestJWKSURLRedirectExtendingQueryNotShown: a key server that redirects
// --jwks-url to itself with a signature appended (?token=…&sig=…), the
// fetch then failing, showed the signature: --jwks-url, a prefix of the
// target, was masked first where it stood inside the target's text, so
// the target itself was found no more and the rest of its query stayed.
func TestJWKSURLRedirectExtendingQueryNotShown(t *testing.T) {
	const secret = "extending-sig-secret-0123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") == "" {
			http.Redirect(w, r, r.URL.Path+"?"+r.URL.RawQuery+"&sig="+secret, http.StatusFound)
			return
		}
		// The signed URL's server fails the connection: net/http's error
		// quotes the redirect's target.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	_, err := FetchJWKS(t.Context(), srv.URL+"/keys?token=tok", RemoteJWKSOptions{})
	if err == nil {
		t.Fatal("a fetch whose redirect's target closed the connection succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error of a first fetch redirected to --jwks-url with a signature appended shows the signature %q; want query values masked (xxxxx):\n%s",
			secret, err)
	}
}

// TestJWKSURLUnparsableLocationNotShown: a key server may redirect the
// fetch to a signed URL (?sig=…) that Go cannot parse (a host with a
// stray bracket, a control character). net/http's error then quotes the
// Location header whole ("failed to parse Location header …"), and no URL
// whose query could be masked is in the error's chain: the signature
// showed in the errors of a fetch (at start, on a reload) and in the logs
// of the refreshes. A Location that does not parse is not shown at all,
// as a --jwks-url that does not parse is not.
func TestJWKSURLUnparsableLocationNotShown(t *testing.T) {
	const secret = "unparsable-location-secret-0123"
	k1 := newEd25519(t)
	doc := jwksDoc(t, PublicJWK("k1", k1.Public()))
	for _, tc := range []struct{ name, loc string }{
		// net/http's client cannot parse it to follow it.
		{"a stray bracket", "http://[::1/signed/keys?sig=" + secret},
		// Its transport refuses the header line, which it quotes.
		{"a DEL", "http://127.0.0.1:1/signed/keys?sig=" + secret + "&x=\x7f"},
		{"a control character", "/signed/keys?sig=" + secret + "\x01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var redirect atomic.Bool
			// The answer written by hand: net/http's own writer may
			// refuse or rewrite such a header.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !redirect.Load() {
					_, _ = w.Write(doc)
					return
				}
				conn, bw, err := w.(http.Hijacker).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				_, _ = bw.WriteString("HTTP/1.1 302 Found\r\nLocation: " + tc.loc + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				_ = bw.Flush()
			}))
			t.Cleanup(srv.Close)
			refreshErr, startErr, logs := failRedirected(t, srv.URL+"/keys", &redirect, "a Location that does not parse")
			for _, c := range []struct{ what, text string }{
				{"the error of a fetch refused on a reload", refreshErr.Error()},
				{"the error of a failed first fetch (at start)", startErr.Error()},
				{"the logs of the failed refreshes", logs},
			} {
				if strings.Contains(c.text, secret) {
					t.Errorf("%s: the secret %q in the query of a redirect's Location that does not parse is shown; want it not shown:\n%s",
						c.what, secret, c.text)
				}
			}
			if !strings.Contains(startErr.Error(), "not shown") {
				t.Errorf("the error of a first fetch redirected to a Location that does not parse does not say what it hides:\n%v", startErr)
			}
		})
	}
}

// failRedirected fetches the keys at url, then, with redirect set (the key
// server now redirects to what to says), refreshes them, waits for a
// scheduled refresh to fail, and fetches them anew as a start does. It
// returns the reload's error, the start's error and the refreshes' logs.
func failRedirected(t *testing.T, url string, redirect *atomic.Bool, to string) (refreshErr, startErr error, logs string) {
	t.Helper()
	buf := &servicetest.Log{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	remote, err := FetchJWKS(t.Context(), url, RemoteJWKSOptions{Refresh: 50 * time.Millisecond, MinRefetch: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	redirect.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if refreshErr = remote.Refresh(ctx); refreshErr == nil {
		t.Fatalf("a fetch redirected to %s succeeded", to)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(buf.String(), "refresh failed") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), "refresh failed") {
		t.Fatalf("no scheduled refresh failed within 10 s; the log:\n%s", buf.String())
	}
	remote.Close()
	if _, startErr = FetchJWKS(t.Context(), url, RemoteJWKSOptions{Logger: log}); startErr == nil {
		t.Fatalf("a first fetch redirected to %s succeeded", to)
	}
	return refreshErr, startErr, buf.String()
}
