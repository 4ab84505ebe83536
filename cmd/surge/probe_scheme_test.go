package main

import (
	"strings"
	"testing"
)

// TestProbeURLWithoutScheme: --url localhost:8080/healthz, the likeliest
// slip, was refused as an "unsupported protocol scheme "localhost"";
// the refusal says to write the scheme, exit 1 as every probe failure.
func TestProbeURLWithoutScheme(t *testing.T) {
	for _, u := range []string{"localhost:8080/healthz", "127.0.0.1:8080", "ftp://127.0.0.1/x", "/healthz"} {
		code, _, stderr := runCLI(cancelled(), "probe", "--url", u)
		want := `probe: --url "` + u + `" is not an http:// or https:// URL such as http://127.0.0.1:8080/healthz`
		if code != 1 || !oneLine(stderr) || !strings.Contains(stderr, want) {
			t.Errorf("probe --url %s: exit %d, stderr %q; want 1 and one line with %q", u, code, stderr, want)
		}
	}
}
