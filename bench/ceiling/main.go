// Command ceiling is the yardstick of the HTTP benchmarks: the least a Go
// net/http server can do per purchase request (read the body, answer a
// fixed JSON body). Surge's throughput is quoted as a ratio to it, measured
// in the same run on the same machine.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	flag.Parse()
	body := []byte(`{"order":{"id":"o_aaaaaaaaaaaaaaaa","sale_id":"bench","user_id":"u1","quantity":1,"status":"reserved","created_at":"2026-01-01T00:00:00.000Z","expires_at":"2026-01-01T00:15:00.000Z"}}` + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sales/{id}/purchases", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4096))
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
