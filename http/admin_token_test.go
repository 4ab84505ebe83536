package http

import (
	"bytes"
	"crypto/sha256"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminTokenComparison checks that only the exact token passes, whatever
// its length: no prefix, no extension, and no token of the right length
// that differs in any single byte. isAdmin screens by a keyed hash and
// confirms by SHA-256 digests in constant time.
func TestAdminTokenComparison(t *testing.T) {
	const token = "admin-secret-token-0123456789"
	a := newAuthenticatorOptions(authOptions{adminToken: token})
	if !a.isAdmin(token) {
		t.Fatal("the exact token is refused")
	}
	if bytes.Contains(a.adminHash[:], []byte(token)) || a.adminHash != sha256.Sum256([]byte(token)) {
		t.Fatal("the authenticator must keep only the token's digest")
	}
	var candidates []string
	for n := 0; n < len(token); n++ {
		candidates = append(candidates, token[:n], token[len(token)-n:]) // prefixes, suffixes
	}
	for _, extra := range []string{"x", " ", "\x00", "\n", token} {
		candidates = append(candidates, token+extra, extra+token)
	}
	for i := range len(token) {
		for _, flip := range []byte{0x01, 0x20, 0x80} {
			b := []byte(token)
			b[i] ^= flip
			candidates = append(candidates, string(b))
		}
	}
	candidates = append(candidates, strings.ToUpper(token), strings.Repeat("a", len(token)),
		strings.Repeat("\x00", len(token)), string(a.adminHash[:]))
	for _, c := range candidates {
		if a.isAdmin(c) {
			t.Errorf("isAdmin(%q) = true", c)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+c)
		if a.admin(r) == nil {
			t.Errorf("admin accepted %q", c)
		}
	}

	// Without a configured token nothing is admin, not even an empty one.
	none := newAuthenticatorOptions(authOptions{})
	for _, c := range []string{"", " ", "Bearer", token} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+c)
		if none.admin(r) == nil {
			t.Errorf("an empty admin token let %q in", c)
		}
	}
}
