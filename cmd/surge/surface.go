package main

import (
	"net/http"
	"strings"

	surgehttp "github.com/surgehq/surge/http"
)

// corsOriginList is --cors-origins as a list, checked: exact origins, no
// wildcard (surgehttp.CheckOrigins).
func (c serveConfig) corsOriginList() ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(c.corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	if err := surgehttp.CheckOrigins(out); err != nil {
		return nil, errUsage{"serve: --cors-origins: " + err.Error()}
	}
	return out, nil
}

// serveH2C lets srv serve HTTP/2 without TLS (prior knowledge, as gRPC
// clients speak it to a plain address) beside HTTP/1.1: the gRPC API
// (package rpc) shares the HTTP API's listener.
func serveH2C(srv *http.Server) {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = &p
}
