package http

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
)

// purchaseBufs holds body buffers of the purchase hot path.
var purchaseBufs = sync.Pool{New: func() any { return new([MaxPurchaseBody + 1]byte) }}

// readPurchaseBody reads and decodes a purchase body into its quantity (1
// when the body is empty or has none). It answers 400 or 413 itself and
// returns the code it answered, "" when it did not.
func readPurchaseBody(w http.ResponseWriter, r *http.Request) (int64, string) {
	if !plainBody(w, r) {
		return 0, string(surge.CodeInvalid)
	}
	if r.ContentLength > MaxPurchaseBody {
		tooLarge(w, r, MaxPurchaseBody)
		return 0, codeTooLarge
	}
	buf := purchaseBufs.Get().(*[MaxPurchaseBody + 1]byte)
	defer purchaseBufs.Put(buf)
	// Read to io.EOF by hand: io.ReadFull would also report a body cut
	// short by the client (io.ErrUnexpectedEOF from net/http) as a short
	// read, and a truncated body must not be taken for a complete one.
	n := 0
	for n < len(buf) {
		m, err := r.Body.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			invalid(w, "could not read the body: %v", err)
			return 0, string(surge.CodeInvalid)
		}
	}
	if n > MaxPurchaseBody {
		tooLarge(w, r, MaxPurchaseBody)
		return 0, codeTooLarge
	}
	body := buf[:n]
	if q, ok := quickQuantity(body); ok {
		return q, ""
	}
	// Only JSON whitespace is no body; anything else must parse.
	if skipSpace(body, 0) == len(body) {
		return 1, ""
	}
	q, err := decodePurchase(body)
	if err != nil {
		invalid(w, "%v", err)
		return 0, string(surge.CodeInvalid)
	}
	return q, ""
}

// quickQuantity recognises the one body nearly every client sends,
// {"quantity":N} with optional spaces, without the reflection decoder.
// Anything else, valid or not, reports false and goes to decodePurchase,
// which is the authority on what is accepted.
func quickQuantity(b []byte) (int64, bool) {
	i := skipSpace(b, 0)
	const field = `"quantity"`
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	if !bytes.HasPrefix(b[i:], []byte(field)) {
		return 0, false
	}
	i = skipSpace(b, i+len(field))
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	start := i
	var q int64
	for i < len(b) && '0' <= b[i] && b[i] <= '9' && i-start < 18 {
		q = q*10 + int64(b[i]-'0')
		i++
	}
	// No digits, a leading zero (not JSON) or too many digits: defer.
	if i == start || (b[start] == '0' && i-start > 1) || (i < len(b) && '0' <= b[i] && b[i] <= '9') {
		return 0, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '}' {
		return 0, false
	}
	if skipSpace(b, i+1) != len(b) {
		return 0, false
	}
	return q, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// decodePurchase reads {"quantity": n} strictly; an absent quantity means 1.
func decodePurchase(body []byte) (int64, error) {
	var req struct {
		// Raw, so that null (which v2 decodes as zero) is told apart.
		Quantity jsontext.Value `json:"quantity"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return 0, err
	}
	if req.Quantity == nil {
		return 1, nil
	}
	q, err := strconv.ParseInt(string(req.Quantity), 10, 64)
	if err != nil {
		return 0, errors.New("quantity must be a positive integer")
	}
	return q, nil
}

// purchase counts every answer it writes once, here, where all of them
// are known: the engine decides most, but authentication, the path and
// decoding are refused before it (401, 404, 400, 413), and only here is
// the answer written, so the latency covers it. A purchase whose client
// is gone gets no answer and counts nowhere. One that panics (a bug) is
// answered 500 by ServeHTTP's recover, and counts as internal here, as
// every other 500 does.
func (s *Server) purchase(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	meter := s.meter(r.PathValue("id"))
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				meter.Answered("internal", false, time.Since(start))
			}
			panic(v)
		}
	}()
	code, replay := s.answerPurchase(w, r)
	meter.Answered(code, replay, time.Since(start))
}

// answerPurchase answers a purchase and returns the code it answered
// ("reserved" for a 201, replay set for a replayed one). When the client
// is gone it answers nothing: it panics http.ErrAbortHandler, which
// closes the connection.
func (s *Server) answerPurchase(w http.ResponseWriter, r *http.Request) (code string, replay bool) {
	user, err := s.auth.buyer(r)
	if err != nil {
		unauthenticated(w, r, err)
		return codeUnauthenticated, false
	}
	if !noQuery(w, r) {
		return string(surge.CodeInvalid), false
	}
	saleID, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeSaleNotFound), "sale not found")
		return string(surge.CodeSaleNotFound), false
	}
	p := surge.Purchase{UserID: user, Quantity: 1}
	if keys, present := r.Header["Idempotency-Key"]; present {
		if len(keys) != 1 || !surge.ValidKey(keys[0]) {
			invalid(w, "Idempotency-Key must be one header of 1 to 128 printable ASCII characters")
			return string(surge.CodeInvalid), false
		}
		p.IdempotencyKey = keys[0]
	}
	if r.ContentLength != 0 {
		q, refused := readPurchaseBody(w, r)
		if refused != "" {
			return refused, false
		}
		p.Quantity = q
	}
	// The waiting-room gate and every other admission decision are the
	// engine's: it takes the tickets as sent.
	out, err := s.svc.Purchase(r.Context(), engine.PurchaseRequest{SaleID: saleID, Purchase: p, Tickets: r.Header[TicketHeader]})
	if err != nil {
		if r.Context().Err() != nil {
			// The client is gone, or half-closed and still reading: an
			// empty 200 would say a purchase was made when it may not
			// have been. The connection is closed unanswered; if the
			// purchase commits, a retry with its Idempotency-Key
			// replays it.
			clientGone(r)
		}
		return s.writeErr(w, r, err), false
	}
	if out.Code != surge.CodeReserved {
		writeRaw(w, statusOf(out.Code), rejectionBodies[out.Code])
		return string(out.Code), false
	}
	h := w.Header()
	if out.Replay {
		h["Idempotent-Replayed"] = []string{"true"}
	}
	h["Location"] = []string{"/v1/orders/" + out.Order.ID}
	writeRaw(w, http.StatusCreated, orderBody(&out.Order))
	return string(surge.CodeReserved), out.Replay
}

// clientGone ends r, whose client went away (or half-closed, which
// net/http cannot tell apart) before it was answered: it marks r's span
// as failed, semantic conventions' error.type and status Error for a
// request that ended before a status was sent (otelhttp cannot tell it
// from a 200, and records that), then panics http.ErrAbortHandler, which
// closes the connection unanswered: net/http would otherwise send an
// empty 200 for a handler that wrote nothing.
func clientGone(r *http.Request) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(attribute.String("error.type", "client_gone"))
		span.SetStatus(codes.Error, "the client went away before the answer; none was sent")
	}
	panic(http.ErrAbortHandler)
}
