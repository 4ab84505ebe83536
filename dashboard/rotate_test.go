package dashboard

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRotationEndsOpenFeeds: docs/configuration.md says that on an admin
// token rotation "dashboard sessions signed under the old token end". A
// feed opened with the old token (the one that leaked, the reason to
// rotate) must stop delivering figures, not stream for 15 more minutes.
func TestRotationEndsOpenFeeds(t *testing.T) {
	d, srv := newTestServer(t, Config{Interval: 50 * time.Millisecond})
	req, _ := http.NewRequest("GET", srv.URL+"/dashboard/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(d time.Duration) (string, bool) {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return "", false
				}
				if strings.HasPrefix(l, "event: ") {
					return l, true
				}
			case <-time.After(d):
				return "timeout", true
			}
		}
	}
	if l, ok := next(5 * time.Second); !ok || l != "event: snapshot" {
		t.Fatalf("first event %q, %v", l, ok)
	}
	d.SetAdminToken("the-new-admin-token-after-a-leak")
	rotated := time.Now()
	// Give it a few intervals to notice; then the stream must be over.
	for time.Since(rotated) < 2*time.Second {
		l, ok := next(2 * time.Second)
		if !ok {
			return // ended: good
		}
		if l == "event: snapshot" && time.Since(rotated) > 500*time.Millisecond {
			t.Fatalf("a feed opened with the rotated-out token still gets snapshots %v after the rotation", time.Since(rotated).Round(time.Millisecond))
		}
	}
	t.Fatal("the feed opened with the old token is still open 2 s after the rotation")
}
