package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
)

// ticketHeader is http.TicketHeader; the client does not import the
// server to name it.
const ticketHeader = "Waiting-Room-Ticket"

// Queue statuses (api.Queue.Status).
const (
	QueueWaiting  = "waiting"
	QueueAdmitted = "admitted"
	QueueExpired  = "expired"
)

// ErrAdmissionExpired is returned when a buyer's admission is over: it
// cannot buy with this place again, and joining again returns the same,
// expired place.
var ErrAdmissionExpired = errors.New("the admission to the waiting room has expired; joining again does not renew it")

// ErrEndedBeforeTurn is returned when the sale ended before the buyer's
// turn in its waiting room came: the place expired without ever being
// admitted, which a buyer must not read as a turn it let pass. It is
// ErrAdmissionExpired too (errors.Is): the place is as over for good.
var ErrEndedBeforeTurn error = endedBeforeTurn{}

type endedBeforeTurn struct{}

func (endedBeforeTurn) Error() string {
	return "the sale ended before the buyer's turn in its waiting room came; joining again does not renew the place"
}

func (endedBeforeTurn) Is(target error) bool { return target == ErrAdmissionExpired }

// expiredErr is the error of the expired place q: ErrEndedBeforeTurn when
// it was never admitted, which the server says with no admission window
// (a lottery not drawn before the end) or an empty one at ends_at (a turn
// due at or after it; admitted_at rounds up to the millisecond, so it may
// read just after admitted_until), else ErrAdmissionExpired.
func expiredErr(q api.Queue) error {
	if q.AdmittedAt == nil || q.AdmittedUntil == nil {
		return ErrEndedBeforeTurn
	}
	at, err1 := api.ParseTime(*q.AdmittedAt)
	until, err2 := api.ParseTime(*q.AdmittedUntil)
	if err1 == nil && err2 == nil && !at.Before(until) {
		return ErrEndedBeforeTurn
	}
	return ErrAdmissionExpired
}

// ErrStreamCut is returned by WatchQueue when the stream ended before its
// last event: the server shut down, its connection was lost (a node
// killed, a proxy restarted; the error then says how, and is ErrStreamCut
// for errors.Is), or the stream reached its age (15 minutes). The ticket
// is as good as before: follow the place again (WatchQueue, or
// QueueStatus), as WaitAdmitted does.
var ErrStreamCut = errors.New("queue stream ended before admission or expiry")

// streamSilence: a queue stream that sends nothing for this long is dead
// (a connection a load balancer or NAT forgot, a host that vanished): the
// server sends a heartbeat after 15 s of silence (docs/api.md). The order
// export, which has no heartbeat, is bounded alike: the server sends its
// orders as fast as its store reads them.
const streamSilence = 35 * time.Second

// silence is how long WatchQueue and Orders wait on a silent stream
// (tests shorten it through export_test.go).
func (c *Client) silence() time.Duration {
	if c.silentAfter > 0 {
		return c.silentAfter
	}
	return streamSilence
}

// ErrStreamSilent is returned by WatchQueue when the stream sent nothing,
// not even a heartbeat, for 35 s, and by Orders when the export sent
// nothing for as long: the connection is dead (a load balancer or NAT
// forgot it) or the server stalled. Nothing was refused: follow the
// place, or export, again.
var ErrStreamSilent = errors.New("queue stream silent for longer than the server's heartbeat: the connection is dead")

// JoinQueue takes (or returns) the client's buyer's place in a sale's
// waiting room. Joining is idempotent per buyer, so it is retried like a
// read.
func (c *Client) JoinQueue(ctx context.Context, saleID string) (api.Queue, error) {
	var q api.Queue
	cl, err := c.idCall(http.MethodPost, "sale", saleID, "/queue", buyer, nil)
	if err != nil {
		return q, err
	}
	_, err = c.do(ctx, cl, &q)
	return q, err
}

// QueueStatus reads the place of ticket's holder, fresh; its ticket is as
// good as the one sent. The ticket is the only credential.
func (c *Client) QueueStatus(ctx context.Context, saleID, ticket string) (api.Queue, error) {
	var q api.Queue
	cl, err := c.idCall(http.MethodGet, "sale", saleID, "/queue", anyone, nil)
	if err != nil {
		return q, err
	}
	cl.header.Set(ticketHeader, ticket)
	_, err = c.do(ctx, cl, &q)
	return q, err
}

// WatchQueue follows the place of ticket's holder on the server's event
// stream, calling fn with every position it reports and then with the
// admission or expiry, after which it returns nil (once it has read the
// stream's end, within 250 ms, so that the connection is kept for the
// purchase that follows). An error of fn ends
// the stream and is returned. A refused stream is an *APIError (429: the
// buyer or the address holds its share of streams, 503 overloaded: too
// many open; poll with QueueStatus instead), and so is the stream's own "error"
// event (Status 0). A stream cut before its last event, by the server or
// by its connection lost, is ErrStreamCut,
// and one silent (not even a heartbeat) for 35 s, its connection dead,
// is ErrStreamSilent: after either, follow the place again. The time fn takes is not counted.
func (c *Client) WatchQueue(ctx context.Context, saleID, ticket string, fn func(api.Queue) error) error {
	cl, err := c.idCall(http.MethodGet, "sale", saleID, "/queue/events", anyone, nil)
	if err != nil {
		return err
	}
	cl.header.Set(ticketHeader, ticket)
	cl.header.Set("Accept", "text/event-stream")
	// The stream has no timeout, but it may not go silent: the server's
	// answer, and then each read of the stream (heartbeats included),
	// must come within the bound, as for the export (call.silence).
	cl.stream, cl.safety, cl.silence = true, noRetry, c.silence()
	resp, err := c.send(ctx, cl)
	if err != nil {
		if ctx.Err() == nil && isSilent(err) {
			return ErrStreamSilent
		}
		return err
	}
	defer resp.Body.Close()
	// A proxy's page holds no event: read, it would look like a stream
	// cut before its first.
	if err := c.notA(cl, resp, "an event stream", func(mt string) bool { return mt == "text/event-stream" }); err != nil {
		return err
	}
	// Surge's events are well under 1 KiB: one larger than maxEvent is
	// not a queue stream, and is not buffered whole.
	rd := bufio.NewReaderSize(resp.Body, maxEvent)
	var event string
	var data []string
	size := 0 // bytes of the event so far
	for {
		b, err := rd.ReadSlice('\n')
		size += len(b)
		if err == bufio.ErrBufferFull || size > maxEvent {
			return errEventTooLarge
		}
		line := string(b)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if isSilent(err) {
				return ErrStreamSilent
			}
			if err == io.EOF {
				return ErrStreamCut
			}
			// The connection lost mid-stream (its node killed, a
			// proxy restarted: net/http says unexpected EOF, or a
			// reset) ends the stream before its last event as much as
			// the server ending it: the ticket is as good as before.
			return fmt.Errorf("read queue stream: %w: %w", ErrStreamCut, err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line != "" {
			// field: value; comments (":…") and retry are skipped.
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
			continue
		}
		size = 0
		if data == nil { // a blank line after a comment or retry
			event = ""
			continue
		}
		payload := []byte(strings.Join(data, "\n"))
		name := event
		event, data = "", nil
		if name == "error" {
			var e api.ErrorBody
			if err := json.Unmarshal(payload, &e); err != nil {
				return fmt.Errorf("queue stream: malformed error event %q: %w", clip(payload), err)
			}
			return &APIError{Code: e.Error.Code, Message: e.Error.Message}
		}
		var q api.Queue
		if err := json.Unmarshal(payload, &q); err != nil {
			return fmt.Errorf("queue stream: malformed %s event %q: %w", clip(name), clip(payload), err)
		}
		// fn's time is the caller's, not the server's silence: the
		// bound runs only while the stream is read.
		if err := fn(q); err != nil {
			return err
		}
		if q.Status != QueueWaiting {
			endStream(rd, resp.Body)
			return nil
		}
	}
}

// streamEnd bounds the wait for a queue stream's end after its last
// event: the server sends it right behind the event.
const streamEnd = 250 * time.Millisecond

// endStream reads the end of a queue stream (the answer's last chunk)
// after its last event, within streamEnd and maxDrain: net/http closes a
// connection whose answer was not read to its end, and the buyer's
// purchase, right after its admission, would dial a new one (behind TLS,
// a handshake too) when the whole drop buys at once. A server or proxy
// that keeps the answer open is left after streamEnd.
func endStream(rd *bufio.Reader, body io.ReadCloser) {
	if wb, ok := body.(*watchedBody); ok {
		wb.wd.d = streamEnd // each read's bound from here on
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(rd, maxDrain))
}

// maxEvent bounds one event of a queue stream, its lines included.
const maxEvent = 64 << 10

var errEventTooLarge = fmt.Errorf("queue stream: an event larger than %d KiB, not a Surge queue stream", maxEvent>>10)

// clip shortens what an error quotes of a stream.
func clip[T ~string | ~[]byte](s T) string {
	const n = 200
	if len(s) > n {
		return string(s[:n]) + "…"
	}
	return string(s)
}

// WaitAdmitted waits until the holder of place q (the answer of
// JoinQueue) is admitted, and returns the admitted place: buy with its
// Ticket (PurchaseOptions.Ticket) before AdmittedUntil. It follows the
// event stream, and polls QueueStatus, at the pace the answers give,
// when the server refuses streams (429 rate_limited, 503 overloaded) or
// one is cut or refused by a node going away (503 unavailable) or by a
// proxy (its 502, 504, or a 429 or 503 not in Surge's error shape), after
// which it follows the stream again. A server that cannot be read for a while (a restart,
// 502/503/504, connections refused, a read of the place outlasting the
// client's timeout) does not end the wait unless it
// lasts the retry policy's MaxElapsed: every read of the place, the
// stream's events included, failing for that long (the outages of a
// rolling restart, node after node, each count alone). An expired place is
// ErrAdmissionExpired (ErrEndedBeforeTurn, which is ErrAdmissionExpired
// too, when the sale ended before the buyer's turn came). A ticket the
// server refuses is the *APIError 403 invalid_ticket
// (surge.HasCode(err, surge.CodeInvalidTicket)): the waiting room lost
// its places (a restart of an embedded server, Redis losing the queue)
// or no longer knows the key that signed it; join again (JoinQueue) and
// wait with the new place, as Admit does.
func (c *Client) WaitAdmitted(ctx context.Context, q api.Queue) (api.Queue, error) {
	return c.waitAdmitted(ctx, q, func() {})
}

// waitAdmitted is WaitAdmitted, calling read whenever the server
// accepted the ticket (a read of the place, an event of the stream).
func (c *Client) waitAdmitted(ctx context.Context, q api.Queue, read func()) (api.Queue, error) {
	streams := true
	// failing: since when every read of the place failed for a reason
	// that passes (a server restarting behind a proxy, a 503); the wait
	// goes on through it for up to the retry policy's MaxElapsed.
	var failing time.Time
	for {
		switch q.Status {
		case QueueAdmitted:
			return q, nil
		case QueueExpired:
			return q, expiredErr(q)
		}
		if streams {
			err := c.WatchQueue(ctx, q.SaleID, q.Ticket, func(u api.Queue) error {
				// An event is a read of the place: an outage before it
				// is over, and the next (a rolling restart's next node)
				// counts alone.
				q, failing = u, time.Time{}
				read()
				return nil
			})
			var ae *APIError
			switch {
			case err == nil && (q.Status == QueueAdmitted || q.Status == QueueExpired):
				continue
			case err == nil:
				// A status this client does not know (a newer
				// server's) ended the stream: still not admitted, so
				// wait at the polling pace, not reconnect at once.
			case ctx.Err() != nil:
				return q, ctx.Err()
			case errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable && ae.Code != "overloaded" ||
				ae.Status == http.StatusTooManyRequests && ae.Code != "rate_limited" ||
				ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout):
				// Not the streams' limit (Surge says it with 503
				// overloaded or 429 rate_limited) but the node
				// (shutting down, its store unreachable: unavailable)
				// or a proxy's way to it (its own page: no backend up
				// for a moment, or its own rate limit, which polling
				// would not spare): read the place, then follow it
				// again, likely on another node.
			case errors.As(err, &ae) && (ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable):
				streams = false // as the server asks: poll instead
			case errors.As(err, &ae) && ae.Status == 0 && transientCode(ae.Code):
				// The stream's error event says the place could not be
				// read now (Redis down: unavailable), not that the
				// ticket is refused: poll, which retries, as for a cut.
			case errors.As(err, &ae):
				return q, err // the ticket is refused: polling would be too
			}
			// Cut: read the place, then follow it again.
		}
		if err := sleep(ctx, pollDelay(q)); err != nil {
			return q, err
		}
		next, err := c.QueueStatus(ctx, q.SaleID, q.Ticket)
		if err != nil {
			if ctx.Err() != nil || !transientFailure(err) {
				return q, err
			}
			if failing.IsZero() {
				failing = time.Now()
			}
			if time.Since(failing) >= c.Retry.withDefaults().MaxElapsed {
				return q, fmt.Errorf("waiting room place unreadable for %v: %w", time.Since(failing).Round(time.Second), err)
			}
			continue // the place is as it was: wait, then stream or read it again
		}
		failing = time.Time{}
		read()
		q = next
	}
}

// Admit joins a sale's waiting room as the client's buyer and waits
// until admitted (WaitAdmitted). When the server refuses the place's
// ticket (403 invalid_ticket: the waiting room lost its places in a
// restart, or its ticket key changed), Admit joins again, as the API
// asks, and waits with the place that join returns: a new one, at the
// back of the new queue, if the old one was lost; the same one if it was
// kept (joining is idempotent). It joins again only once the refused
// ticket had been accepted since it was issued, or for the first
// join's: a ticket refused again before any read of it is the refusal
// returned (a server that refuses every ticket, its nodes not sharing
// the waiting-room secret, would have it join in a loop).
func (c *Client) Admit(ctx context.Context, saleID string) (api.Queue, error) {
	for joins := 1; ; joins++ {
		q, err := c.JoinQueue(ctx, saleID)
		if err != nil {
			return q, err
		}
		accepted := false
		q, err = c.waitAdmitted(ctx, q, func() { accepted = true })
		if !surge.HasCode(err, surge.CodeInvalidTicket) || joins > 1 && !accepted {
			return q, err
		}
	}
}

// transientCode reports whether an error code says "not now" rather than
// "never": the answers a client retries (429 and 503, docs/protection.md).
func transientCode(code string) bool {
	return code == "unavailable" || code == "overloaded" || code == "rate_limited"
}

// pollDelay is when to read a waiting place again: at its estimated
// admission (whole seconds, rounded up), at most 10 s away as the
// server's own Retry-After hint, and not sooner than 250 ms.
func pollDelay(q api.Queue) time.Duration {
	return min(max(time.Duration(q.EstimatedWaitSeconds)*time.Second, 250*time.Millisecond), 10*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
