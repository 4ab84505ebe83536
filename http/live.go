package http

import (
	"net/http"
	"sync/atomic"
)

// live is the part of Config that Apply changes while the server runs:
// one immutable snapshot, swapped whole, so a request sees the old
// settings or the new ones, never a mix, and reads them without a lock.
type live struct {
	auth   *authenticator
	public *authenticator // auth with no admin: the Public listener's
	prot   Protection
}

// newLive builds the settings of cfg. prev, when not nil, is the buyer
// keys in force: kept, cache and all, if cfg's verify exactly as they do.
func newLive(cfg Config, checks *tokenChecks, prev *buyerKeys) *live {
	return newLiveOptions(authOptions{adminToken: cfg.AdminToken, userHeader: cfg.InsecureUserHeader, jwtSecret: cfg.JWTSecret,
		jwtPreviousSecret: cfg.JWTPreviousSecret, buyer: cfg.BuyerAuth,
		checks: checks, prevKeys: prev}, cfg.Protection)
}

func newLiveOptions(o authOptions, prot Protection) *live {
	auth := newAuthenticatorOptions(o)
	public := *auth // shares auth's buyer keys
	public.noAdmin = true
	return &live{auth: auth, public: &public, prot: prot}
}

// liveAuth is the authenticator in force: the handlers call it as they
// would the authenticator itself.
type liveAuth struct {
	noAdmin bool // the Public listener's: no token is admin
	cur     *atomic.Pointer[live]
}

func (a *liveAuth) get() *authenticator {
	l := a.cur.Load()
	if a.noAdmin {
		return l.public
	}
	return l.auth
}

func (a *liveAuth) admin(r *http.Request) error { return a.get().admin(r) }

func (a *liveAuth) identify(r *http.Request) (identity, error) { return a.get().identify(r) }

func (a *liveAuth) buyer(r *http.Request) (string, error) { return a.get().buyer(r) }

// Apply changes what of cfg can change while the server runs: the admin
// token (the dashboard's too), the buyer tokens' settings (JWTSecret,
// BuyerAuth, InsecureUserHeader), Protection (the per-address limit and
// the trusted proxies) and the queue-stream bounds. The rest of cfg is
// ignored: it is fixed at New. Buyer keys that did not change keep their
// cache of verified tokens; changed ones start with an empty one. Requests in flight finish with the
// settings they started with; the next ones use the new. A lowered
// stream bound closes no open stream.
func (s *Server) Apply(cfg Config) {
	s.live.Store(newLive(cfg, s.checks, s.live.Load().auth.buyers))
	s.queues.setBounds(cfg)
	if s.dash != nil {
		s.dash.SetAdminToken(cfg.AdminToken)
	}
}

// protection is the admission control in force.
func (s *Server) protection() Protection { return s.live.Load().prot }
