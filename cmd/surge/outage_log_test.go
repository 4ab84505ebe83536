package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRedisOutageLogIsBounded: with Redis gone in cluster mode, every
// failed probe of the breaker (open → half-open → open, each second),
// every failed batch of purchases, every failed report of the shared rate
// limits (ten a second) and every failed dial of go-redis wrote a line:
// with buyers pressing "buy", tens of lines a second, an hour's outage a
// log of a million lines, in which the first line and the recovery were
// hard to find. The first line of the outage and the recovery are kept,
// the repeats in between are counted, not written.
func TestRedisOutageLogIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const outage = 15 * time.Second
	p, rp, saleID := behindRedisProxy(t, "", 1)
	before, _ := os.ReadFile(p.logPath)

	rp.Cut()
	stop := time.Now().Add(outage)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				code := buy(t, p.base, saleID, fmt.Sprintf("buyer-%d-%d", w, i), "k")
				mu.Lock()
				codes[code]++
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	after, _ := os.ReadFile(p.logPath)
	during := string(after[len(before):])
	lines := strings.Count(during, "\n")
	t.Logf("purchases during the outage (status: count): %v; %d log lines in %v", codes, lines, outage)
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("no purchase answered 503 during the outage: %v", codes)
	}
	const opened = "dependency=redis from=closed to=open"
	if !strings.Contains(during, opened) {
		t.Errorf("the outage's first line (%q) is missing", opened)
	}
	if most := int(2 * outage / time.Second); lines > most {
		t.Errorf("a %v Redis outage wrote %d log lines (%.1f a second), want at most %d; the most repeated:\n%s",
			outage, lines, float64(lines)/outage.Seconds(), most, mostRepeated(during, 6))
	}
	if !strings.Contains(during, "suppressed=") {
		t.Errorf("no line of the outage counts the lines it suppressed")
	}

	rp.Restore()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; buy(t, p.base, saleID, fmt.Sprint("after-", i), "k") != http.StatusCreated; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no purchase succeeded within 20 s of Redis's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.waitLog(t, "dependency=redis from=half-open to=closed", 1)
}

// mostRepeated lists the n messages of log that repeat most, with counts.
func mostRepeated(log string, n int) string {
	count := map[string]int{}
	for line := range strings.Lines(log) {
		msg := line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg = line[i:]
		}
		if i := strings.Index(msg, "\" "); i >= 0 {
			msg = msg[:i+1]
		}
		count[msg]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return count[b] - count[a] })
	var b bytes.Buffer
	for _, k := range keys[:min(n, len(keys))] {
		fmt.Fprintf(&b, "%6d %s\n", count[k], k)
	}
	return b.String()
}
