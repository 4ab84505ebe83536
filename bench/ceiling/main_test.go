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
)

// TestDurableFloor: with a log, every purchase is answered 201 only with
// its record in the file, whatever the concurrency (run under -race).
func TestDurableFloor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floor.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv := httptest.NewServer(newMux(newGroupLog(f)))
	defer srv.Close()

	const n = 200
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
