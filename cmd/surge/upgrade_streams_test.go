package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpgradeWithOpenQueueStream: a zero-downtime
// upgrade (SIGUSR2) of an embedded server while one buyer follows a
// waiting room's line over Server-Sent Events, as every buyer in a line
// does. The old process keeps the data directory until handOver has seen
// every connection close, and nothing ends an event stream there
// (CloseStreams runs only later, in http.Server.Shutdown), so it waits
// out the whole --shutdown-timeout; the new process cannot open the
// store meanwhile, and every purchase waits in the socket's backlog for
// that long.
func TestUpgradeWithOpenQueueStream(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-stream-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile) // --shutdown-timeout 10s
	hc := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path, user string, body string, hdr map[string]string) (*http.Response, error) {
		req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.Header.Set("X-User-ID", user)
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return hc.Do(req)
	}
	mustOK := func(resp *http.Response, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, b)
		}
		return b
	}
	starts := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	mustOK(do("POST", "/v1/sales", "", `{"id":"room","name":"Room","stock":10,"starts_at":"`+starts+`",
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":60}}`, nil))
	plain := createSale(t, p.base, token, 100, 1)

	var q struct{ Ticket string }
	if err := json.Unmarshal(mustOK(do("POST", "/v1/sales/room/queue", "w1", "", nil)), &q); err != nil || q.Ticket == "" {
		t.Fatalf("join: %v %+v", err, q)
	}
	// The buyer follows its place; the stream stays open while it waits.
	streamCtx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	req, _ := http.NewRequestWithContext(streamCtx, "GET", p.base+"/v1/sales/room/queue/events", nil)
	req.Header.Set("Waiting-Room-Ticket", q.Ticket)
	resp, err := (&http.Client{}).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("open the queue's event stream: %v %v", err, resp)
	}
	go func() {
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	}()

	upgradeUntilHandover(t, p, pidFile)

	// A buyer of the sale without a waiting room buys now.
	began := time.Now()
	resp2, err := do("POST", "/v1/sales/"+plain+"/purchases", "b1", "", map[string]string{"Idempotency-Key": "k1"})
	took := time.Since(began)
	if err != nil {
		t.Fatalf("purchase during the upgrade failed after %v: %v", took.Round(time.Millisecond), err)
	}
	resp2.Body.Close()
	t.Logf("purchase answered %d after %v", resp2.StatusCode, took.Round(time.Millisecond))
	if took > 3*time.Second {
		log, _ := os.ReadFile(p.logPath)
		t.Errorf("a purchase waited %v for the upgrade to finish (status %d): the old process held the data directory until its one open queue stream timed out (--shutdown-timeout 10s)\n%s",
			took.Round(time.Millisecond), resp2.StatusCode, tail(string(log), 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
