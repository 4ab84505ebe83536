package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Defaults of a fetched key set.
const (
	DefaultJWKSRefresh    = 5 * time.Minute
	DefaultJWKSMinRefetch = 30 * time.Second
	// MinJWKSRefresh is the least --jwks-refresh surge serve accepts: a
	// shorter one would have every node fetch the set that often, more
	// often than a flood of unknown kids may (DefaultJWKSMinRefetch).
	MinJWKSRefresh     = 30 * time.Second
	defaultJWKSTimeout = 10 * time.Second
)

// RemoteJWKSOptions tunes a fetched key set; the zero value is the
// defaults.
type RemoteJWKSOptions struct {
	// Refresh is how often the set is fetched again (DefaultJWKSRefresh).
	Refresh time.Duration
	// MinRefetch is the least time between two fetches caused by tokens
	// naming a kid the set lacks (DefaultJWKSMinRefetch), so a flood of
	// made-up kids costs the key server one request per MinRefetch.
	MinRefetch time.Duration
	// Timeout bounds one fetch (10 s).
	Timeout time.Duration
	// Client makes the requests (a client with Timeout if nil).
	Client *http.Client
	// Logger reports refreshes that failed or changed the keys.
	Logger *slog.Logger
}

// RemoteJWKS is a key set fetched from a URL (an identity provider's
// jwks_uri) and kept fresh: fetched again every Refresh, and at once, at
// most every MinRefetch, when a token names a kid the set lacks (the
// issuer rotated keys). github.com/MicahParks/jwkset does the fetching on
// its schedule; each fetched set is checked as a JWKS file is, except
// that keys Surge cannot verify with (encryption keys, other curves) are
// skipped. A fetch that fails, or a set that does not pass, leaves the
// keys in force as they are; a set that passes replaces them whole.
type RemoteJWKS struct {
	// shown is the URL as errors and logs show it (shownURL); raw is
	// the URL itself, whose query hideQuery masks in errors of others.
	shown   string
	raw     string
	ctx     context.Context
	stop    context.CancelFunc
	timeout time.Duration
	log     *slog.Logger
	// client is jwkset's HTTP client storage: KeyRead of an unknown kid
	// makes it fetch again (its own limiter is unlimited: gate limits).
	client jwkset.Storage
	gate   *rate.Limiter
	// cur is the set in force; doc the document it was built from, to
	// tell a changed set from the same one fetched again; applied the
	// number of the fetch it came from (putMu guards doc and applied).
	cur     atomic.Pointer[JWKS]
	doc     []byte
	applied int64
	putMu   sync.Mutex
	// fetches numbers the fetches in the order they begin.
	fetches atomic.Int64
	mu      sync.Mutex // one Refresh (a reload) at a time
	// unknown is the fetch for unknown kids: concurrent tokens share one,
	// and none waits for it beyond its own request's context.
	unknown singleflight.Group
}

// fetchErr is the context key under which a fetch on demand receives the
// error jwkset hands to its refresh error handler.
type fetchErr struct{}

// FetchJWKS fetches the key set at url and keeps it fresh until ctx ends.
// The first fetch must succeed and yield at least one usable key.
func FetchJWKS(ctx context.Context, url string, o RemoteJWKSOptions) (*RemoteJWKS, error) {
	if o.Refresh <= 0 {
		o.Refresh = DefaultJWKSRefresh
	}
	if o.MinRefetch <= 0 {
		o.MinRefetch = DefaultJWKSMinRefetch
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultJWKSTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	shown := shownURL(url)
	if _, err := neturl.ParseRequestURI(url); err != nil {
		// jwkset's error would quote the URL whole, password included.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("jwks-url %s: %w", shown, err)
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: o.Timeout}
	}
	// jwkset starts its refresh goroutine before the first fetch: a
	// failed start must stop it.
	ctx, cancel := context.WithCancel(ctx)
	r := &RemoteJWKS{shown: shown, raw: url, ctx: ctx, stop: cancel, timeout: o.Timeout, log: o.Logger,
		gate: rate.NewLimiter(rate.Every(o.MinRefetch), 1)}
	limited := *client
	limited.Transport = limitBody{next: client.Transport, max: maxJWKSFile, r: r}
	store, err := jwkset.NewStorageFromHTTP(url, jwkset.HTTPClientStorageOptions{
		Client:      &limited,
		Ctx:         ctx,
		HTTPTimeout: o.Timeout,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			if p, ok := ctx.Value(fetchErr{}).(*error); ok {
				*p = err
				return
			}
			r.log.Warn("jwks: refresh failed; the keys in force stay", "url", shown, "err", hideQuery(err, url))
		},
		RefreshInterval: o.Refresh,
		Storage:         jwkset.NewMemoryStorage(),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwks-url %s: %w", shown, hideQuery(err, url))
	}
	r.client, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{url: store},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwks-url: %w", err)
	}
	return r, nil
}

// Close stops the scheduled refreshes; the keys in force stay.
func (r *RemoteJWKS) Close() { r.stop() }

// current returns the set in force; nil for a nil RemoteJWKS.
func (r *RemoteJWKS) current() *JWKS {
	if r == nil {
		return nil
	}
	return r.cur.Load()
}

// Refresh fetches the set now, whatever the schedule, and returns why the
// keys in force stayed if they did.
func (r *RemoteJWKS) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetch(ctx)
}

// fetch has jwkset fetch the set (the sink applies it). put orders the
// answers of fetches that overlap (a reload's, an unknown kid's, the
// schedule's).
func (r *RemoteJWKS) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var failed error
	ctx = context.WithValue(ctx, fetchErr{}, &failed)
	// A kid no set can hold makes jwkset's client fetch every URL.
	_, err := r.client.KeyRead(ctx, "\x00surge-refresh")
	if failed != nil {
		return fmt.Errorf("jwks-url %s: %w", r.shown, hideQuery(failed, r.raw))
	}
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return err
	}
	return nil
}

// refreshForUnknownKid fetches the set again for a token whose kid seen
// lacks, unless the gate says a fetch happened too recently. It returns
// the set in force if it is no longer seen (fetched by this call or by
// another meanwhile), nil otherwise. Concurrent callers share one fetch,
// and each waits for it only as long as its ctx (its request's) allows:
// a key server that hangs must not hold every such request for the fetch
// timeout. The fetch itself runs under the RemoteJWKS's own context,
// bounded by the fetch timeout, since it serves every caller waiting,
// not only the one that began it.
func (r *RemoteJWKS) refreshForUnknownKid(ctx context.Context, seen *JWKS) *JWKS {
	if cur := r.cur.Load(); cur != seen {
		return cur
	}
	done := r.unknown.DoChan("", func() (any, error) {
		// The gate bounds the key server's load whatever the flood.
		if !r.gate.Allow() {
			return nil, nil
		}
		if err := r.fetch(r.ctx); err != nil {
			r.log.Warn("jwks: fetch for an unknown kid failed", "url", r.shown, "err", err)
		}
		return nil, nil
	})
	select {
	case <-done:
	case <-ctx.Done():
		return nil
	}
	if cur := r.cur.Load(); cur != seen {
		return cur
	}
	return nil
}

// put puts in force the set of fetch number seq, if it changed, unless
// a fetch begun after it was put in force already: the scheduled refresh
// and a fetch on demand (a reload, an unknown kid) may overlap, and the
// older answer, arriving last, must not bring back keys the newer one
// withdrew.
func (r *RemoteJWKS) put(ks *JWKS, seq int64) {
	r.putMu.Lock()
	defer r.putMu.Unlock()
	if seq < r.applied {
		return
	}
	r.applied = seq
	doc := ks.document()
	if bytes.Equal(doc, r.doc) {
		return // the same keys: cached tokens stay good
	}
	old := r.cur.Load()
	r.doc = doc
	r.cur.Store(ks)
	if old != nil {
		r.log.Info("jwks: keys changed", "url", r.shown, "keys", ks.Len())
	}
}

// shownURL is a --jwks-url as an error or a log may show it: its password
// and its query's values masked, as a store URL's password is (the URL
// may carry the key server's credentials, in the userinfo or as a token
// in the query: ?access_token=…); a URL that does not parse is not shown
// at all, since it may hold anything.
func shownURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = MaskedQuery(u.RawQuery)
	return u.Redacted()
}

// MaskedQuery is a query with every value masked; the names stay, to tell
// which URL it is. A pair that does not parse is dropped, never shown. A
// bare word (?s3cret, or s3cret=) is a value without a name, which the
// parser reads as a name: the credential itself, so it is masked whole,
// after the named pairs, where its place tells nothing of it either.
// --print-config shows --jwks-url's query through it too.
func MaskedQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, _ := neturl.ParseQuery(raw)
	bare := 0
	for name, vs := range q {
		kept := vs[:0]
		for _, v := range vs {
			if v == "" {
				bare++
				continue
			}
			kept = append(kept, "xxxxx")
		}
		if len(kept) == 0 {
			delete(q, name)
		} else {
			q[name] = kept
		}
	}
	shown := q.Encode()
	for range bare {
		if shown != "" {
			shown += "&"
		}
		shown += "xxxxx"
	}
	return shown
}

// hideQuery masks the query of the URL raw in the text of err, and the
// query of every URL a *url.Error in err's chain quotes: net/http's errors
// quote the URL of the request whole but for its password (after a
// redirect, the target's, which may be a signed URL: ?sig=…), and jwkset
// wraps them into its own text. Each URL is masked where it stands whole,
// quoted (%q, which escapes a \ or " in the query) or not: the query's
// bare text may be short enough to stand in any word. The error chain
// stays for errors.Is.
func hideQuery(err error, raw string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	urls := urlErrorURLs(err, []string{raw})
	// The longest first: a URL may begin another (a redirect's target
	// that appends a signature to --jwks-url's query), and masking the
	// shorter inside the longer would leave the longer's further query
	// where its whole text is found no more.
	slices.SortStableFunc(urls, func(a, b string) int { return len(b) - len(a) })
	for _, s := range urls {
		u, perr := neturl.Parse(s)
		if perr != nil || u.RawQuery == "" {
			continue
		}
		shown := strings.Replace(s, "?"+u.RawQuery, "?"+MaskedQuery(u.RawQuery), 1)
		msg = strings.ReplaceAll(msg, strconv.Quote(s), strconv.Quote(shown))
		msg = strings.ReplaceAll(msg, s, shown)
	}
	if msg == err.Error() {
		return err
	}
	return maskedErr{msg: msg, err: err}
}

// urlErrorURLs appends to urls the URLs that the *url.Errors in err's
// chain quote.
func urlErrorURLs(err error, urls []string) []string {
	if ue, ok := err.(*neturl.Error); ok {
		urls = append(urls, ue.URL)
	}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		if next := e.Unwrap(); next != nil {
			urls = urlErrorURLs(next, urls)
		}
	case interface{ Unwrap() []error }:
		for _, next := range e.Unwrap() {
			urls = urlErrorURLs(next, urls)
		}
	}
	return urls
}

// maskedErr is an error whose text had a secret masked.
type maskedErr struct {
	msg string
	err error
}

func (e maskedErr) Error() string { return e.msg }
func (e maskedErr) Unwrap() error { return e.err }

// limitBody refuses responses larger than max bytes, as LoadJWKS refuses
// such files: jwkset decodes the body as it comes.
type limitBody struct {
	next http.RoundTripper
	max  int64
	r    *RemoteJWKS // the set a key set served is put in force in
}

func (l limitBody) RoundTrip(req *http.Request) (*http.Response, error) {
	next := l.next
	if next == nil {
		next = http.DefaultTransport
	}
	seq := l.r.fetches.Add(1)
	resp, err := next.RoundTrip(req)
	if err != nil {
		// It quotes the line Go could not read (a header's, with a
		// control character in a signed Location): the key server's own
		// text, which may hold a credential no masking can find.
		var pe textproto.ProtocolError
		if errors.As(err, &pe) {
			return nil, maskedErr{msg: "jwks: the key server's answer has a status or header line that does not parse (not shown: it may hold a credential)", err: err}
		}
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		// The client that follows it quotes a Location it cannot parse
		// whole, where no URL's query can be masked: refused here, not
		// shown, as a --jwks-url that does not parse is not.
		if loc := resp.Header.Get("Location"); loc != "" {
			if _, perr := req.URL.Parse(loc); perr != nil {
				resp.Body.Close()
				return nil, errors.New("jwks: the key server redirected to a Location that is not a URL (not shown: it may hold a credential)")
			}
		}
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: l.max}
	if resp.StatusCode != http.StatusOK {
		return resp, nil // jwkset refuses it by its status
	}
	// The set is judged as served, by the reader of JWKS files, and
	// jwkset gets only the keys kept, written out plainly. jwkset reads
	// member names in any case, keeps the last of two, drops private
	// members unless they make a whole private key by its rules, and
	// refuses a whole set for a use or key_ops value of its own: what it
	// read back was not the set served.
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	ks, err := parseJWKS(raw, true)
	if err != nil {
		return nil, fmt.Errorf("jwks: cannot decode the key set served: %w", err)
	}
	l.r.put(ks, seq)
	doc := ks.document()
	resp.Body = io.NopCloser(bytes.NewReader(doc))
	resp.ContentLength = int64(len(doc))
	resp.Header.Del("Content-Length")
	return resp, nil
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("jwks: the key set is larger than %d bytes", maxJWKSFile)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
