package main

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/time/rate"

	"github.com/surgehq/surge/admission"
	surgehttp "github.com/surgehq/surge/http"
)

// Bounds of the per-address and per-buyer limiters: beyond this many
// clients the least recently seen lose their bucket, so memory stays
// bounded whatever the crowd.
const (
	maxLimiterKeys = 1_000_000
	limiterIdle    = 10 * time.Minute
	// maxAdminLimiterKeys bounds the admin listener's per-address
	// buckets: its clients are the operators' few.
	maxAdminLimiterKeys = 10_000
)

// limits are the rate limiters the flags ask for; nil ones are off.
type limits struct {
	http        surgehttp.Protection
	buyer, sale *admission.Keyed
}

// limits builds the rate limiters from the flags.
func (c serveConfig) limits() (limits, error) {
	var l limits
	proxies, err := admission.ParsePrefixes(c.trustedProxies)
	if err != nil {
		return l, fmt.Errorf("--trusted-proxies: %w", err)
	}
	l.http.TrustedProxies = proxies
	if l.http.IP, err = keyed("ip", c.rateIP, c.burstIP, maxLimiterKeys); err != nil {
		return l, err
	}
	// The admin listener's own buckets at the same rate: its callers and
	// the public ones may share an address (surgehttp.Protection.AdminIP).
	if l.http.AdminIP, err = keyed("ip", c.rateIP, c.burstIP, maxAdminLimiterKeys); err != nil {
		return l, err
	}
	if l.buyer, err = keyed("buyer", c.rateBuyer, c.burstBuyer, maxLimiterKeys); err != nil {
		return l, err
	}
	// Sales are few; their buckets can stay longer.
	l.sale, err = keyed("sale", c.rateSale, c.burstSale, 100_000)
	return l, err
}

// Connection caps by default. Each open connection costs a file
// descriptor and, idle, some 10-20 KB (goroutine, buffers): beyond
// 32768 memory rather than descriptors runs out first. A quarter of the
// file descriptors is left for the database, logs and the private
// listeners (privateConnLimits).
const (
	maxConnsCeiling      = 32768
	maxConnsPerIPCeiling = 1024
	fallbackMaxConns     = 4096 // when the open-file limit is unknown
)

// connLimits returns the API listener's connection caps: the flags, or
// defaults derived from the open-file limit.
func (c serveConfig) connLimits(trusted []netip.Prefix) surgehttp.ConnLimits {
	total := c.maxConns
	if total == 0 {
		total = fallbackMaxConns
		if n, ok := openFileLimit(); ok {
			total = int(min(n/4*3, maxConnsCeiling))
		}
		total = max(total, 1)
	}
	perIP := c.maxConnsPerIP
	if perIP == 0 {
		perIP = max(1, min(total/4, maxConnsPerIPCeiling))
	}
	return surgehttp.ConnLimits{Max: total, PerAddr: perIP, Exempt: trusted}
}

// Each private listener's connection caps (--admin-addr, --debug-addr):
// the operators' tools, Prometheus, a dashboard and pprof need few, and
// unbounded, one client holding connections there takes every file
// descriptor, the API listener's and the store's too. A sixteenth of the
// open-file limit each (at most 1,024), so that both and the API
// listener's three quarters leave an eighth for the rest.
const (
	maxPrivateConnsCeiling = 1024
	fallbackPrivateConns   = 256 // when the open-file limit is unknown
)

// privateConnLimits returns a private listener's connection caps: a
// quarter of the total per address, so that one client leaves room for
// the others; trusted proxies exempt, as on the API listener.
func privateConnLimits(trusted []netip.Prefix) surgehttp.ConnLimits {
	total := fallbackPrivateConns
	if n, ok := openFileLimit(); ok {
		total = max(1, int(min(n/16, maxPrivateConnsCeiling)))
	}
	return surgehttp.ConnLimits{Max: total, PerAddr: max(1, total/4), Exempt: trusted}
}

// keyed returns the limiter of one --rate-limit-NAME flag, nil when off.
func keyed(name string, perSecond float64, burst, maxKeys int) (*admission.Keyed, error) {
	// Each refusal names the one key at fault and its value: a reload
	// refused during a sale must say what to fix in the file.
	switch {
	case math.IsNaN(perSecond):
		return nil, fmt.Errorf("--rate-limit-%s NaN: want a number of requests per second (0: off)", name)
	case perSecond < 0:
		return nil, fmt.Errorf("--rate-limit-%s %v must not be negative (0: off)", name, perSecond)
	case burst < 0:
		// Never meaningful; taken while the limit was off, it refused the
		// reload that later turned the limit on.
		return nil, fmt.Errorf("--rate-limit-%s-burst %d must not be negative", name, burst)
	case perSecond > 0 && burst < 1:
		return nil, fmt.Errorf("--rate-limit-%s-burst %d must be at least 1 while --rate-limit-%s is on (%v per second)", name, burst, name, perSecond)
	case perSecond == 0:
		return nil, nil
	}
	return admission.NewKeyed(rate.Limit(perSecond), burst, maxKeys, limiterIdle), nil
}
