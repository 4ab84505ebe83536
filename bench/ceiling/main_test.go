package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// buyAll sends n purchases at once, with the keys key-000 on, and fails
// the test unless each is answered 201.
func buyAll(t *testing.T, h http.Handler, n int) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/sales/s/purchases", strings.NewReader(`{"quantity":1}`))
			req.Header.Set("Idempotency-Key", fmt.Sprintf("key-%03d", i))
			resp, err := srv.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("purchase %d: status %d, want 201", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDurableFloor: with a log, every purchase is answered 201 only with
// its record in the file, whatever the concurrency (run under -race).
func TestDurableFloor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floor.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const n = 200
	buyAll(t, newMux(newGroupCommit(fileCommit(f))), n)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != n*recordSize {
		t.Fatalf("log holds %d bytes, want %d (%d records of %d)", len(data), n*recordSize, n, recordSize)
	}
	for i := range n {
		if !bytes.Contains(data, fmt.Appendf(nil, "key-%03d\x00", i)) {
			t.Errorf("no record of key-%03d", i)
		}
	}
}

// TestClusterFloor: the cluster floor answers 201 only with the purchase's
// key in PostgreSQL and the stock in Redis down by one, on the real servers.
func TestClusterFloor(t *testing.T) {
	ctx := t.Context()
	ns := servicetest.Namespace(t)
	pgURL := servicetest.PostgresURL() + "&search_path=" + ns
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatalf("connect (run scripts/services.sh): %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{ns}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	commit, err := clusterCommit(ctx, servicetest.RedisURL(), pgURL, ns)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	buyAll(t, newMux(newGroupCommit(commit)), n)
	var rows, distinct int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT k) FROM ceiling_orders`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n {
		t.Errorf("PostgreSQL holds %d rows of %d keys, want %d of %d", rows, distinct, n, n)
	}
	rdb, err := redis.Dial(ctx, servicetest.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if left, err := rdb.Get(ctx, ns+":stock").Int64(); err != nil || left != 1_000_000_000-n {
		t.Errorf("Redis stock %d (%v), want %d", left, err, 1_000_000_000-n)
	}
}

// TestSale: surge bench can read the sale it buys from.
func TestSale(t *testing.T) {
	srv := httptest.NewServer(newMux(nil))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/v1/sales/floor")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(b.String(), `"id":"floor"`) || !strings.Contains(b.String(), `"per_user_limit":1`) {
		t.Fatalf("GET sale: %d %s", resp.StatusCode, b.String())
	}
}

// TestDebugMux: the profile endpoints answer, and the purchase route is
// not among them.
func TestDebugMux(t *testing.T) {
	srv := httptest.NewServer(debugMux())
	defer srv.Close()
	for path, want := range map[string]int{
		"/debug/pprof/":                  http.StatusOK,
		"/debug/pprof/profile?seconds=1": http.StatusOK,
		"/v1/sales/s/purchases":          http.StatusNotFound,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
