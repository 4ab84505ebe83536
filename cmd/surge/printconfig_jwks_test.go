package main

import (
	"context"
	"strings"
	"testing"
)

// TestPrintConfigJWKSQueryNotParsed: --print-config masks every value of
// --jwks-url's query, as the fetch's logs and errors do. A query Go's
// parser refuses (a value with a semicolon or a stray %) left the parsed
// set empty, and then the query was printed as it was, secret included,
// while the logs and errors of the same URL drop what does not parse.
func TestPrintConfigJWKSQueryNotParsed(t *testing.T) {
	for _, u := range []string{
		"https://keys.example/jwks?access_token=s3cret;x",
		"https://keys.example/jwks?access_token=s3cret%zz",
		"https://keys.example/jwks?tenant=a&access_token=s3cret;x",
	} {
		code, stdout, stderr := runCLI(context.Background(), "serve", "--print-config", "--data-dir", t.TempDir(), "--jwks-url", u)
		if code != 0 {
			t.Fatalf("serve --print-config --jwks-url %s: exit %d, stderr %q", u, code, stderr)
		}
		if line := grepLines(stdout, "jwks-url:"); strings.Contains(line, "s3cret") {
			t.Errorf("serve --print-config --jwks-url %s printed %q: the secret in the query shows; want every query value masked or dropped, as in the fetch's logs", u, strings.TrimSpace(line))
		}
	}
}

// TestPrintConfigJWKSURLWithoutScheme: a --jwks-url mistyped without
// "://" (the scheme left out, or "https:" with no slashes) still carries
// its query to the fetch, whose errors and logs mask the query's values;
// --print-config, the tool to find such a mistake, printed the URL as it
// was, secret included, since it masked only URLs holding "://".
func TestPrintConfigJWKSURLWithoutScheme(t *testing.T) {
	for _, u := range []string{
		"keys.example/jwks?access_token=s3cret",
		"https:keys.example/jwks?access_token=s3cret",
		"https:/keys.example/jwks?tenant=a&access_token=s3cret",
	} {
		code, stdout, stderr := runCLI(context.Background(), "serve", "--print-config", "--data-dir", t.TempDir(), "--jwks-url", u)
		if code != 0 {
			t.Fatalf("serve --print-config --jwks-url %s: exit %d, stderr %q", u, code, stderr)
		}
		if line := grepLines(stdout, "jwks-url:"); strings.Contains(line, "s3cret") || !strings.Contains(line, "access_token") {
			t.Errorf("serve --print-config --jwks-url %s printed %q; want the query's values masked (the names kept), as the fetch's errors and logs show it", u, strings.TrimSpace(line))
		}
	}
}
