package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/waitroom"
)

// TestSpecQueueEventsSaleArchived: docs/api.md says a queue stream ends
// with an error event sale_not_found once its sale is archived, and the
// server sends it; the spec said only "if the ticket stops being valid",
// and validateEvents took every error event for a 403 invalid_ticket. A
// real server (SQLite, the engine, a waiting room) archives a sale not
// yet started while a buyer's stream is open, and the stream's events
// are validated against the spec.
func TestSpecQueueEventsSaleArchived(t *testing.T) {
	raw, _ := readSpec(t)
	c := newChecker(t, raw)
	ctx := context.Background()

	room, err := waitroom.New(waitroom.Config{Secret: roomSecret})
	if err != nil {
		t.Fatal(err)
	}
	srv := specServer(t, t.TempDir(), engine.Config{WaitingRoom: room, Logger: quietLog},
		surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: quietLog, WaitingRoom: room})
	do := func(method, path, body string, h http.Header, want int) answer {
		t.Helper()
		return c.do(call{base: srv.URL, method: method, path: path, body: body, header: h, want: want})
	}

	// Not started, so the buyer waits (the stream stays open) and the
	// sale can be archived (called off) without its end.
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	do("POST", "/v1/sales", `{"id":"soon","name":"Soon","stock":5,"starts_at":"`+start+
		`","waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":300}}`, admin, 201)
	q := mustDecode[api.Queue](t, do("POST", "/v1/sales/soon/queue", "", user("alice"), 201))

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, "GET", srv.URL+"/v1/sales/soon/queue/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(surgehttp.TicketHeader, q.Ticket)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the stream: HTTP %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	stream := readFirstEvent(t, br) // the same reader: it is big enough
	if !bytes.Contains(stream, []byte("event: position")) {
		t.Fatalf("the stream begins with %q, want a position event", stream)
	}

	do("POST", "/v1/sales/soon/archive", "", admin, 200)
	// The stream ends by itself at its next look (a second at most).
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("read the stream to its end: %v", err)
	}
	stream = append(stream, rest...)

	if ev := c.validateEvents(srv.URL, "soon", stream); !slices.Equal(ev, []string{"position", "error"}) {
		t.Fatalf("events %v, want [position error]:\n%s", ev, stream)
	}
	_, data, _ := strings.Cut(string(rest), "data: ")
	var body api.ErrorBody
	if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &body); err != nil || body.Error.Code != "sale_not_found" {
		t.Errorf("the error event's data %q (%v), want code sale_not_found", data, err)
	}
}
