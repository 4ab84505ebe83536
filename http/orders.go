package http

import (
	"bufio"
	"net/http"
	"time"

	"github.com/surgehq/surge"
)

// privateNoStore is the Cache-Control of every answer about an order:
// it is one buyer's, and its status changes, so no cache (a CDN or proxy
// in front, which would hand it to the next caller of the path) may keep
// it; its errors neither (a 404 is cacheable by default).
var privateNoStore = []string{"private, no-store"}

func noStore(w http.ResponseWriter) { w.Header()["Cache-Control"] = privateNoStore }

// orderFor fetches an order the caller may see; anyone else gets the same
// 404 as for a missing order, so ids reveal nothing.
func (s *Server) orderFor(w http.ResponseWriter, r *http.Request) (surge.Order, bool) {
	o, _, ok := s.orderOf(w, r)
	return o, ok
}

// orderOf is orderFor, also answering who asked.
func (s *Server) orderOf(w http.ResponseWriter, r *http.Request) (surge.Order, identity, bool) {
	noStore(w)
	who, err := s.auth.identify(r)
	if err != nil {
		unauthenticated(w, r, err)
		return surge.Order{}, who, false
	}
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeOrderNotFound), surge.ErrOrderNotFound.Message)
		return surge.Order{}, who, false
	}
	o, err := s.svc.Order(r.Context(), id)
	if err == nil && !who.admin && o.UserID != who.user {
		err = surge.ErrOrderNotFound
	}
	if err != nil && r.Context().Err() != nil {
		// The read ended with the request's context: the client is gone
		// (or half-closed, which net/http cannot tell apart), not the
		// store failed, as the 503 unavailable it became would say. As
		// for a purchase, the connection is closed unanswered.
		clientGone(r)
	}
	if err != nil {
		s.writeErr(w, r, err)
		return surge.Order{}, who, false
	}
	return o, who, true
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	o, ok := s.orderFor(w, r)
	if !ok {
		return
	}
	writeRaw(w, http.StatusOK, orderBody(&o))
}

func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request) {
	o, who, ok := s.orderOf(w, r)
	if !ok || !noQueryNoInput(w, r) || !noBody(w, r) {
		return
	}
	// A buyer's cancels count against its share; the operator's do not.
	o, err := s.svc.CancelFor(r.Context(), who.user, o.ID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, orderBody(&o))
}

// payOrder marks an order paid by the operator's hand (admin token): a
// payment settled outside any provider. Providers' payments arrive signed
// at the payment webhook (webhook, http/payments.go) instead.
func (s *Server) payOrder(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if err := s.auth.admin(r); err != nil {
		unauthenticated(w, r, err)
		return
	}
	if !noQueryNoInput(w, r) || !noBody(w, r) {
		return
	}
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeOrderNotFound), surge.ErrOrderNotFound.Message)
		return
	}
	o, err := s.svc.Pay(r.Context(), id)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, orderBody(&o))
}

// exportOrders streams every order as NDJSON without holding them in
// memory. The write deadline moves forward with progress, so a long export
// is not cut by the server's write timeout but a stalled client still is.
func (s *Server) exportOrders(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	id, ok := s.adminSaleID(w, r)
	if !ok {
		return
	}
	if _, err := s.svc.Sale(id); err != nil {
		s.writeErr(w, r, err)
		return
	}
	// A HEAD gets the GET's status and headers, which the checks above
	// decide: net/http would drop the body, so running the export (every
	// order read, encoded and written) would be work for nothing.
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	// The status goes with the first order (or the end): a store that
	// fails before either is answered with its error, a 503 the client
	// can retry, not a connection cut without a word.
	started := false
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	line := make([]byte, 0, 320)
	n := 0
	err := s.svc.Orders(r.Context(), id, func(o surge.Order) error {
		start()
		line = append(appendOrder(line[:0], &o), '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
		if n++; n%1024 == 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		}
		return nil
	})
	if err == nil {
		start()
		err = bw.Flush()
	}
	if err != nil && !started {
		s.writeErr(w, r, err)
		return
	}
	if err != nil {
		// The status is sent; cutting the stream tells the client the
		// export is incomplete (no terminating chunk).
		s.log.WarnContext(r.Context(), "order export aborted", "sale", id, "orders_sent", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}
