package http

import (
	"net"
	"net/netip"
	"testing"
)

// TestConnLimitKey: what a connection counts against: IPv6 by its /64,
// IPv4-mapped addresses as IPv4, trusted proxies exempt.
func TestConnLimitKey(t *testing.T) {
	l := LimitConns(nil, ConnLimits{Max: 10, PerAddr: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, tc := range []struct {
		remote, key string
		exempt      bool
	}{
		{"192.0.2.1:4000", "192.0.2.1", false},
		{"[::ffff:192.0.2.1]:4000", "192.0.2.1", false},
		{"[2001:db8:1:2:aaaa::1]:4000", "2001:db8:1:2::", false},
		{"[2001:db8:1:2:bbbb::9]:4000", "2001:db8:1:2::", false},
		{"[2001:db8:1:3::1]:4000", "2001:db8:1:3::", false},
		{"10.1.2.3:4000", "10.1.2.3", true},
	} {
		key, exempt := l.key(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tc.remote)))
		if key.String() != tc.key || exempt != tc.exempt {
			t.Errorf("%s: key %s exempt %v, want %s %v", tc.remote, key, exempt, tc.key, tc.exempt)
		}
	}
}
