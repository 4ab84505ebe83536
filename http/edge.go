package http

import (
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/surgehq/surge"
)

// edge answers, in the JSON error shape, the requests that ServeMux would
// otherwise answer in plain text or HTML, and closes the connection after
// requests whose framing a proxy in front might read differently. It
// reports whether the request goes on to the routes.
//
// What net/http answers before any handler runs (a malformed request
// line or header 400, 431, 501 for an unsupported Transfer-Encoding, 505)
// cannot be reached from here; docs/api.md lists those exceptions.
func edge(w http.ResponseWriter, r *http.Request) bool {
	if len(r.TransferEncoding) > 0 {
		// RFC 9112 §6.1: a request with both Content-Length and
		// Transfer-Encoding must be answered and the connection closed,
		// as it may be a smuggling attempt. net/http removes
		// Content-Length from a chunked request before any handler runs,
		// so the two cannot be told apart here: every chunked request
		// closes its connection. API bodies are small and clients send
		// them with Content-Length, which keeps the connection.
		w.Header().Set("Connection", "close")
	}
	switch {
	case r.RequestURI == "*":
		// OPTIONS *, and PRI * (HTTP/2's preface, not served here).
		// ServeMux answers an empty 400 and closes; so do we, in JSON.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusBadRequest, string(surge.CodeInvalid), "the asterisk target is not served; name a path")
		return false
	case r.Method == http.MethodConnect:
		// What follows a CONNECT is meant for a tunnel, not for us.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: this server is not a proxy")
		return false
	}
	// ServeMux redirects an unclean path (empty, "." or ".." segments) to
	// its clean form with a 307 and an HTML body; no API path is unclean,
	// so it is an unknown path. The check is ServeMux's own, on the
	// escaped path.
	if p := r.URL.EscapedPath(); p != cleanPath(p) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: a path has no empty, \".\" or \"..\" segment")
		return false
	}
	return true
}

// trimFieldValues drops the spaces and tabs around each header value of an
// HTTP/2 request. They are never part of a field's value (RFC 9110 §5.5):
// net/http's HTTP/1 reader drops them, its HTTP/2 server (h2c shares the
// API's listener) hands them over as sent, so without this
// "Idempotency-Key: k1 " would be one key over HTTP/1.1 and another over
// HTTP/2, and a buyer retrying on the other protocol would buy twice.
func trimFieldValues(h http.Header) {
	for _, vs := range h {
		for i, v := range vs {
			if v != "" && (isOWS(v[0]) || isOWS(v[len(v)-1])) {
				vs[i] = strings.Trim(v, " \t")
			}
		}
	}
}

func isOWS(b byte) bool { return b == ' ' || b == '\t' }

// h2ContentLengthAgrees reports whether the Content-Length of an HTTP/2
// request (after trimFieldValues), if it has one, is one number of bytes,
// as HTTP/1.1's reader requires (identical repeats allowed), and the
// length net/http's HTTP/2 server took for the body. That server reads a
// value it cannot parse ("abc", "-1", "14, 14", or one of several that
// differ) as 0, and a stream that ends with its headers as a body of 0
// whatever length it declared (malformed, RFC 9113 §8.1.1): without this a
// purchase with such framing, which HTTP/1.1 refuses 400, bought as one
// without a body.
func h2ContentLengthAgrees(r *http.Request) bool {
	vs, ok := r.Header["Content-Length"]
	if !ok {
		return true
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return false
		}
	}
	n, err := strconv.ParseUint(vs[0], 10, 63)
	return err == nil && int64(n) == r.ContentLength
}

// cleanPath is ServeMux's canonical form of a path: rooted, without
// empty, "." or ".." segments, keeping a trailing slash.
func cleanPath(p string) string {
	// A rooted path with no "//" and no segment starting with "." has
	// nothing to clean: every API path, so the common case skips
	// path.Clean's copy.
	if p != "" && p[0] == '/' && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}
