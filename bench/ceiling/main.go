// Command ceiling is the yardstick of the HTTP benchmarks: the least a Go
// net/http server can do per purchase request (read the body, answer a
// fixed JSON body). Surge's throughput is quoted as a ratio to it, measured
// in the same run on the same machine.
//
// With -durable FILE it is a second yardstick: the least a net/http server
// can do that answers 201 only once the purchase is on disk. Each request
// hands a 64-byte record to one writer goroutine and waits; the writer
// appends every record queued since its last write in one write(2) and
// makes them durable with one fdatasync(2) (group commit), then answers
// them all. No decision, no index, no database: what is left of Surge's
// cost against this floor is its own.
//
// With -redis URL -postgres URL it is the same floor for cluster mode: per
// group, one Redis call (DECRBY of a stock key by the group's size) and one
// PostgreSQL transaction inserting the group's keys, then the answers.
//
// With -debug-addr ADDR it serves net/http/pprof there, so that a profile
// of the yardstick can be read beside one of Surge under the same load
// (bench/jwt.sh with PROFILE).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"github.com/surgehq/surge/internal/datasync"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	durable := flag.String("durable", "", "if set, append a record per purchase to this file, group-committed with fdatasync, before answering")
	redisURL := flag.String("redis", "", "with -postgres: per group of purchases, one Redis DECRBY and one PostgreSQL INSERT of their keys before answering")
	postgresURL := flag.String("postgres", "", "PostgreSQL URL of the cluster floor (its search_path holds the table)")
	prefix := flag.String("prefix", "ceiling", "the cluster floor's Redis key prefix")
	debugAddr := flag.String("debug-addr", "", "if set, serve net/http/pprof on this separate address")
	flag.Parse()
	var commits *groupCommit
	switch {
	case *durable != "" && (*redisURL != "" || *postgresURL != ""):
		log.Fatal("-durable is the embedded floor, -redis with -postgres the cluster floor: give one of them")
	case (*redisURL != "") != (*postgresURL != ""):
		log.Fatal("the cluster floor needs both -redis and -postgres")
	case *durable != "":
		f, err := os.OpenFile(*durable, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		commits = newGroupCommit(fileCommit(f))
	case *redisURL != "" && *postgresURL != "":
		commit, err := clusterCommit(context.Background(), *redisURL, *postgresURL, *prefix)
		if err != nil {
			log.Fatal(err)
		}
		commits = newGroupCommit(commit)
	}
	if *debugAddr != "" {
		go func() {
			dbg := &http.Server{Addr: *debugAddr, Handler: debugMux(), ReadHeaderTimeout: 5 * time.Second}
			log.Fatal(dbg.ListenAndServe())
		}()
	}
	mux := newMux(commits)
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// debugMux serves the profiles, on a listener of its own.
func debugMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	return m
}

// orderJSON is the answer to every purchase: an order as Surge answers it.
const orderJSON = `{"order":{"id":"o_aaaaaaaaaaaaaaaa","sale_id":"bench","user_id":"u1","quantity":1,"status":"reserved","created_at":"2026-01-01T00:00:00.000Z","expires_at":"2026-01-01T00:15:00.000Z"}}` + "\n"

// newMux returns the yardstick's routes; commits, if not nil, makes each
// purchase durable before its answer.
func newMux(commits *groupCommit) *http.ServeMux {
	body := []byte(orderJSON)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sales/{id}/purchases", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4096))
		if commits != nil {
			if err := commits.append(r.Header.Get("Idempotency-Key")); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	})
	// surge bench reads the sale's per-user limit before it starts, so
	// that `surge bench --sale ID --no-verify` runs against the yardstick
	// too: its open loop on the floor is the latency a server that does no
	// work of its own reaches at the same rate.
	mux.HandleFunc("GET /v1/sales/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":%q,"name":"ceiling","stock":1000000000,"remaining":1000000000,"per_user_limit":1}`+"\n", r.PathValue("id"))
	})
	return mux
}

// groupCommit makes purchases durable in groups: whatever queued while the
// previous group was committing goes in the next one, with one commit.
type groupCommit struct {
	reqs   chan commitReq
	commit func(keys []string) error
}

type commitReq struct {
	key  string
	done chan error
}

func newGroupCommit(commit func(keys []string) error) *groupCommit {
	g := &groupCommit{reqs: make(chan commitReq, 4096), commit: commit}
	go g.run()
	return g
}

// append makes the purchase of key durable and returns once it is.
func (g *groupCommit) append(key string) error {
	done := make(chan error, 1)
	g.reqs <- commitReq{key: key, done: done}
	return <-done
}

// run is the only committer.
func (g *groupCommit) run() {
	var (
		group []commitReq
		keys  []string
	)
	for r := range g.reqs {
		group = append(group[:0], r)
	more:
		for {
			select {
			case r := <-g.reqs:
				group = append(group, r)
			default:
				break more
			}
		}
		keys = keys[:0]
		for _, r := range group {
			keys = append(keys, r.key)
		}
		err := g.commit(keys)
		for _, r := range group {
			r.done <- err
		}
	}
}

// recordSize is the bytes each purchase appends: about an order's id, buyer
// and key.
const recordSize = 64

// fileCommit appends a record per key to f with one write and makes them
// durable with one fdatasync. An in-place file (written zero-filled first,
// then written over) measured slower here than appending, and O_DSYNC no
// faster, so appending is the floor.
func fileCommit(f *os.File) func(keys []string) error {
	var buf []byte
	return func(keys []string) error {
		buf = buf[:0]
		for _, k := range keys {
			var rec [recordSize]byte
			copy(rec[:], k)
			buf = append(buf, rec[:]...)
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
		return datasync.File(f)
	}
}
