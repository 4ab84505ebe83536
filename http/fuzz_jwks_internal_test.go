package http

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// FuzzParseJWKS: no document makes the key-set parser panic; a set it
// accepts holds at least one key, every key's kid at most once, and no
// private or symmetric key material, in any key of the document; and a
// set a file may hold, a fetched set (which skips unusable keys) holds
// too, key for key.
func FuzzParseJWKS(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	x := base64.RawURLEncoding.EncodeToString(pub)
	for _, s := range []string{
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","use":"sig","alg":"EdDSA"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"b","key_ops":["verify"]}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a"},{"kty":"RSA","use":"enc","kid":"e","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + x + `"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","d":"` + x + `"}]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		`{"keys":[]} `,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}]}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := ParseJWKS(data)
		lenient, lerr := parseJWKS(data, true)
		if err != nil {
			return
		}
		if ks.Len() < 1 {
			t.Fatalf("accepted a set of no key: %s", data)
		}
		if lerr != nil || lenient.Len() != ks.Len() {
			t.Fatalf("a file's set (%d keys) is refused or changed when fetched: %v", ks.Len(), lerr)
		}
		seen := map[string]bool{}
		for _, k := range ks.keys {
			if k.kid != "" && seen[k.kid] {
				t.Fatalf("kid %q twice in %s", k.kid, data)
			}
			seen[k.kid] = true
			if k.alg != algEdDSA && k.alg != algRS256 && k.alg != algES256 {
				t.Fatalf("key of alg %q", k.alg)
			}
		}
		var doc struct {
			Keys []map[string]json.RawMessage `json:"keys"`
		}
		if json.Unmarshal(data, &doc) == nil {
			for _, k := range doc.Keys {
				for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
					if _, ok := k[m]; ok {
						t.Fatalf("accepted a key holding %q: %s", m, data)
					}
				}
			}
		}
	})
}
