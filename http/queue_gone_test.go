package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/waitroom"
)

// TestQueueClientGone: in cluster mode a waiting room's queue lives in
// Redis, and a join, a read of one's place, or an event stream, whose
// client went away while its Redis call was under way met the request's
// ended context at its next call. The join and the reads answered that
// error 500 internal and logged "request failed" at level error, and a
// stream following a place logged "queue stream failed": a bug by the
// docs' word (docs/observability.md: any internal is one), for a client
// that only left. Such a request is left unanswered, as a purchase or an
// order read is (access log 499), and a stream ends without a word.
func TestQueueClientGone(t *testing.T) {
	ctx := context.Background()
	// Redis behind a proxy the test can stall: the request waits on a
	// Redis call while its client leaves. The read timeout outlasts the
	// stall.
	proxy := servicetest.RedisProxy(t)
	rc, err := redis.Dial(ctx, "redis://"+proxy.Addr+"/0?read_timeout=10s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	room, err := waitroom.New(waitroom.Config{Secret: roomSecret, Backend: redis.NewQueues(rc, servicetest.Namespace(t), 0)})
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, store, engine.Config{Logger: quietLog, WaitingRoom: room})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); store.Close() })
	logs := &servicetest.Records{}
	h := surgehttp.New(eng, surgehttp.Config{InsecureUserHeader: true, Logger: slog.New(logs), WaitingRoom: room})
	h.SetStreamTiming(20*time.Millisecond, time.Second)
	srv := httptest.NewServer(surgehttp.Requests(h, surgehttp.RequestOptions{Logger: slog.New(logs), AccessLog: true}))
	t.Cleanup(srv.Close)

	// Every case has a sale of its own, so that its access log line is
	// told by its path; each starts in an hour: every buyer waits.
	starts := time.Now().Add(time.Hour)
	newSale := func(t *testing.T, id string) {
		t.Helper()
		name, stock := id, int64(5)
		if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &starts,
			WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 60}}); err != nil {
			t.Fatal(err)
		}
	}
	request := func(t *testing.T, ctx context.Context, method, path, user, ticket string) *http.Request {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.Header.Set("X-User-ID", user)
		}
		if ticket != "" {
			req.Header.Set(surgehttp.TicketHeader, ticket)
		}
		return req
	}
	join := func(t *testing.T, sale, user string) string {
		t.Helper()
		resp, err := srv.Client().Do(request(t, ctx, "POST", "/v1/sales/"+sale+"/queue", user, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var q api.Queue
		if err := json.NewDecoder(resp.Body).Decode(&q); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("join %s: %d, %v", sale, resp.StatusCode, err)
		}
		return q.Ticket
	}
	// leave runs open, whose request ends up waiting on a Redis call that
	// the proxy, stalled by stall, holds; then its client leaves, the
	// server sees it gone (the request's context ends), and Redis answers.
	leave := func(t *testing.T, open func(ctx context.Context, stall func())) {
		t.Helper()
		cctx, gone := context.WithCancel(ctx)
		defer gone()
		stalled, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			open(cctx, func() { proxy.Pause(); close(stalled) })
		}()
		select {
		case <-stalled:
		case <-done:
			t.Fatal("the request ended before Redis was stalled")
		}
		time.Sleep(300 * time.Millisecond) // the request waits on Redis
		gone()
		<-done
		time.Sleep(300 * time.Millisecond) // the server sees the connection closed
		proxy.Resume()
	}
	// unanswered sends a request while Redis is stalled.
	unanswered := func(t *testing.T, method, path, user, ticket string) func(ctx context.Context, stall func()) {
		return func(cctx context.Context, stall func()) {
			stall()
			if resp, err := srv.Client().Do(request(t, cctx, method, path, user, ticket)); err == nil {
				resp.Body.Close()
				t.Errorf("%s %s was answered %d before its client left", method, path, resp.StatusCode)
			}
		}
	}

	for _, c := range []struct {
		name, method, path string
		// open sends the request (joining first if need be) for leave.
		open func(t *testing.T, sale string) func(ctx context.Context, stall func())
		// started: the answer (a stream's 200) began before the client
		// left; else the request must be left unanswered.
		started bool
	}{
		{name: "join", method: "POST", path: "/queue", open: func(t *testing.T, sale string) func(context.Context, func()) {
			return unanswered(t, "POST", "/v1/sales/"+sale+"/queue", "alice", "")
		}},
		{name: "status", method: "GET", path: "/queue", open: func(t *testing.T, sale string) func(context.Context, func()) {
			return unanswered(t, "GET", "/v1/sales/"+sale+"/queue", "", join(t, sale, "alice"))
		}},
		{name: "stream-open", method: "GET", path: "/queue/events", open: func(t *testing.T, sale string) func(context.Context, func()) {
			return unanswered(t, "GET", "/v1/sales/"+sale+"/queue/events", "", join(t, sale, "alice"))
		}},
		{name: "stream-following", method: "GET", path: "/queue/events", started: true, open: func(t *testing.T, sale string) func(context.Context, func()) {
			tk := join(t, sale, "alice")
			return func(cctx context.Context, stall func()) {
				resp, err := srv.Client().Do(request(t, cctx, "GET", "/v1/sales/"+sale+"/queue/events", "", tk))
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				sse := &sseReader{sc: bufio.NewScanner(resp.Body)}
				if ev, err := sse.next(); err != nil || ev.name != "position" {
					t.Errorf("first event: %+v, %v", ev, err)
				}
				stall() // the stream's next look at the place waits on Redis
				_, _ = io.Copy(io.Discard, resp.Body)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sale := "gone-" + c.name
			newSale(t, sale)
			// Alice is second: her position is counted in Redis (the
			// first in line has nobody ahead to count).
			join(t, sale, "first")
			open := c.open(t, sale) // a join of its own, first, for some
			path := "/v1/sales/" + sale + c.path
			before := len(accessLinesOf(logs, c.method, path))
			leave(t, open)
			line := waitAccess(t, logs, c.method, path, before)
			if want := int64(499); !c.started && line["status"] != want {
				t.Errorf("%s %s whose client left: access log status %v, want %d (left unanswered)", c.method, path, line["status"], want)
			}
			for _, r := range logs.Named("request failed") {
				if attr(r, "path") == path {
					t.Errorf("%s %s whose client left logged %q at %s: %s", c.method, path, r.Message, r.Level, attr(r, "err"))
				}
			}
			for _, r := range logs.Named("queue stream failed") {
				if attr(r, "sale") == sale {
					t.Errorf("%s %s whose client left logged %q at %s: %s", c.method, path, r.Message, r.Level, attr(r, "err"))
				}
			}
		})
	}
}

// waitAccess returns the attributes of the access log line of method and
// path after the first skip, waiting up to 10 s for it (it is written once
// the handler ends).
func waitAccess(t *testing.T, logs *servicetest.Records, method, path string, skip int) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if lines := accessLinesOf(logs, method, path); len(lines) > skip {
			return lines[skip]
		}
	}
	t.Fatalf("no access log line for %s %s within 10 s", method, path)
	return nil
}

// accessLinesOf are the attributes of the access log lines of method and
// path so far, in order.
func accessLinesOf(logs *servicetest.Records, method, path string) []map[string]any {
	var out []map[string]any
	for _, r := range logs.Named("request") {
		rec := map[string]any{}
		r.Attrs(func(a slog.Attr) bool { rec[a.Key] = a.Value.Any(); return true })
		if rec["method"] == method && rec["path"] == path {
			out = append(out, rec)
		}
	}
	return out
}

// attr is r's attribute key as a string ("" without it).
func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}
