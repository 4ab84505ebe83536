package http_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/internal/commithook"
)

// stallRequest sends an admin request whose write is the store's next
// commit and returns once that commit stalls (a disk that stops
// answering): release lets it go on (at the latest when the test ends),
// and answer has the request's answer.
func (e *env) stallRequest(t *testing.T, method, path, body string) (release func(), answer <-chan response) {
	t.Helper()
	stalled, let := make(chan struct{}), make(chan struct{})
	commithook.OnNext(func() {
		close(stalled)
		<-let
	})
	got := make(chan response, 1)
	go func() { got <- e.do(t, method, path, body, asAdmin()) }()
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		commithook.OnNext(nil)
		t.Fatalf("the commit of %s %s never began", method, path)
	}
	var once sync.Once
	release = func() { once.Do(func() { close(let) }) }
	t.Cleanup(release)
	return release, got
}

// TestAdminAnswersWhileItsOwnWriteStalls: a PATCH, an archive or a sale's
// creation whose own write had begun when the disk stalled got no answer
// for as long as the stall lasted, and the next such request (a PATCH of
// the same sale, another creation or archive) waited behind it, also
// without end: each must be answered 503 with Retry-After within the
// purchase timeout (the first one's change may still land), and the first
// one's change, once the disk goes on, is the server's as if answered.
func TestAdminAnswersWhileItsOwnWriteStalls(t *testing.T) {
	commithook.Install() // before the store opens its connections
	ends := epoch.Add(time.Hour).Format(time.RFC3339)
	for _, tc := range []struct {
		name               string
		method, path, body string
		next               [3]string // the request sent while the first stalls
		landed             func(t *testing.T, e *env) bool
	}{
		{
			name: "PATCH", method: "PATCH", path: "/v1/sales/a", body: `{"paused":true}`,
			next:   [3]string{"PATCH", "/v1/sales/a", `{"name":"A2"}`},
			landed: func(t *testing.T, e *env) bool { return e.sale(t, "a").Status == "paused" },
		},
		{
			name: "archive", method: "POST", path: "/v1/sales/a/archive",
			next: [3]string{"POST", "/v1/sales", `{"id":"d","name":"D","stock":5,"per_user_limit":1}`},
			landed: func(t *testing.T, e *env) bool {
				return bytes.Contains(e.do(t, "GET", "/v1/sales/a", "").body, []byte(`"archived":true`))
			},
		},
		{
			name: "create", method: "POST", path: "/v1/sales", body: `{"id":"c","name":"C","stock":5,"per_user_limit":1}`,
			next:   [3]string{"POST", "/v1/sales", `{"id":"d","name":"D","stock":5,"per_user_limit":1}`},
			landed: func(t *testing.T, e *env) bool { return e.do(t, "GET", "/v1/sales/c", "").status == http.StatusOK },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{insecureUserHeader: true, purchaseTimeout: 2 * time.Second})
			e.createSale(t, `{"id":"a","name":"A","stock":5,"per_user_limit":1,"ends_at":"`+ends+`"}`)
			if tc.name == "archive" {
				e.clock.Advance(2 * time.Hour)
			}
			release, first := e.stallRequest(t, tc.method, tc.path, tc.body)
			next := make(chan response, 1)
			go func() { next <- e.do(t, tc.next[0], tc.next[1], tc.next[2], asAdmin()) }()

			unavailableWhileStalled(t, first, release, tc.name+" whose own write stalled")
			unavailableWhileStalled(t, next, release, tc.next[0]+" "+tc.next[1]+" behind a "+tc.name+" whose write stalled")
			release()
			// The first one's write went on: its change is served.
			deadline := time.Now().Add(10 * time.Second)
			for !tc.landed(t, e) {
				if time.Now().After(deadline) {
					t.Fatalf("the %s's stalled write went on, yet 10s later the server does not serve its change", tc.name)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// The next request, again, is applied.
			r := e.do(t, tc.next[0], tc.next[1], tc.next[2], asAdmin())
			if r.status != http.StatusOK && r.status != http.StatusCreated {
				t.Fatalf("%s %s again once the disk went on: %v", tc.next[0], tc.next[1], r)
			}
		})
	}
}
