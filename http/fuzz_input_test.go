package http_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/surgehq/surge"
)

// keyRE is the definition of an Idempotency-Key: 1 to 128 printable ASCII
// characters.
var keyRE = regexp.MustCompile(`^[\x20-\x7e]{1,128}$`)

// FuzzPathID checks surge.ValidID against its definition, the regular
// expression [A-Za-z0-9_-]{1,64}, and what the router makes of any id as a
// path segment: the sale for its id, 404 for any other id, the dot
// segments the mux would clean included.
func FuzzPathID(f *testing.F) {
	e := newEnv(f, envOptions{noServer: true})
	if r := e.serve("POST", "/v1/sales", []byte(`{"id":"fz","name":"Fuzz","stock":1}`), asAdmin()); r.status != http.StatusCreated {
		f.Fatalf("create sale: %v", r)
	}
	f.Fuzz(func(t *testing.T, id string) {
		valid := idRE.MatchString(id)
		if surge.ValidID(id) != valid {
			t.Fatalf("ValidID(%q) = %v, the definition says %v", id, !valid, valid)
		}
		p := "/v1/sales/" + url.PathEscape(id)
		r := e.serve("GET", p, nil)
		switch {
		case id == "fz":
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %v", p, r)
			}
		case valid:
			wantError(t, r, http.StatusNotFound, "sale_not_found")
		case id == "." || id == "..":
			// A path with dot segments is no API path: 404 in JSON, where
			// ServeMux would redirect to the clean form.
			wantError(t, r, http.StatusNotFound, "not_found")
			if loc := r.header.Get("Location"); loc != "" || cleanPath(p) == p {
				t.Fatalf("GET %s = %v, Location %q", p, r, loc)
			}
		default:
			if r.status != http.StatusNotFound {
				t.Fatalf("GET %s = %v, want 404", p, r)
			}
			if code := errorCode(t, r); code != "sale_not_found" && code != "not_found" {
				t.Fatalf("GET %s: code %q", p, code)
			}
		}
	})
}

// cleanPath is net/http's canonical form of a request path.
func cleanPath(p string) string {
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// FuzzIdempotencyKey checks surge.ValidKey against its definition and the
// purchase endpoint against both: a valid key reserves once and replays
// the same answer; any other value is a 400 that reserves nothing.
func FuzzIdempotencyKey(f *testing.F) {
	e := newEnv(f, envOptions{noServer: true})
	sale := fmt.Sprintf(`{"id":"ik","name":"Keys","stock":%d,"per_user_limit":1}`, surge.MaxStock)
	if r := e.serve("POST", "/v1/sales", []byte(sale), asAdmin()); r.status != http.StatusCreated {
		f.Fatalf("create sale: %v", r)
	}
	var buyers atomic.Int64
	f.Fuzz(func(t *testing.T, key string) {
		valid := keyRE.MatchString(key)
		if surge.ValidKey(key) != valid {
			t.Fatalf("ValidKey(%q) = %v, the definition says %v", key, !valid, valid)
		}
		user := fmt.Sprintf("key-%d", buyers.Add(1))
		// Set the header as received, bypassing the client's checks.
		withKey := func(r *http.Request) { r.Header["Idempotency-Key"] = []string{key} }
		r := e.serve("POST", "/v1/sales/ik/purchases", nil, asUser(t, user), withKey)
		if !valid {
			wantError(t, r, http.StatusBadRequest, "invalid_request")
			// Nothing was reserved: the buyer's one unit is still there.
			if again := e.serve("POST", "/v1/sales/ik/purchases", nil, asUser(t, user)); again.status != http.StatusCreated {
				t.Fatalf("after a refused key %q the buyer cannot buy: %v", key, again)
			}
			return
		}
		if r.status != http.StatusCreated {
			t.Fatalf("valid key %q: %v", key, r)
		}
		o := mustOrder(t, r)
		if o.IdempotencyKey != key || o.UserID != user {
			t.Fatalf("order %+v for key %q", o, key)
		}
		replay := e.serve("POST", "/v1/sales/ik/purchases", nil, asUser(t, user), withKey)
		if replay.status != http.StatusCreated || replay.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(replay.body, r.body) {
			t.Fatalf("replay of key %q = %v, want the first answer %v", key, replay, r)
		}
	})
}
