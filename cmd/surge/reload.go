package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
)

// liveKeys are the settings SIGHUP applies while the node serves
// (docs/configuration.md); any other key that changed is logged as
// needing a restart, and keeps its running value.
var liveKeys = []string{
	"log-level", "log-format", "access-log", "trace-trust-parent", "drain-delay", "shutdown-timeout",
	"rate-limit-ip", "rate-limit-ip-burst", "rate-limit-buyer", "rate-limit-buyer-burst",
	"rate-limit-sale", "rate-limit-sale-burst", "shed", "trusted-proxies",
	"admin-token", "admin-token-file", "jwt-secret", "jwt-secret-file",
	"jwt-previous-secret", "jwt-previous-secret-file", "jwks-file",
	"jwt-issuer", "jwt-audience", "insecure-user-header",
	"waiting-room-max-entries", "waiting-room-streams", "waiting-room-streams-per-buyer",
	"waiting-room-streams-per-address",
}

// settings is c's value of every flag, as text: register binds a flag
// set to a copy of c, whose defaults are then c's values.
func (c serveConfig) settings() map[string]string {
	fs := newFlagSet("serve", "", io.Discard)
	c.register(fs)
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

// remoteReloadTimeout bounds the fetch of --jwks-url's set on SIGHUP.
const remoteReloadTimeout = 10 * time.Second

// config is the configuration in force.
func (s *server) config() *serveConfig { return s.cfg.Load() }

// reload re-reads the configuration as the start read it (defaults, the
// file, SURGE_* variables, the same command line) and applies what can
// change live. A file that does not load or validate changes nothing.
// Each part of the node reads its settings through an atomic pointer, so
// a reload neither drops nor delays a request: the ones in flight finish
// with the old settings.
func (s *server) reload(args []string) {
	old := s.config()
	if old.configFile == "" {
		s.log.Info("SIGHUP: no config file; nothing to reload (settings from flags and SURGE_* variables are fixed; start with --config FILE to reload)")
		return
	}
	l, err := loadServeConfig(args, io.Discard)
	if err == nil {
		l.warnShadowed(s.log)
		err = s.apply(old, l.c)
	}
	if err != nil {
		s.reloads.Reloaded(false, time.Now())
		s.log.Error("config reload refused; the running configuration stays", "file", old.configFile, "err", err)
		return
	}
	s.reloads.Reloaded(true, time.Now())
}

// apply makes nc, as loaded, the configuration in force for every live
// setting; the others keep their running values, and each of them that
// changed in the file is logged as ignored.
func (s *server) apply(old *serveConfig, nc serveConfig) error {
	loaded := s.loaded
	if loaded == nil {
		loaded = old
	}
	// What changed is judged against the last configuration loaded, not
	// the running one, whose start derived values of its own.
	before, after, running := loaded.settings(), nc.settings(), old.settings()
	// raw becomes the last configuration loaded: nc's live settings, and
	// the others as the start loaded them, which is what runs; so a
	// setting that needs a restart is reported on every reload while the
	// file differs from it, not on the first only.
	raw := nc
	rawFlags := newFlagSet("serve", "", io.Discard)
	raw.register(rawFlags)
	merged := &nc
	merged.handover = old.handover
	fs := newFlagSet("serve", "", io.Discard)
	merged.register(fs) // its defaults are nc's values: nothing changes here
	var changed, ignored []string
	for name, v := range after {
		if slices.Contains(commandLineOnly, name) {
			continue
		}
		if slices.Contains(liveKeys, name) {
			if v != before[name] {
				changed = append(changed, name)
			}
			continue
		}
		if v != before[name] {
			ignored = append(ignored, name)
		}
		_ = fs.Set(name, running[name]) // the running value, which was valid
		_ = rawFlags.Set(name, before[name])
	}
	if after["jwks-url"] != running["jwks-url"] {
		// The buyers' keys move between a JWKS file and a URL only with a
		// restart (the fetched set lives as long as the process): while a
		// changed jwks-url waits for one, jwks-file keeps its running value
		// too, so that a reload leaves neither no keys nor both sources.
		_ = fs.Set("jwks-file", running["jwks-file"])
		if i := slices.Index(changed, "jwks-file"); i >= 0 {
			changed = slices.Delete(changed, i, i+1)
			ignored = append(ignored, "jwks-file")
		}
	}
	handed := ""     // a token named by a source: the new process of an upgrade reads it there
	dropped := false // the file named the admin token, and names none now
	if merged.adminToken == "" {
		// Generated at start and printed once: a reload keeps it, and so
		// does an upgrade.
		merged.adminToken = old.adminToken
		handed = merged.adminToken
		if before["admin-token"] != "" {
			// No reload makes a token up, so the one a source named stays:
			// reported as changed, it read as revoked. Kept as loaded, it
			// is warned of on every reload while no source names one.
			dropped = true
			raw.adminToken = before["admin-token"]
			changed = slices.DeleteFunc(changed, func(k string) bool { return k == "admin-token" || k == "admin-token-file" })
		}
	}
	slices.Sort(changed)
	slices.Sort(ignored)
	// Everything that can fail is built before anything is swapped.
	buyer, err := merged.buyerAuth()
	if err != nil {
		return err
	}
	if s.remote != nil {
		// The fetched key set lives as long as the process (jwks-url
		// needs a restart); the reload fetches it again once applied
		// (refreshRemote).
		buyer.Remote = s.remote
	}
	lim, err := merged.limits()
	if err != nil {
		return err
	}
	if merged.rateIP == old.rateIP && merged.burstIP == old.burstIP {
		// The same limit keeps its buckets: a reload forgives no debt.
		lim.http.IP, lim.http.AdminIP = s.ipRate, s.adminIPRate
	}
	s.ipRate, s.adminIPRate = lim.http.IP, lim.http.AdminIP
	s.buyerRate.set(merged.rateBuyer, merged.burstBuyer, lim.buyer)
	s.saleRate.set(merged.rateSale, merged.burstSale, lim.sale)
	s.shed.Store(merged.shed)
	if s.tracing != nil { // nil in a server built by hand (tests)
		s.tracing.SetTrustParent(merged.traceTrustParent)
	}
	if s.logs != nil { // nil when started in code (the demo, tests)
		s.logs.set(merged.logLevel, merged.logFormat)
	}
	s.api.Apply(merged.apiConfig(buyer, lim.http, s.room))
	for _, r := range s.requests {
		opt := surgehttp.RequestOptions{Logger: s.log, AccessLog: merged.accessLog}
		if r.proxies {
			opt.TrustedProxies = lim.http.TrustedProxies
		}
		r.h.Apply(opt)
	}
	for _, ln := range []*surgehttp.ConnLimiter{s.conns.Load(), s.adminConns, s.debugConns} {
		if ln != nil {
			ln.SetExempt(lim.http.TrustedProxies)
		}
	}
	if q, ok := s.queues.(interface{ SetMaxEntries(int) }); ok {
		q.SetMaxEntries(merged.roomMaxEntries)
	}
	s.cfg.Store(merged)
	merged.handover.handToken(handed)
	s.loaded = &raw
	for _, name := range ignored {
		s.log.Warn("config reload: this setting changed but needs a restart; ignored until then", "key", name)
	}
	if dropped {
		s.log.Warn("config reload: no setting names an admin token any more; the token in force stays, still accepted (only a start generates one): to revoke it, name a new one and reload",
			"key", "admin-token")
	}
	s.log.Info("config reloaded", "file", merged.configFile, "changed", changed)
	merged.warnBuyerAuth(s.log)
	s.refreshRemote()
	return nil
}

// refreshRemote fetches the --jwks-url set again, as a reload asks, in
// the background: the key server's answer is the buyer keys' business
// alone. Waited for, it held the signal loop (a SIGTERM, an upgrade's
// handover) for up to remoteReloadTimeout, and a key server that failed
// refused the whole reload, an admin token's rotation with it. A fetch
// that fails leaves the keys in force, as a failed scheduled refresh does.
func (s *server) refreshRemote() {
	if s.remote == nil {
		return
	}
	bg := s.watchCtx
	if bg == nil {
		bg = context.Background()
	}
	s.watched.Go(func() {
		ctx, cancel := context.WithTimeout(bg, remoteReloadTimeout)
		defer cancel()
		if err := s.remote.Refresh(ctx); err != nil {
			s.log.Warn("config reload: fetching the --jwks-url key set again failed; the keys in force stay", "err", err)
			return
		}
		s.log.Info("config reload: the --jwks-url key set was fetched again")
	})
}

// rateSwitch is a rate limit SIGHUP can change: the engine holds the
// switch for good, the switch holds the limiter in force. Only the
// purchases that reach the slow path read it (one atomic load), never the
// sold-out fast path.
type rateSwitch struct {
	cur    atomic.Pointer[rateLimit]
	shared func(name string, perSecond float64, burst int) admission.SharedLimit // nil: alone
	name   string
	log    *slog.Logger
}

// rateLimit is one setting of a rateSwitch.
type rateLimit struct {
	perSecond float64
	burst     int
	lim       engine.RateLimiter     // nil: off
	dist      *admission.Distributed // cluster mode: flushes to Redis
}

// Allow implements engine.RateLimiter.
func (r *rateSwitch) Allow(key string, now time.Time) (bool, time.Duration) {
	l := r.cur.Load()
	if l.lim == nil {
		return true, 0
	}
	return l.lim.Allow(key, now)
}

// set installs the limit of perSecond and burst, local its node's
// buckets (nil: off). An unchanged setting keeps the limiter in force,
// buckets and debts included; a changed one starts with full buckets.
func (r *rateSwitch) set(perSecond float64, burst int, local *admission.Keyed) {
	old := r.cur.Load()
	if old != nil && old.perSecond == perSecond && old.burst == burst {
		return
	}
	l := &rateLimit{perSecond: perSecond, burst: burst}
	switch {
	case local == nil:
	case r.shared != nil:
		// In cluster mode the limit holds across nodes: each node's
		// bucket pre-filters, the shared GCRA state in Redis decides.
		l.dist = admission.NewDistributed(local, r.shared(r.name, perSecond, burst), 0, r.log)
		l.lim = l.dist
	default:
		l.lim = local
	}
	r.cur.Store(l)
	if old != nil {
		_ = old.close(context.Background())
	}
}

// close stops the limit in force, within ctx (a stopping node's shutdown
// timeout: a stalled Redis must not hold the stop past it).
func (r *rateSwitch) close(ctx context.Context) {
	if l := r.cur.Load(); l != nil {
		if err := l.close(ctx); err != nil {
			r.log.Warn("stopping without waiting for a shared rate limit's last report (the shutdown timeout passed)",
				"limit", r.name, "err", err)
		}
	}
}

func (l *rateLimit) close(ctx context.Context) error {
	if l.dist == nil {
		return nil
	}
	return l.dist.Shutdown(ctx) // sends what it counted since its last flush
}

// shedSwitch turns a sale's load shedding (admission.CoDel) on and off
// while it runs. The CoDel sees every batch either way, so turned on it
// judges from the inbox's recent past, not from nothing.
type shedSwitch struct {
	q  *admission.CoDel
	on *atomic.Bool
}

func (m shedSwitch) Admit(waiting int) bool { return !m.on.Load() || m.q.Admit(waiting) }

func (m shedSwitch) Begin(now time.Time) time.Time {
	cutoff := m.q.Begin(now)
	if !m.on.Load() {
		return time.Time{} // nothing entered before: nothing is shed
	}
	return cutoff
}

func (m shedSwitch) Taken(now time.Time, shed, left int) { m.q.Taken(now, shed, left) }
