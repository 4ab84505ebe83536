package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

const (
	defaultTimeout = 10 * time.Second
	// maxAttempts bounds the sends of one purchase when Config.Retry
	// honours Retry-After.
	maxAttempts = 5
	// maxRetryAfter: a longer Retry-After means "not now"; the purchase is
	// given up rather than parking a connection for minutes.
	maxRetryAfter = 30 * time.Second
	// maxBody bounds what is read of an answer (purchase answers are <1 KB).
	maxBody = 64 << 10
	// maxCachedBodies bounds the per-worker cache of error bodies.
	maxCachedBodies = 64
	maxConnections  = 100_000
)

// Run fires the crowd described by cfg at cfg.Target and measures it. It
// creates the sale first when cfg.CreateSale. The run ends by itself when
// the crowd is exhausted, the shape is over (open loop), cfg.Duration has
// passed or ctx is done; requests in flight then finish, within
// cfg.Timeout. Ending early through ctx is not an error: the result covers
// what was sent.
//
// It returns what was measured and every 201 received (replays included),
// for Verify. When progress is not nil a live line is written to it every
// second. An error means the run could not start: an invalid Config, or
// the sale could not be created or read.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, []Confirmation, error) {
	cfg, err := prepare(cfg)
	if err != nil {
		return nil, nil, err
	}
	created, limit, err := prepareSale(ctx, &cfg)
	if err != nil {
		return nil, nil, err
	}

	hc := newHostClient(cfg)
	defer hc.CloseIdleConnections()
	r := &runner{
		cfg: cfg,
		hc:  hc,
		url: strings.TrimRight(cfg.Target, "/") + "/v1/sales/" + url.PathEscape(cfg.SaleID) + "/purchases",
		crowd: crowd{
			users: cfg.Users, seed: cfg.Seed, prefix: cfg.UserPrefix,
			maxQuantity: cfg.MaxQuantity, retryShare: cfg.RetryShare,
		},
	}

	cpu0 := cpuTime()
	start := time.Now()
	r.rec = newRecorder(start, cfg.Mode == OpenLoop)
	var cancel context.CancelFunc
	if cfg.Duration > 0 {
		r.deadline = start.Add(cfg.Duration)
		r.ctx, cancel = context.WithDeadline(ctx, r.deadline)
	} else {
		r.ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	done := make(chan struct{})
	var live sync.WaitGroup
	if progress != nil {
		live.Go(func() { r.showProgress(progress, done) })
	}
	workers := make([]*worker, cfg.Connections)
	for i := range workers {
		workers[i] = newWorker(r)
	}
	defer func() {
		for _, w := range workers {
			w.release()
		}
	}()
	if cfg.Mode == OpenLoop {
		r.openLoop(workers)
	} else {
		r.closedLoop(workers)
	}
	end := time.Now()
	cpu := cpuTime() - cpu0
	close(done)
	live.Wait()

	elapsed := end.Sub(start)
	res := &Result{
		Target:      cfg.Target,
		SaleID:      cfg.SaleID,
		Mode:        cfg.Mode,
		Users:       cfg.Users,
		Connections: cfg.Connections,
		Started:     start.Round(0),
		Elapsed:     Duration(elapsed),
		Created:     created,
		StartLimit:  limit,
	}
	if cfg.Mode == OpenLoop {
		res.Shape = cfg.Shape.String()
	}
	r.rec.fill(res, elapsed)
	if cfg.Mode == OpenLoop {
		window := elapsed
		if cfg.Duration > 0 {
			window = min(window, cfg.Duration)
		}
		res.Scheduled = scheduled(cfg.Shape, window, cfg.Users)
		res.Unsent = max(res.Scheduled-r.rec.begun.Load(), 0)
	}
	if s := elapsed.Seconds(); s > 0 {
		res.Throughput = float64(res.Completed) / s
		res.Goodput = float64(res.Status[http.StatusCreated]+res.Status[http.StatusConflict]) / s
		res.Client.CPUSeconds = cpu.Seconds()
		res.Client.CPUShare = cpu.Seconds() / (s * float64(runtime.NumCPU()))
	}
	var confirmed []Confirmation
	for _, w := range workers {
		confirmed = append(confirmed, w.confirmed...)
		res.RefusedReplays = append(res.RefusedReplays, w.refused...)
	}
	return res, confirmed, nil
}

// scheduled counts the purchases shape s calls for before offset window,
// at most users (the crowd ends there).
func scheduled(s Shape, window time.Duration, users int) int64 {
	var n int64
	for off := range Schedule(s) {
		if off >= window || n >= int64(users) {
			break
		}
		n++
	}
	return n
}

// CheckConfig reports what Run would refuse in cfg before it sends anything:
// its own fields, not what only the server can tell (a sale that does not
// exist, a limit below MaxQuantity). A command line checks its flags with
// it before any request; a refusal is a *ConfigError naming the field.
func CheckConfig(cfg Config) error {
	_, err := prepare(cfg)
	return err
}

// ConfigError is a value of Config that Run refuses. Field is the Config
// field, so that a command line can name the flag the user typed, which
// the words of the message need not match (MaxQuantity is --quantity).
type ConfigError struct {
	Field string // e.g. "MaxQuantity"
	Err   error  // what is wrong with it
}

func (e *ConfigError) Error() string { return "bench: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// prepare validates cfg and applies its defaults.
func prepare(cfg Config) (Config, error) {
	bad := func(field, format string, args ...any) (Config, error) {
		return cfg, &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	u, err := url.Parse(cfg.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return bad("Target", "target must be a base URL such as http://127.0.0.1:8080, not %q", cfg.Target)
	}
	if cfg.SaleID != "" && !validID(cfg.SaleID) {
		return bad("SaleID", "sale id %q must match [A-Za-z0-9_-]{1,64}", cfg.SaleID)
	}
	if cfg.CreateSale {
		if cfg.AdminToken == "" {
			return bad("AdminToken", "creating the sale needs the admin token")
		}
		if cfg.Stock < 1 {
			return bad("Stock", "stock must be at least 1 to create the sale (got %d)", cfg.Stock)
		}
		if cfg.PerUserLimit < 0 || cfg.PerUserLimit > cfg.Stock {
			return bad("PerUserLimit", "per-user limit must be between 1 and the stock %d (got %d)", cfg.Stock, cfg.PerUserLimit)
		}
	} else if cfg.SaleID == "" {
		return bad("SaleID", "give the sale id to buy from, or set CreateSale")
	}
	if cfg.Users < 1 {
		return bad("Users", "users must be at least 1 (got %d)", cfg.Users)
	}
	if cfg.MaxQuantity == 0 {
		cfg.MaxQuantity = 1
	}
	if cfg.MaxQuantity < 1 {
		return bad("MaxQuantity", "max quantity must be at least 1 (got %d)", cfg.MaxQuantity)
	}
	if cfg.CreateSale {
		// 0 takes the server's default limit, 1.
		if limit := max(cfg.PerUserLimit, 1); cfg.MaxQuantity > limit {
			return bad("MaxQuantity", "max quantity %d is over the per-user limit %d: those purchases would be refused as invalid", cfg.MaxQuantity, limit)
		}
	}
	if !(cfg.RetryShare >= 0 && cfg.RetryShare <= 1) {
		return bad("RetryShare", "retry share must be between 0 and 1 (got %v)", cfg.RetryShare)
	}
	if !validIDChars(cfg.UserPrefix) {
		return bad("UserPrefix", "user prefix %q may only hold A-Z, a-z, 0-9, _ and -", cfg.UserPrefix)
	}
	if longest := len(cfg.UserPrefix) + 1 + len(strconv.Itoa(cfg.Users-1)); longest > 64 {
		return bad("UserPrefix", "user prefix %q is too long: user ids would have %d characters, over 64", cfg.UserPrefix, longest)
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ClosedLoop
		fallthrough
	case ClosedLoop:
		if cfg.Shape != nil {
			return bad("Shape", "a shape applies to open loop only (mode %q)", OpenLoop)
		}
	case OpenLoop:
		if cfg.Shape == nil {
			return bad("Shape", "open loop needs a shape")
		}
		if cfg.Shape.Length() <= 0 {
			return bad("Shape", "shape %q has no length", cfg.Shape)
		}
	default:
		return bad("Mode", "mode must be %q or %q, not %q", ClosedLoop, OpenLoop, cfg.Mode)
	}
	if cfg.Connections < 1 || cfg.Connections > maxConnections {
		return bad("Connections", "connections must be between 1 and %d (got %d)", maxConnections, cfg.Connections)
	}
	if cfg.Duration < 0 {
		return bad("Duration", "duration must not be negative (got %s)", cfg.Duration)
	}
	if cfg.Timeout < 0 {
		return bad("Timeout", "timeout must not be negative (got %s)", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	return cfg, nil
}

func validIDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validID(s string) bool { return len(s) >= 1 && len(s) <= 64 && validIDChars(s) }

// prepareSale creates the sale, or checks that it exists, before any load
// is fired: a wrong id should fail in a second, not after a million 404s.
// It returns the sale it created, nil for an existing one, and the sale's
// per-user limit.
func prepareSale(ctx context.Context, cfg *Config) (*api.Sale, int64, error) {
	c := client.New(cfg.Target, cfg.AdminToken)
	if cfg.CreateSale {
		in := api.NewSale{Name: new("surge bench"), Stock: new(cfg.Stock)}
		if cfg.SaleID != "" {
			in.ID = new(cfg.SaleID)
		}
		if cfg.PerUserLimit > 0 {
			in.PerUserLimit = new(cfg.PerUserLimit)
		}
		sale, err := c.CreateSale(ctx, in)
		if err != nil {
			return nil, 0, fmt.Errorf("bench: create sale: %w", err)
		}
		cfg.SaleID = sale.ID
		// The terms the run asked for, not the server's echo of them: a
		// server that created the sale with more units than asked would
		// otherwise hide an oversell from every check (checkTerms).
		sale.Stock = cfg.Stock
		if cfg.PerUserLimit > 0 {
			sale.PerUserLimit = cfg.PerUserLimit
		}
		return &sale, sale.PerUserLimit, nil
	}
	sale, err := c.Sale(ctx, cfg.SaleID)
	if err != nil {
		return nil, 0, fmt.Errorf("bench: read sale %q: %w", cfg.SaleID, err)
	}
	if cfg.MaxQuantity > sale.PerUserLimit {
		return nil, 0, fmt.Errorf("bench: max quantity %d is over sale %q's per-user limit %d: those purchases would be refused as invalid",
			cfg.MaxQuantity, cfg.SaleID, sale.PerUserLimit)
	}
	return nil, sale.PerUserLimit, nil
}

// newHostClient returns the run's one client for purchases.
//
// Purchases go through fasthttp rather than net/http for the CPU. Measured
// on a 2-core machine with server and bench side by side (closed loop, 128
// connections): net/http's client cost 38–46 µs of CPU per request (its
// per-connection read and write goroutines, per-request header maps and
// allocations) against 16–19 µs for wrk, so the bench reached only
// 0.6–0.77 of wrk's throughput and took CPU from the server it measured.
// fasthttp reuses each worker's request and response and runs the
// exchange on the calling goroutine: about 21 µs per request, and about
// 0.9 of wrk's throughput. Sale creation and verification are a few
// requests and stay on net/http (package client).
//
// HTTP/1.1 keep-alive with at most Connections connections: each worker
// has one request in flight at most, so connections are reused and
// Connections bounds them.
func newHostClient(cfg Config) *fasthttp.HostClient {
	u, _ := url.Parse(cfg.Target) // prepare checked it
	isTLS := u.Scheme == "https"
	return &fasthttp.HostClient{
		Addr:          fasthttp.AddMissingPort(u.Host, isTLS),
		IsTLS:         isTLS,
		DialDualStack: true, // as net/http: an IPv6 target such as [::1] works
		// No User-Agent, as wrk: a header fewer for the server to parse.
		NoDefaultUserAgentHeader: true,
		MaxConns:                 cfg.Connections,
		// A worker whose connection was just closed may find the slot not
		// yet freed: wait for it rather than fail at once.
		MaxConnWaitTimeout: cfg.Timeout,
		// Most recently used first, as net/http: a slow phase keeps few
		// connections busy and lets the others idle out.
		ConnPoolStrategy: fasthttp.LIFO,
		// A keep-alive connection the server closed while it was idle
		// fails the next request before any answer: that request is resent
		// once, as net/http does for requests with an Idempotency-Key (a
		// resend with the same key is answered as the first). No other
		// failure is resent.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                resendUnanswered,
		// An answer with a longer body is recorded without its body (as
		// net/http's LimitReader truncated it before).
		MaxResponseBodySize: maxBody,
	}
}

// resendUnanswered is the HostClient's RetryIfErr: resend when the
// connection closed before the first byte of the answer (fasthttp reports
// that as io.EOF), and within the request's original timeout.
func resendUnanswered(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	return false, err == io.EOF
}

// runner is one run's shared state.
type runner struct {
	cfg Config
	// hc sends the purchases. It takes no context: requests in flight
	// outlive the run (they finish within Timeout), as cutting them would
	// lose answers, and 201s with them.
	hc       *fasthttp.HostClient
	url      string
	crowd    crowd
	rec      *recorder
	ctx      context.Context // done when the run is over (Duration, caller)
	deadline time.Time       // zero: no Duration
	idle     atomic.Int64    // open loop: workers waiting for a job
}

// closedLoop runs Connections workers, each sending the next buyer's
// purchase as soon as its previous one is answered.
func (r *runner) closedLoop(workers []*worker) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for r.ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(r.cfg.Users) {
					return
				}
				now := time.Now()
				r.rec.offer(now)
				w.serve(int(i), now, false)
			}
		})
	}
	wg.Wait()
}

// job is one buyer's purchase, due at a time set by the shape.
type job struct {
	buyer int
	due   time.Time
	// queued: every connection was busy when the job was due, so it
	// waits for one (attempt.queued).
	queued bool
}

// openLoop sends purchases at the times Schedule gives, whatever the
// server's speed. A dispatcher hands due jobs to the workers through a
// bounded queue; when every worker is busy, jobs wait there (and then the
// dispatcher) but keep their intended time, so the wait shows in latency.
func (r *runner) openLoop(workers []*worker) {
	jobs := make(chan job, len(workers))
	var wg sync.WaitGroup
	r.idle.Store(int64(len(workers)))
	for _, w := range workers {
		wg.Go(func() {
			for j := range jobs {
				if r.ctx.Err() != nil {
					continue // the run is over: drop what was not sent
				}
				r.idle.Add(-1)
				w.serve(j.buyer, j.due, j.queued)
				r.idle.Add(1)
			}
		})
	}
	r.dispatch(jobs)
	close(jobs)
	wg.Wait()
}

func (r *runner) dispatch(jobs chan<- job) {
	start := r.rec.start
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	i := 0
	for off := range Schedule(r.cfg.Shape) {
		if i >= r.cfg.Users {
			return // the crowd is exhausted
		}
		due := start.Add(off)
		if !sleepUntil(r.ctx, timer, due) {
			return
		}
		r.rec.offer(due)
		// The job waits for a connection unless more workers are free
		// than there are jobs ahead of it. A free worker slow to take a
		// job is the scheduler's jitter, not a busy connection.
		queued := r.idle.Load() <= int64(len(jobs))
		select {
		case jobs <- job{buyer: i, due: due, queued: queued}:
		case <-r.ctx.Done():
			return
		}
		i++
	}
}

// sleepUntil waits until at; it reports false if the run ended first.
func sleepUntil(ctx context.Context, t *time.Timer, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// showProgress writes the figures every second until done, then the
// final figures, unless the last line already shows them (a run that ends
// just after a tick, as every --duration run does, printed the same line
// twice). On a terminal it redraws one line (\r); piped or logged, where
// a \r would pile every update onto one line, it prints a line a second.
func (r *runner) showProgress(out io.Writer, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	redraw := isTerminal(out)
	width := 0
	var last int64
	lastAt := r.rec.start
	var shown *progress // the figures of the last line written
	line := func(now time.Time, rate float64, p progress) {
		shown = &p
		s := fmt.Sprintf("%3ds  sent %d  answered %d  %.0f req/s  reserved %d  replayed %d  sold_out %d  errors %d  p99 %.1f ms",
			int(now.Sub(r.rec.start)/time.Second), p.sent, p.completed, rate, p.reserved, p.replayed, p.soldOut, p.failed, p.p99)
		if !redraw {
			_, _ = io.WriteString(out, s+"\n")
			return
		}
		// Pad over the tail of a longer previous line.
		if n := len(s); n < width {
			s += strings.Repeat(" ", width-n)
		} else {
			width = n
		}
		_, _ = io.WriteString(out, "\r"+s)
	}
	for {
		select {
		case now := <-t.C:
			p := r.rec.progress()
			rate := 0.0
			if d := now.Sub(lastAt).Seconds(); d > 0 {
				rate = float64(p.completed-last) / d
			}
			last, lastAt = p.completed, now
			line(now, rate, p)
		case <-done:
			now := time.Now()
			p := r.rec.progress()
			if shown == nil || *shown != p {
				rate := 0.0
				if d := now.Sub(r.rec.start).Seconds(); d > 0 {
					rate = float64(p.completed) / d // the final line shows the run's average
				}
				line(now, rate, p)
			}
			if redraw {
				_, _ = io.WriteString(out, "\n")
			}
			return
		}
	}
}
