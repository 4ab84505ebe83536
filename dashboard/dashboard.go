// Package dashboard provides the live sale dashboard: one self-contained
// page (GET /dashboard, its assets embedded) and its Server-Sent Events
// feed (GET /dashboard/events), a JSON snapshot a second computed from the
// same Prometheus registry /metrics serves. It keeps no counters of its
// own: rates are deltas between gathers, percentiles come from histogram
// bucket deltas.
//
// The handler does its own authentication, since a browser cannot send a
// bearer token on a navigation: the page asks for the admin token once,
// and a POST exchanges it for a signed session cookie
// (HttpOnly, SameSite=Strict, scoped to /dashboard), so the token never
// appears in a URL. docs/observability.md describes the page.
package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/internal/logrepeat"
)

//go:embed assets
var assets embed.FS

// Defaults of Config.
const (
	DefaultInterval   = time.Second
	DefaultMaxStreams = 16
	// streamMaxAge ends a stream so that its session is checked again
	// (EventSource reconnects by itself after retryMillis).
	streamMaxAge = 15 * time.Minute
	retryMillis  = 2000
)

// Config configures the dashboard.
type Config struct {
	// Gatherer is the registry /metrics serves; the feed reads the
	// contract metrics from it by name.
	Gatherer prometheus.Gatherer
	// AdminToken is required for the page and the feed: as a bearer
	// token, or through the session cookie the page's sign-in form gets
	// for it. Empty, nothing is served but the sign-in form.
	AdminToken string
	// Interval between snapshots; 0 is DefaultInterval.
	Interval time.Duration
	// MaxStreams bounds the open feeds (beyond: 429); 0 is
	// DefaultMaxStreams.
	MaxStreams int
	Logger     *slog.Logger
}

// Dashboard is the page and its feed, an http.Handler for /dashboard and
// the paths under it.
type Dashboard struct {
	cfg     Config
	feed    *feed
	session atomic.Pointer[sessions] // SetAdminToken swaps it
	mux     *http.ServeMux
	log     *slog.Logger
	// refusals bounds the lines of refused sign-ins: someone guessing the
	// token must show in the log without writing a line a guess.
	refusals *logrepeat.Limiter

	slots    chan struct{} // one per open stream
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
}

// SetAdminToken rotates the admin token while the dashboard serves:
// sessions signed under the old one end (their key derives from it).
func (d *Dashboard) SetAdminToken(token string) { d.session.Store(newSessions(token)) }

// New builds the dashboard.
func New(cfg Config) *Dashboard {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	window := defaultWindow
	if w := 5 * cfg.Interval; w > window {
		window = w
	}
	d := &Dashboard{
		cfg:      cfg,
		feed:     &feed{g: cfg.Gatherer, window: window, interval: cfg.Interval, maxSales: defaultMaxSales},
		log:      cfg.Logger,
		refusals: logrepeat.New(logrepeat.Every),
		slots:    make(chan struct{}, cfg.MaxStreams),
		stop:     make(chan struct{}),
		mux:      http.NewServeMux(),
	}
	d.session.Store(newSessions(cfg.AdminToken))
	d.mux.HandleFunc("GET /dashboard", d.guard(d.page, true))
	d.mux.HandleFunc("POST /dashboard/login", d.login)
	d.mux.HandleFunc("GET /dashboard/events", d.guard(d.events, false))
	// The page's code and style are the same for everyone (the sign-in
	// form uses the style): only the page and the figures need the token.
	d.mux.HandleFunc("GET /dashboard/dashboard.js", d.asset("dashboard.js", "text/javascript; charset=utf-8"))
	d.mux.HandleFunc("GET /dashboard/dashboard.css", d.asset("dashboard.css", "text/css; charset=utf-8"))
	// The mux answers unknown paths and wrong methods in plain text; these
	// keep every answer in the API's JSON error shape. ServeMux serves
	// HEAD wherever it serves GET, so Allow names it.
	for path, allow := range map[string]string{"/dashboard": "GET, HEAD", "/dashboard/login": "POST", "/dashboard/events": "GET, HEAD"} {
		d.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+allow)
		})
	}
	d.mux.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return d
}

// ServeHTTP serves /dashboard and the paths under it.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything the page loads is its own: no inline script, no other
	// origin, no framing.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	d.mux.ServeHTTP(w, r)
}

// Close ends every open feed and refuses new ones: http.Server.Shutdown
// waits for handlers, and a feed would hold it until its client leaves.
// Register it with http.Server.RegisterOnShutdown.
func (d *Dashboard) Close() {
	d.stopOnce.Do(func() { close(d.stop) })
}

// guard serves h to an authorized request. An unauthorized page request
// gets the sign-in form (a browser navigation cannot carry a bearer
// token); anything else gets 401.
func (d *Dashboard) guard(h http.HandlerFunc, page bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Two are refused, as the API refuses them: the first, which
		// authorized reads, need not be the one a gateway in front
		// checked or added.
		if n := len(r.Header.Values("Authorization")); n > 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="surge"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated", "send one Authorization header, not "+strconv.Itoa(n))
			return
		}
		if d.session.Load().authorized(r, time.Now()) {
			h(w, r)
			return
		}
		if page {
			d.signIn(w, http.StatusUnauthorized, "", returnPage(r.URL.Query().Get("page")))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="surge"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", "sign in at /dashboard, or send Authorization: Bearer <admin token>")
	}
}

func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	d.asset("index.html", "text/html; charset=utf-8")(w, r)
}

// signIn answers the sign-in form, with a (constant) message. The form
// carries page, the page of sales it was asked for (returnPage), so that
// the sign-in returns there.
func (d *Dashboard) signIn(w http.ResponseWriter, status int, message string, page int) {
	b, err := assets.ReadFile("assets/login.html")
	if err != nil {
		d.log.Error("dashboard asset missing", "name", "login.html", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	b = bytes.Replace(b, []byte("<!--message-->"), []byte(message), 1)
	if page > 1 {
		field := `<input type="hidden" name="page" value="` + strconv.Itoa(page) + `">`
		b = bytes.Replace(b, []byte("<!--page-->"), []byte(field), 1)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// asset serves one embedded file.
func (d *Dashboard) asset(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			d.log.Error("dashboard asset missing", "name", name, "err", err)
			writeError(w, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	}
}

// maxLoginBody bounds the sign-in form: one token field.
const maxLoginBody = 4 << 10

// login exchanges the admin token, posted by the sign-in form (a body,
// never a URL: URLs persist in history and access logs), for a session
// cookie, and sends the browser back to the page.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the sign-in form could not be read")
		return
	}
	now := time.Now()
	sess := d.session.Load()
	page := returnPage(r.PostForm.Get("page"))
	if !sess.isAdmin(r.PostForm.Get("token")) {
		// The first refusal at once, then one line a period counting the
		// others: a guesser shows, and cannot flood the log.
		if suppressed, ok := d.refusals.Allow("sign-in"); ok {
			d.log.WarnContext(r.Context(), "dashboard sign-in refused", "remote_addr", r.RemoteAddr, "suppressed", suppressed)
		}
		d.signIn(w, http.StatusUnauthorized, `<p class="error">That is not the admin token.</p>`, page)
		return
	}
	http.SetCookie(w, sess.cookie(now, overTLS(r)))
	to := "/dashboard"
	if page > 1 {
		to += "?page=" + strconv.Itoa(page)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// returnPage is the page of sales, from 2, that a sign-in returns to: the
// operator who followed /dashboard?page=3 (a bookmark, a reload after the
// session ended) signs in and must land there, not on the first page. 0
// for the first page or anything that is no page: only a number goes
// into the form and the redirect, never what was sent.
func returnPage(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 2 || n > maxPage {
		return 0
	}
	return n
}

// overTLS reports whether the browser reached the server over TLS:
// directly, or through a proxy that terminated it and says so in
// X-Forwarded-Proto or Forwarded (Surge serves no TLS itself, so behind
// its TLS proxy r.TLS is always nil). The header is believed from anyone:
// it only makes the requester's own cookie Secure.
func overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	for _, v := range r.Header.Values("X-Forwarded-Proto") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "https") {
				return true
			}
		}
	}
	for _, v := range r.Header.Values("Forwarded") {
		for elem := range strings.SplitSeq(v, ",") {
			for pair := range strings.SplitSeq(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(val, `"`), "https") {
					return true
				}
			}
		}
	}
	return false
}

// writeError answers in the API's JSON error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
