package http

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
)

// Protection is the admission control in front of the handlers. A nil
// limiter is off. The per-buyer and per-sale rates and the load shedder
// live in the engine, where they can spare the sold-out fast path.
type Protection struct {
	// IP limits every API request per client address (X-Forwarded-For is
	// believed only from TrustedProxies); health checks are exempt.
	IP *admission.Keyed
	// AdminIP is that limit on the operators' own listener (Server.Admin,
	// --admin-addr), in buckets of its own: buyers sharing an address
	// with the operators (one NAT, one office) must not spend their
	// tokens there, nor the operators' calls the buyers'. nil: none there.
	AdminIP        *admission.Keyed
	TrustedProxies []netip.Prefix
}

// MaxRetryAfter caps Retry-After (and the gRPC API's RetryInfo): a bucket
// that never refills reports an infinite wait, which no client can hold in
// a 32-bit count of seconds, and a client should still come back
// eventually.
const MaxRetryAfter = time.Hour

// RetryAfter is the Retry-After value the API answers a wait d with: d
// rounded up to whole seconds, at least one, at most MaxRetryAfter. The
// gRPC API's Connect protocol answers 429 and 503 with it too.
func RetryAfter(d time.Duration) string {
	d = min(d, MaxRetryAfter)
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// allowIP applies the per-address limit; it answers 429 itself (a mounted
// gRPC call in its own protocol: Server.refuse).
func (s *Server) allowIP(w http.ResponseWriter, r *http.Request) bool {
	prot := s.protection()
	lim := prot.IP
	if s.adminListener {
		lim = prot.AdminIP
	}
	if lim == nil {
		return true
	}
	ok, wait := lim.AllowAddr(admission.ClientIP(r, prot.TrustedProxies), time.Now())
	if !ok {
		s.refuse(w, r, &surge.Error{Code: surge.CodeRateLimited,
			Message: "too many requests from this address; retry after the time in Retry-After", RetryAfter: wait})
	}
	return ok
}
