package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/waitroom"
)

// Stream timing: how often a stream looks at its position, how long it
// may stay silent before a heartbeat, and how long it lives before the
// client reconnects (EventSource does so by itself, after retryMillis).
const (
	streamTick      = time.Second
	streamHeartbeat = 15 * time.Second
	streamMaxAge    = 15 * time.Minute
	retryMillis     = 3000
)

// queueEvents streams a buyer's place as Server-Sent Events: a "position"
// event on connection and whenever the position changes, then one
// "admitted" or "expired" event, after which the stream ends. Comments keep
// idle connections alive. The stream also ends when the client goes, the
// server shuts down, or after streamMaxAge (the client reconnects).
func (s *Server) queueEvents(w http.ResponseWriter, r *http.Request) {
	queueNoStore(w)
	sale, st, release, ok := s.openStream(w, r)
	if !ok {
		return
	}
	defer release()
	es, ok := startEventStream(w)
	// A HEAD is answered as its GET would be (the same checks, a slot
	// taken and given back), and its answer ends with the headers: net/http
	// drops the body of a HEAD, so following the place would hold the
	// connection and a stream slot until admission, unseen.
	if !ok || r.Method == http.MethodHead {
		return
	}
	s.followPlace(r.Context(), es, sale, st)
}

// openStream checks what a stream needs before it starts, answering the
// error itself: the sale has a waiting room, the ticket reads, the server
// is not shutting down, and a stream slot is free for this buyer and
// address. release frees the slot.
func (s *Server) openStream(w http.ResponseWriter, r *http.Request) (sale *surge.Sale, st waitroom.Status, release func(), ok bool) {
	sale, ok = s.queueSale(w, r)
	if !ok {
		return nil, st, nil, false
	}
	ticket, err := ticketOf(r, true)
	if err != nil {
		s.writeErr(w, r, err)
		return nil, st, nil, false
	}
	if st, err = s.room.Status(r.Context(), sale, ticket); err != nil {
		s.queueErr(w, r, err)
		return nil, st, nil, false
	}
	select {
	case <-s.queues.stop: // checked alone: select would pick at random
		s.writeErr(w, r, surge.ErrUnavailable)
		return nil, st, nil, false
	default:
	}
	release, err = s.slots().acquire(buyerKey{sale.ID, st.UserID}, admission.ClientIP(r, s.protection().TrustedProxies))
	if err != nil {
		s.writeErr(w, r, err)
		return nil, st, nil, false
	}
	return sale, st, release, true
}

// eventStream writes Server-Sent Events to one client.
type eventStream struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	lastWrite time.Time
}

// startEventStream answers 200 with the stream's headers and its retry
// interval; false if the client is already gone.
func startEventStream(w http.ResponseWriter) (*eventStream, bool) {
	es := &eventStream{w: w, rc: http.NewResponseController(w)}
	// The server's read timeout does not end a stream: net/http clears the
	// read deadline when it starts watching the connection for the client's
	// end (the request's body read), and HTTP/2 applies it to the body only.
	// Only the write deadline needs moving (write). TestQueueEvents streams
	// past a 100 ms read timeout.
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	w.WriteHeader(http.StatusOK)
	return es, es.write(fmt.Appendf(nil, "retry: %d\n\n", retryMillis))
}

// write sends b at once; false once the client cannot be written to.
func (es *eventStream) write(b []byte) bool {
	// Moved forward with each write: the server's write timeout is for
	// answers, not streams, but a stalled client is still cut.
	_ = es.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := es.w.Write(b); err != nil {
		return false
	}
	es.lastWrite = time.Now()
	return es.rc.Flush() == nil
}

// event sends one named event whose data is v as JSON.
func (es *eventStream) event(name string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return es.write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", name, data))
}

// followPlace sends st, then every change of the buyer's place until it
// is final (admitted or expired), with heartbeats while nothing changes.
func (s *Server) followPlace(ctx context.Context, es *eventStream, sale *surge.Sale, st waitroom.Status) {
	tick, heartbeat := s.streamTiming()
	end := time.NewTimer(streamMaxAge)
	defer end.Stop()
	sent := waitroom.Status{Position: -2} // nothing sent yet
	for {
		if st.State != sent.State || st.Position != sent.Position {
			name := "position"
			if st.State != waitroom.Waiting {
				name = st.State
			}
			if !es.event(name, toQueueJSON(st)) {
				return
			}
			sent = st
			if st.State != waitroom.Waiting {
				return
			}
		} else if time.Since(es.lastWrite) >= heartbeat {
			if !es.write([]byte(": heartbeat\n\n")) {
				return
			}
		}
		// Wake when admitted, if that comes before the tick, but only
		// while the waiting room's clock runs: a pause stops it, and
		// the wait with it, so a paused stream would wake at once again
		// and again until the resume. It looks once a tick instead.
		wait := tick
		if st.Wait > 0 && st.Wait < wait && !sale.Paused {
			wait = st.Wait
		}
		if !s.streamSleep(ctx, end.C, wait) {
			return
		}
		// The sale is read again: a pause or a resume since stops or
		// restarts the waiting room's clock, and an archive ends the
		// stream (sale_not_found), so that it tells what a read of one's
		// place would.
		cur, err := queueSaleState(s.svc, sale.ID)
		if err != nil {
			es.event("error", s.streamError(sale, err))
			return
		}
		sale = &cur.Sale
		// The freshest ticket carries the slot once a lottery is drawn,
		// which spares the queue a lookup per tick.
		if st, err = s.room.Status(ctx, sale, st.Ticket); err != nil {
			if ctx.Err() == nil { // else the client left: nobody to tell, nothing failed
				es.event("error", s.streamError(sale, err))
			}
			return
		}
		if s.queues.ticked != nil {
			s.queues.ticked()
		}
	}
}

// streamSleep waits d; false if the stream must end first: the client
// went, the server shuts down, or the stream reached its age (end fired).
func (s *Server) streamSleep(ctx context.Context, end <-chan time.Time, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-s.queues.stop:
		return false
	case <-end:
		return false
	case <-t.C:
		return true
	}
}

// streamError is the data of the "error" event that ends a stream whose
// place could not be read; details of an unexpected error go to the log.
func (s *Server) streamError(sale *surge.Sale, err error) api.ErrorBody {
	var e *surge.Error
	if !errors.As(err, &e) {
		s.log.Error("queue stream failed", "sale", sale.ID, "err", err)
		e = &surge.Error{Code: "internal", Message: "internal error"}
	}
	return api.ErrorBody{Error: api.ErrorDetail{Code: string(e.Code), Message: e.Message}}
}

// streamTiming is the tick and heartbeat of streams (shorter in tests).
func (s *Server) streamTiming() (time.Duration, time.Duration) {
	if q := s.queues; q.tick > 0 {
		return q.tick, q.heartbeat
	}
	return streamTick, streamHeartbeat
}
