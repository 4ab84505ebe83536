package admission

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// maxHops bounds how many X-Forwarded-For entries ClientIP walks. Real
// proxy chains are a handful of hops; the bound caps the work a forged
// header listing thousands of trusted addresses can cause.
const maxHops = 32

// ClientIP returns the address of the client that sent r, for keying rate
// limits. It is the direct peer (r.RemoteAddr) unless that peer is in one
// of the trusted proxy prefixes; then X-Forwarded-For is read from the
// right, skipping hops that are trusted proxies too, and the first
// untrusted address is the client. Only the right end of the header can be
// believed: each trusted proxy appends the address it received the request
// from, while everything to the left of that came from the client and may
// be forged.
//
// If every listed hop is trusted, the leftmost is returned (a request from
// inside the trusted network). A header that cannot be parsed, or is
// longer than any real chain, is ignored and the peer is returned: the
// trusted proxy that sent it is then the best address known. Addresses are
// returned without zone, and IPv4-mapped IPv6 addresses as IPv4, so one
// client has one key. The result is the zero Addr only if RemoteAddr is
// not an address (e.g. a Unix socket).
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHop(r.RemoteAddr)
	if !peer.IsValid() || !contains(trusted, peer) {
		return peer
	}
	// Indexing the map with the canonical name avoids Header.Values'
	// canonicalisation; several header lines form one list, in order.
	values := r.Header["X-Forwarded-For"]
	var leftmost netip.Addr
	hops := 0
	for i := len(values) - 1; i >= 0; i-- {
		list := values[i]
		for list != "" {
			elem := list
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				elem, list = list[j+1:], list[:j]
			} else {
				list = ""
			}
			elem = strings.TrimSpace(elem)
			if elem == "" {
				continue // HTTP lists may hold empty elements
			}
			if hops++; hops > maxHops {
				return peer
			}
			a := parseHop(elem)
			if !a.IsValid() {
				return peer
			}
			if !contains(trusted, a) {
				return a
			}
			leftmost = a
		}
	}
	if leftmost.IsValid() {
		return leftmost
	}
	return peer
}

// parseHop reads an address as RemoteAddr or a forwarding header gives
// it: "1.2.3.4", "1.2.3.4:5678", "::1", "[::1]:5678" or "[::1]". The
// parser is picked by shape rather than by trying one and then the other,
// since a failed parse allocates its error and valid input should cost
// nothing.
func parseHop(s string) netip.Addr {
	var a netip.Addr
	var err error
	switch {
	case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
		a, err = netip.ParseAddr(s[1 : len(s)-1])
	case strings.HasPrefix(s, "["), strings.Count(s, ":") == 1:
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
	default:
		a, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Addr{}
	}
	// A zoned address matches no prefix (netip.Prefix.Contains), and the
	// zone names an interface of the sender, not part of the client.
	return a.WithZone("").Unmap()
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses a comma-separated list of trusted proxies, as given
// in a flag: CIDR prefixes ("10.0.0.0/8", "fd00::/8") or bare addresses,
// taken as /32 or /128. Host bits of a prefix are cleared ("10.1.2.3/8" is
// 10.0.0.0/8), IPv4-mapped IPv6 addresses are taken as IPv4, matching
// ClientIP, and empty items are skipped. An empty list is nil: trust no
// proxy.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix: %w", item, err)
			}
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix: %w", item, err)
		}
		if a.Zone() != "" {
			return nil, fmt.Errorf("trusted proxy %q: an address with a zone cannot be matched; drop the %%zone", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
