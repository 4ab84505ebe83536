package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// events streams a "snapshot" event every interval. The snapshots are the
// heartbeat: a stream is never silent for more than an interval. It ends
// when the client goes, at Close (server shutdown), or after
// streamMaxAge (EventSource reconnects, and the session is checked again).
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	page, err := pageOf(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	select {
	case <-d.stop: // checked alone: select would pick at random
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the server is shutting down")
		return
	default:
	}
	select {
	case d.slots <- struct{}{}:
		defer func() { <-d.slots }()
	default:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("%d dashboard streams are open already; close one", cap(d.slots)))
		return
	}
	rc := http.NewResponseController(w)
	// The server's read timeout does not end a stream: net/http clears the
	// read deadline when it starts watching the connection for the client's
	// end (the request's body read), and HTTP/2 applies it to the body only.
	// Only the write deadline needs moving (write). The http package's
	// TestQueueEvents streams past a 100 ms read timeout.
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		// net/http discards a HEAD's body: a feed followed unseen would
		// hold its slot and its connection until streamMaxAge.
		return
	}
	write := func(b []byte) bool {
		// Moved forward with each write: the server's write timeout is
		// for answers, not streams, but a stalled client is still cut.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(fmt.Appendf(nil, "retry: %d\n\n", retryMillis)) {
		return
	}
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	end := time.NewTimer(streamMaxAge)
	defer end.Stop()
	failing := false // logged once per failure, not once a second
	for {
		var msg []byte
		snap, err := d.feed.snapshotPage(time.Now(), page)
		if err == nil {
			var data []byte
			if data, err = json.Marshal(snap); err == nil {
				msg = fmt.Appendf(nil, "event: snapshot\ndata: %s\n\n", data)
			}
		}
		if err != nil {
			if !failing {
				d.log.Warn("dashboard snapshot failed", "err", err)
			}
			msg = []byte(": no snapshot\n\n")
		}
		failing = err != nil
		if !write(msg) {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-d.stop:
			return
		case <-end.C:
			return
		case <-tick.C:
		}
		// A rotated admin token ends the sessions signed under the old
		// one, open feeds included (the old token may be the leaked one).
		if !d.session.Load().authorized(r, time.Now()) {
			return
		}
	}
}

// maxPage bounds the page parameter: far more pages than a node serves
// sales, and a number no arithmetic on it overflows.
const maxPage = 1 << 20

// pageOf reads the feed's one parameter, page (from 1; 1 without it).
// Anything else is refused rather than read as the first page: an
// operator who asked for page 2 would take page 1's sales for the rest.
func pageOf(r *http.Request) (int, error) {
	if r.URL.RawQuery == "" {
		return 1, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, fmt.Errorf("malformed query string: %w", err)
	}
	for name := range q {
		if name != "page" {
			return 0, fmt.Errorf("unknown query parameter %q: /dashboard/events takes page", name)
		}
	}
	if len(q["page"]) != 1 {
		return 0, errors.New(`query parameter "page" appears more than once`)
	}
	n, err := strconv.Atoi(q.Get("page"))
	if err != nil || n < 1 || n > maxPage {
		return 0, fmt.Errorf("page must be an integer from 1 to %d", maxPage)
	}
	return n, nil
}
