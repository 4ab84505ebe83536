package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/surgehq/surge/api"
)

// worker sends one request at a time; its request, response, buffers and
// cache are its own and reused from one purchase to the next.
type worker struct {
	r         *runner
	mint      minter
	req       *fasthttp.Request
	resp      *fasthttp.Response
	body      []byte            // the request body being built
	codes     map[string]string // error body -> code: most rejections are byte-identical
	confirmed []Confirmation
	// refused: replays of a 201 that were answered otherwise.
	refused []RefusedReplay
	timer   *time.Timer
}

func newWorker(r *runner) *worker {
	w := &worker{
		r:     r,
		mint:  minter{secret: []byte(r.cfg.JWTSecret)},
		req:   fasthttp.AcquireRequest(),
		resp:  fasthttp.AcquireResponse(),
		codes: make(map[string]string),
	}
	// What every purchase shares is set once.
	w.req.Header.SetMethod(fasthttp.MethodPost)
	w.req.SetRequestURI(r.url)
	w.req.Header.SetContentType("application/json")
	return w
}

// release returns the worker's request and response to fasthttp's pools.
func (w *worker) release() {
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
	w.req, w.resp = nil, nil
}

// serve sends buyer i's purchase, due at due, and its replay if the buyer
// retries; queued says every connection was busy when it was due.
func (w *worker) serve(i int, due time.Time, queued bool) {
	b := w.r.crowd.buyer(i)
	w.r.rec.begun.Add(1)
	first := w.purchase(&b, due, queued)
	if b.retries && w.r.ctx.Err() == nil {
		// The replay is due as soon as the first answer is in.
		w.r.rec.offer(first.at)
		replay := w.purchase(&b, first.at, false)
		// A replay of a 201 must be answered with that 201: a decided
		// answer of another status (409 limit_reached, 422, …) means the
		// server decided the key anew. The export cannot show it when the
		// per-user limit kept the second decision from buying.
		if first.order != "" && decidedOtherwise(replay) {
			w.refused = append(w.refused, RefusedReplay{
				OrderID: first.order, UserID: b.user, Key: b.key, Status: replay.status, Code: replay.code,
			})
		}
	}
}

// decidedOtherwise reports whether a is a decided answer other than a 201:
// not a transport error, not shed (429, 503) and not a server error, which
// leave the purchase undecided.
func decidedOtherwise(a attempt) bool {
	return a.status != 0 && a.status != http.StatusCreated && !shed(a.status) && a.status < 500
}

// purchase sends b's purchase, and with Config.Retry resends it after a
// 429/503 with Retry-After, at most maxAttempts times and within the run.
// queued says the first send waited for a connection (attempt.queued). It
// returns the last attempt.
func (w *worker) purchase(b *buyer, due time.Time, queued bool) attempt {
	for n := 1; ; n++ {
		a, wait, again := w.send(b, due, queued && n == 1)
		if !again || !w.r.cfg.Retry || n == maxAttempts {
			return a
		}
		due = a.at.Add(wait)
		if !w.r.deadline.IsZero() && due.After(w.r.deadline) {
			return a
		}
		if w.timer == nil {
			w.timer = time.NewTimer(time.Hour)
			w.timer.Stop()
		}
		if !sleepUntil(w.r.ctx, w.timer, due) {
			return a
		}
		w.r.rec.offer(due)
	}
}

// request sets b's purchase into the worker's request.
func (w *worker) request(b *buyer) error {
	w.body = strconv.AppendInt(append(w.body[:0], `{"quantity":`...), b.quantity, 10)
	w.body = append(w.body, '}')
	w.req.SetBody(w.body)
	h := &w.req.Header
	h.Set("Idempotency-Key", b.key)
	if len(w.mint.secret) > 0 {
		tok, err := w.mint.token(b.user, time.Now())
		if err != nil {
			return err
		}
		h.Set("Authorization", "Bearer "+tok)
	} else {
		h.Set("X-User-Id", b.user)
	}
	return nil
}

// send makes one request and records it. again reports a 429/503 with a
// usable Retry-After of wait.
func (w *worker) send(b *buyer, due time.Time, queued bool) (a attempt, wait time.Duration, again bool) {
	a.due, a.queued = due, queued
	err := w.request(b)
	a.sent = time.Now()
	if b.first.IsZero() {
		b.first = a.sent
	}
	w.r.rec.sending()
	if err == nil {
		err = w.r.hc.DoTimeout(w.req, w.resp, w.r.cfg.Timeout)
	}
	a.at = time.Now()
	body := w.resp.Body()
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		// The status and headers came; only the body is over maxBody. It
		// is an answer, with no body to read a code or an order from.
		body, err = nil, nil
	}
	if err != nil {
		w.r.rec.record(a) // no complete answer: a transport error
		return a, 0, false
	}
	a.status = w.resp.StatusCode()
	if a.status == http.StatusCreated {
		a.code = w.confirm(b, body)
		if a.code != codeBadBody {
			a.order = w.confirmed[len(w.confirmed)-1].OrderID
		}
		// A replay names the order of the first answer: it is not a new
		// reservation, and counting it as one overstates the units sold.
		if a.code == codeReserved && bytes.Equal(w.resp.Header.Peek("Idempotent-Replayed"), []byte("true")) {
			a.code = codeReplayed
		}
	} else {
		a.code = w.errorCode(body)
	}
	if a.status == http.StatusTooManyRequests || a.status >= 500 {
		v := string(w.resp.Header.Peek("Retry-After"))
		a.retryAfter = validRetryAfter(v)
		if shed(a.status) {
			wait, again = retryAfter(v, a.at)
		}
	}
	w.r.rec.record(a)
	return a, wait, again
}

// confirm turns a 201 into a Confirmation. It holds the id the server
// answered with what the buyer asked for (user, key, quantity), so that a
// 201 for another user or quantity shows up against the export.
func (w *worker) confirm(b *buyer, body []byte) string {
	id, ok := orderID(body)
	if !ok {
		return codeBadBody
	}
	created, expires := orderTimes(body)
	c := Confirmation{OrderID: id, UserID: b.user, Key: b.key, Quantity: b.quantity, Sent: b.first, Expires: expires}
	if !created.IsZero() && !expires.IsZero() {
		c.Hold = max(expires.Sub(created), 0)
	}
	w.confirmed = append(w.confirmed, c)
	return codeReserved
}

// orderTimes reads order.created_at and order.expires_at from a 201 body
// (zero when absent or unreadable). Surge writes each as a plain string
// straight after its key, which is searched for; a key inside a string
// would have its quotes escaped, so it cannot be matched there. Any other
// body is decoded in full.
func orderTimes(body []byte) (created, expires time.Time) {
	created, ok1 := bodyTime(body, `"created_at":"`)
	expires, ok2 := bodyTime(body, `"expires_at":"`)
	if ok1 && ok2 {
		return created, expires
	}
	var v api.OrderBody
	if json.Unmarshal(body, &v) != nil {
		return time.Time{}, time.Time{}
	}
	created, _ = api.ParseTime(v.Order.CreatedAt)
	expires, _ = api.ParseTime(v.Order.ExpiresAt)
	return created, expires
}

// bodyTime reads the time written as a string right after key in body.
func bodyTime(body []byte, key string) (time.Time, bool) {
	_, rest, ok := bytes.Cut(body, []byte(key))
	if !ok {
		return time.Time{}, false
	}
	n := bytes.IndexByte(rest, '"')
	if n < 0 {
		return time.Time{}, false
	}
	t, err := api.ParseTime(string(rest[:n]))
	return t, err == nil
}

// orderPrefix is how Surge's 201 bodies begin: {"order":{"id":"…
const orderPrefix = `{"order":{"id":"`

// orderID reads order.id from a 201 body. Surge writes the id first, so
// the id is read straight after orderPrefix when the body is valid JSON
// and the id has no escapes; any other body is decoded in full.
func orderID(body []byte) (string, bool) {
	if rest, ok := bytes.CutPrefix(body, []byte(orderPrefix)); ok {
		if n := bytes.IndexAny(rest, `"\`); n > 0 && rest[n] == '"' && json.Valid(body) {
			return string(rest[:n]), true
		}
	}
	var v api.OrderBody
	if json.Unmarshal(body, &v) != nil || v.Order.ID == "" {
		return "", false
	}
	return v.Order.ID, true
}

// errorCode reads the code of an error answer.
func (w *worker) errorCode(body []byte) string {
	if c, ok := w.codes[string(body)]; ok {
		return c
	}
	var e api.ErrorBody
	code := codeHTTPError
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		code = e.Error.Code
	}
	if len(w.codes) < maxCachedBodies {
		w.codes[string(body)] = code
	}
	return code
}

// validRetryAfter reports whether v is a Retry-After value as RFC 9110
// defines it: a non-negative number of seconds, or an HTTP date.
func validRetryAfter(v string) bool {
	v = strings.TrimSpace(v)
	if v == "" {
		return false
	}
	if strings.Trim(v, "0123456789") == "" {
		return true
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if s < 0 || s > int64(maxRetryAfter/time.Second) {
			return 0, false
		}
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return d, d <= maxRetryAfter
}
