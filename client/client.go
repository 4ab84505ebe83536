// Package client is a Go client for the whole of Surge's HTTP API
// (docs/api.md): buyer calls (purchases, orders, the waiting room), the
// operator's calls (sales, the order export, manual payment), with
// retries on 429 and 503 that honour Retry-After, and, for calls safe to
// send twice (reads, keyed purchases), on a proxy's 502 and 504 and on a
// connection refused or lost (a server restarting). It sends and reads the
// objects declared in package api, and its errors match the root
// package's sentinels. The command line and the load generator use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Client talks to one Surge server as one caller. Its zero value is not
// usable: build it with New. A Client is safe for concurrent use as long
// as its fields are not changed meanwhile; AsBuyer and AsUser return
// copies for other callers.
type Client struct {
	BaseURL    string // e.g. http://127.0.0.1:8080
	AdminToken string // the operator's bearer token, for admin calls
	// BuyerToken is a buyer's JWT (Authorization: Bearer); it identifies
	// the buyer of purchases, queue joins and order calls.
	BuyerToken string
	// UserID is sent as X-User-ID when BuyerToken is empty: the buyer's
	// identity on a server run with --insecure-user-header (development).
	UserID string
	HTTP   *http.Client
	// Retry bounds the retries on 429 and 503 (and, for calls safe to
	// send twice, on a proxy's 502 and 504 and on connections refused
	// or lost); the zero value is the defaults (see RetryPolicy),
	// MaxAttempts 1 turns retrying off.
	Retry RetryPolicy

	silentAfter time.Duration // a stream this silent is dead; 0: streamSilence
}

// DefaultTimeout bounds each request of a client made by New (streams,
// the export and the queue's events, are exempt).
const DefaultTimeout = 30 * time.Second

// MaxIdleConns is how many connections a client made by New keeps open
// for reuse: one for each of as many concurrent callers.
const MaxIdleConns = 256

// IdleConnTimeout is how long a client made by New keeps a connection
// idle for reuse: less than the 5 s after which a server under
// connection pressure (80 % of --max-conns) closes idle keep-alive
// connections to make room. A call written onto a connection as the
// server closes it fails with EOF, and a call that may not be sent
// twice (a cancel, a payment, a sale's creation) cannot be retried.
// A client's own http.Client should keep a bound as short.
const IdleConnTimeout = 4 * time.Second

// New returns a client for baseURL acting as the operator holding
// adminToken ("" for none), with a DefaultTimeout per request and the
// default retry policy. Its connections (up to MaxIdleConns kept for
// reuse, each for IdleConnTimeout) are its own and its copies' (AsBuyer,
// AsUser): make one client and share it.
func New(baseURL, adminToken string) *Client {
	hc := &http.Client{Timeout: DefaultTimeout}
	// http.DefaultTransport keeps 2 idle connections per host: callers
	// beyond 2 at once would close theirs after each answer and dial
	// again, leaving sockets in TIME_WAIT until local ports run out.
	// And it keeps them 90 s, past the server's bound under pressure.
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		tr := t.Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = MaxIdleConns, MaxIdleConns
		tr.IdleConnTimeout = IdleConnTimeout
		hc.Transport = tr
	}
	return &Client{
		BaseURL:    strings.TrimRight(baseURL, "/"),
		AdminToken: adminToken,
		HTTP:       hc,
	}
}

// AsBuyer returns a copy of c that acts as the buyer of the JWT token.
func (c *Client) AsBuyer(token string) *Client {
	b := *c
	b.BuyerToken, b.UserID = token, ""
	return &b
}

// AsUser returns a copy of c that acts as buyer id through X-User-ID,
// which only a server run with --insecure-user-header accepts.
func (c *Client) AsUser(id string) *Client {
	b := *c
	b.BuyerToken, b.UserID = "", id
	return &b
}

// ErrNoAdminToken is returned, before anything is sent, by a call that
// needs the admin token when the client has none.
var ErrNoAdminToken = errors.New("no admin token")

// ErrNoBuyer is returned, before anything is sent, by a buyer's call when
// the client has neither a BuyerToken nor a UserID.
var ErrNoBuyer = errors.New("no buyer identity: set a buyer token (AsBuyer) or a user id (AsUser)")

// who is the credential a call sends.
type who int

const (
	anyone       who = iota // nothing
	admin                   // the admin token, required
	buyer                   // the buyer's identity, required
	buyerOrAdmin            // the buyer's identity, else the admin token
)

// safety says which refusals a call may be sent again after.
type safety int

const (
	// idempotent: sending it twice does what sending it once does, so
	// every 429 and 503 is retried, also a 503 after which the first
	// attempt may have taken effect (unavailable: the commit wait ran
	// out), and so are a proxy's 502 and 504 and a connection refused,
	// reset or closed before the answer.
	idempotent safety = iota
	// once: a second effect would differ (a cancel of a cancelled order
	// answers 409), so only refusals that guarantee nothing was done are
	// retried: 429, 503 overloaded, and a connection refused.
	once
	// noRetry: the caller handles refusals (streams fall back to
	// polling).
	noRetry
)

// call is one API request, sent again as it is on every retry.
type call struct {
	method, path string
	who          who
	body         []byte
	header       http.Header
	safety       safety
	stream       bool // no per-request timeout: the answer lasts
	// silence, when set, bounds each wait of an attempt for the server:
	// for its answer's header, then for each read of its body (the
	// caller's time between reads is not counted). A stream has no
	// timeout, and without it a server or proxy that stops sending holds
	// its caller for good.
	silence time.Duration
	// sign, when set, adds headers made afresh for each send (a
	// signature whose timestamp must be recent).
	sign func(http.Header)
}

func (c *Client) newCall(method, path string, w who, body any) (*call, error) {
	cl := &call{method: method, path: path, who: w, header: http.Header{}}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		cl.body = b
		cl.header.Set("Content-Type", "application/json")
	}
	return cl, nil
}

// request builds one attempt of cl.
func (c *Client) request(ctx context.Context, cl *call) (*http.Request, error) {
	var rd io.Reader
	if cl.body != nil {
		rd = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.BaseURL+cl.path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range cl.header {
		req.Header[k] = v
	}
	if cl.sign != nil {
		cl.sign(req.Header)
	}
	w := cl.who
	if w == buyerOrAdmin {
		w = buyer
		if c.BuyerToken == "" && c.UserID == "" {
			w = admin
		}
	}
	switch w {
	case admin:
		if c.AdminToken == "" {
			return nil, fmt.Errorf("%s %s: %w", cl.method, cl.path, ErrNoAdminToken)
		}
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	case buyer:
		switch {
		case c.BuyerToken != "":
			req.Header.Set("Authorization", "Bearer "+c.BuyerToken)
		case c.UserID != "":
			req.Header.Set("X-User-ID", c.UserID)
		default:
			return nil, fmt.Errorf("%s %s: %w", cl.method, cl.path, ErrNoBuyer)
		}
	}
	return req, nil
}

// send sends cl, retrying refusals as cl.safety and c.Retry allow, and
// returns the first answer below 300 with its body open for the caller to
// read and close. Any other answer is an *APIError.
func (c *Client) send(ctx context.Context, cl *call) (*http.Response, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	// A copy: no per-request timeout for a stream, and redirects
	// followed only within the server's origin.
	cp := *hc
	if cl.stream {
		cp.Timeout = 0
	}
	cp.CheckRedirect = sameOrigin(hc.CheckRedirect)
	hc = &cp
	pol := c.Retry.withDefaults()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		actx, wd := ctx, (*watchdog)(nil)
		if cl.silence > 0 {
			wd = newWatchdog(ctx, cl.silence)
			actx = wd.ctx
		}
		req, err := c.request(actx, cl)
		if err != nil {
			wd.close()
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			wd.close()
			err = wd.explain(err)
			if ctx.Err() != nil || !cl.retryableFailure(err) {
				return nil, err
			}
			if err := retryWait(ctx, pol, attempt, 0, start, &failure{err: err, attempts: attempt}); err != nil {
				return nil, err
			}
			continue
		}
		if resp.StatusCode < 300 {
			if wd != nil {
				wd.t.Stop() // the caller's reads arm it again
				resp.Body = &watchedBody{ReadCloser: resp.Body, wd: wd}
			}
			return resp, nil
		}
		ae := decodeError(resp)
		resp.Body.Close()
		wd.close()
		ae.Attempts = attempt
		if !cl.retryable(ae) {
			return nil, ae
		}
		if err := retryWait(ctx, pol, attempt, ae.RetryAfter, start, ae); err != nil {
			return nil, err
		}
	}
}

// retryWait waits before the attempt after attempt, which failed with
// last after a Retry-After of floor, and returns nil; or returns the
// error to give up with when pol or ctx allows no retry.
func retryWait(ctx context.Context, pol RetryPolicy, attempt int, floor time.Duration, start time.Time, last error) error {
	wait, ok := pol.wait(attempt, floor, time.Since(start))
	if !ok {
		return last
	}
	// Nor is a retry made that the caller's deadline would come
	// before: waiting for it would spend the caller's time for
	// nothing, and hide the refusal behind the deadline's error.
	if dl, set := ctx.Deadline(); set && time.Until(dl) <= wait {
		return last
	}
	t := time.NewTimer(wait)
	select {
	case <-ctx.Done():
		t.Stop()
		// Both: the caller cancelled, and what the server said last.
		return fmt.Errorf("%w while waiting to retry after %w", ctx.Err(), last)
	case <-t.C:
		return nil
	}
}

// failure is an attempt that got no answer (a connection refused or
// lost), said with how many were made.
type failure struct {
	err      error
	attempts int
}

func (f *failure) Error() string {
	if f.attempts > 1 {
		return fmt.Sprintf("%v (gave up after %d attempts)", f.err, f.attempts)
	}
	return f.err.Error()
}

func (f *failure) Unwrap() error { return f.err }

// retryableFailure reports whether cl may be sent again after err, an
// attempt that got no answer. A connection refused sent nothing, so
// every call but noRetry's may be; a connection reset or closed before
// the answer (a server restarting, a proxy dropping it) may have been
// acted on, so only an idempotent call may be, as after 503 unavailable.
// Anything else (a redirect refused, a timeout, a stream gone silent, a
// bad URL) is not a server coming back.
func (cl *call) retryableFailure(err error) bool {
	switch {
	case cl.safety == noRetry || isSilent(err):
		return false
	case errors.Is(err, syscall.ECONNREFUSED):
		return true
	case cl.safety != idempotent:
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// transientFailure reports whether err, a call's, says "not now" rather
// than "never": a refusal a client retries (429, 503), a proxy's 502 or
// 504, a server that could not be reached or dropped the connection, or
// one that did not answer within the client's timeout (http.Client's,
// not the caller's context, which its caller checks first): a server
// slow for a moment, which send does not retry (the timeout is the
// caller's bound on one call), but a wait may outlast.
func transientFailure(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return (&call{safety: idempotent}).retryableFailure(err)
}

// watchdog ends an attempt (its context) once the server has been
// silent for d while the client waited for it.
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	t      *time.Timer
	d      time.Duration
}

// errSilent is the cause of an attempt its watchdog ended.
type errSilent struct{ d time.Duration }

func (e errSilent) Error() string {
	return fmt.Sprintf("the server sent nothing for %v: the connection is dead or the server stalled", e.d)
}

// Is makes a silent export ErrStreamSilent for its callers, as a silent
// queue stream is.
func (e errSilent) Is(target error) bool { return target == ErrStreamSilent }

// isSilent reports whether err is an attempt a watchdog ended.
func isSilent(err error) bool {
	var s errSilent
	return errors.As(err, &s)
}

func newWatchdog(ctx context.Context, d time.Duration) *watchdog {
	wd := &watchdog{d: d}
	wd.ctx, wd.cancel = context.WithCancelCause(ctx)
	wd.t = time.AfterFunc(d, func() { wd.cancel(errSilent{d}) })
	return wd
}

// close releases wd; a nil wd is none.
func (wd *watchdog) close() {
	if wd != nil {
		wd.t.Stop()
		wd.cancel(nil)
	}
}

// explain is err, an attempt's failure, said as the silence it was when
// wd ended the attempt.
func (wd *watchdog) explain(err error) error {
	if wd == nil {
		return err
	}
	var s errSilent
	if cause := context.Cause(wd.ctx); errors.As(cause, &s) {
		return cause
	}
	return err
}

// watchedBody is an answer's body whose every read wd bounds.
type watchedBody struct {
	io.ReadCloser
	wd *watchdog
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.wd.t.Reset(b.wd.d)
	n, err := b.ReadCloser.Read(p)
	b.wd.t.Stop()
	if err != nil && err != io.EOF {
		err = b.wd.explain(err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.wd.close()
	return err
}

// retryable reports whether the refusal ae may be answered by sending cl
// again.
func (cl *call) retryable(ae *APIError) bool {
	switch {
	case cl.safety == noRetry:
		return false
	case ae.Status == http.StatusTooManyRequests:
		return true
	case ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout:
		// A proxy's: the server behind it is restarting or did not
		// answer in time, and may have acted on the request.
		return cl.safety == idempotent
	case ae.Status != http.StatusServiceUnavailable:
		return false
	}
	return cl.safety == idempotent || ae.Code == "overloaded"
}

// do sends cl and decodes its answer into out (nil: the body is ignored).
func (c *Client) do(ctx context.Context, cl *call, out any) (http.Header, error) {
	resp, err := c.send(ctx, cl)
	if err != nil {
		return nil, err
	}
	defer drainClose(resp.Body)
	// Also when the body is not read (a probe): a proxy's page answered
	// 200 is not the API's success.
	if err := c.notJSON(cl, resp); err != nil {
		return nil, err
	}
	if out == nil {
		return resp.Header, nil
	}
	lr := &io.LimitedReader{R: resp.Body, N: maxAnswer + 1}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("decode %s %s: an answer larger than %d MiB, not Surge's", cl.method, cl.path, maxAnswer>>20)
		}
		return nil, fmt.Errorf("decode %s %s: %w", cl.method, cl.path, err)
	}
	return resp.Header, nil
}

// notJSON is the error of a success answer that is a page: a proxy's
// (a sign-in form a redirect led to, a captive portal) in place of the
// API's answer. Decoded, it would be a JSON syntax error naming neither
// the page nor where it came from. Only HTML is refused: a server or
// proxy that sends JSON without saying so (net/http then labels it
// text/plain) is still decoded.
func (c *Client) notJSON(cl *call, resp *http.Response) error {
	return c.notA(cl, resp, "the API's JSON", func(mt string) bool {
		return mt != "text/html" && mt != "application/xhtml+xml"
	})
}

// notA is the error of a success answer whose media type is not one ok
// takes (what names it), quoting the answer's start; nil for one with no
// Content-Type.
func (c *Client) notA(cl *call, resp *http.Response, what string, ok func(mediaType string) bool) error {
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && ok(mt) {
		return nil
	}
	// Where a redirect led, when it led elsewhere. A caller's
	// RoundTripper may leave the answer's Request unset (http.Client
	// does not set it; http.Transport does): then where is not known.
	from := ""
	if r := resp.Request; r != nil && r.URL != nil {
		if u := r.URL.Redacted(); u != c.BaseURL+cl.path {
			from = " from " + u
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxPageQuote+1))
	quote := strings.TrimSpace(string(b))
	if len(quote) > maxPageQuote {
		quote = strings.ToValidUTF8(quote[:maxPageQuote], "") + "…"
	}
	return fmt.Errorf("%s %s: answered %s with %s%s, not %s (a proxy's page?): %s",
		cl.method, cl.path, resp.Status, ct, from, what, quote)
}

// drainClose reads what is left of an answer, within maxDrain, and
// closes it: net/http reuses a connection only once its answer was read
// to the end, and closes it otherwise.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	body.Close()
}

// maxDrain bounds what drainClose reads: more than Surge's small answers
// and a decoded answer's trailing newline, less than a reconnection costs.
const maxDrain = 4 << 10

// maxAnswer bounds a success answer that do decodes: far above the
// largest the API sends (a page of 1000 sales is under 2 MiB), so that
// a server or proxy sending an endless body is an error, not all of the
// client's memory. The export, a stream, is read order by order.
const maxAnswer = 16 << 20

// sameOrigin is a CheckRedirect that follows a redirect (then asks next,
// if any) only to the scheme and host:port of the first request, and
// only with the first request's method. The
// calls carry credentials in headers (the bearer tokens, X-User-ID, the
// waiting-room ticket), and http.Client sends all of them on to another
// port or scheme of the same host name, and all but Authorization to
// any host: a redirect elsewhere (a proxy's mistake or an attacker's) is
// an error that names where it pointed, never a call answered by
// another server.
func sameOrigin(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if o := via[0].URL; req.URL.Scheme != o.Scheme || req.URL.Host != o.Host {
			return fmt.Errorf("redirected to %s, another origin than %s://%s: not followed, the request's credentials are for the server only",
				req.URL.Redacted(), o.Scheme, o.Host)
		}
		// 301, 302 and 303 are followed with a GET and no body: a write
		// (a purchase, a PATCH) would become a read of the new path, its
		// answer taken for the write's. 307 and 308 keep the method.
		if m := via[0].Method; req.Method != m {
			return fmt.Errorf("%s redirected (HTTP %d) to %s, which would be sent as %s: not followed, nothing was sent there; use the address it points to",
				m, req.Response.StatusCode, req.URL.Redacted(), req.Method)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}
