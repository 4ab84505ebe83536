package http

import (
	"path"
	"strings"
	"testing"
)

// FuzzCleanPath: cleanPath's shortcut for paths with nothing to clean
// answers what path.Clean and the trailing-slash rule answer, for any
// path.
func FuzzCleanPath(f *testing.F) {
	for _, p := range []string{"", "/", "a", "/v1/sales/s/purchases", "/v1/sales/", "//", "/v1//sales", "/.", "/..",
		"/v1/./sales", "/v1/../x", "/v1/.hidden", "/v1/sales/.", "/v1/sales/..", "/a/b/", "/a.b/c.", "/%2e%2e/x"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		want := p
		if want == "" || want[0] != '/' {
			want = "/" + want
		}
		np := path.Clean(want)
		if strings.HasSuffix(want, "/") && np != "/" {
			np += "/"
		}
		if got := cleanPath(p); got != np {
			t.Fatalf("cleanPath(%q) = %q, want %q", p, got, np)
		}
	})
}
