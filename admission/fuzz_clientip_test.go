package admission

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP: behind a trusted proxy, X-Forwarded-For is what a client
// wrote, with the address the proxy received it from appended by the
// proxy (to the last line, as nginx's $proxy_add_x_forwarded_for does, or
// as a line of its own). Whatever the client wrote, ClientIP is that
// address: a client cannot choose the key its rate limits are counted
// under. And for any header from a trusted peer, the answer is the peer
// or one of the listed hops, and every hop listed right of it is trusted:
// nothing a client wrote left of an untrusted hop is ever believed.
func FuzzClientIP(f *testing.F) {
	for _, s := range []struct {
		xff    string
		client uint8
		line   bool
	}{
		{"", 0, false}, {"1.1.1.1", 1, false}, {"10.6.6.6, 198.51.100.1", 2, true}, {"garbage,", 3, false},
		{strings.Repeat("10.0.0.1,", 40), 4, false}, {"[fd00::1]:80, ::ffff:10.0.0.9", 0, true}, {"1.1.1.1\n10.9.9.9", 1, false},
		{"fe80::1%eth0, 1.2.3.4:", 2, false}, {" , ,", 3, true},
	} {
		f.Add(s.xff, s.client, s.line)
	}
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.5/32"),
		netip.MustParsePrefix("fd00::/8"),
	}
	// What the proxy appends (the client's address as it received it) and
	// the key it must come out as.
	clients := []struct{ hop, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"2001:db8::7", "2001:db8::7"},
		{"[2001:db8::7]:443", "2001:db8::7"},
		{"198.51.100.7:5000", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
	}
	f.Fuzz(func(t *testing.T, xff string, client uint8, line bool) {
		var lines []string
		for l := range strings.SplitSeq(xff, "\n") {
			// As net/http's server reads a header line: no control
			// character but tab, and no spaces around the value.
			if strings.ContainsFunc(l, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
				return
			}
			lines = append(lines, strings.Trim(l, " \t"))
		}
		r := &http.Request{RemoteAddr: "10.1.2.3:443", Header: http.Header{"X-Forwarded-For": lines}}

		// Any header from a trusted peer.
		got := ClientIP(r, trusted)
		if got != netip.MustParseAddr("10.1.2.3") {
			var hops []string
			for _, l := range lines {
				for h := range strings.SplitSeq(l, ",") {
					if h = strings.TrimSpace(h); h != "" {
						hops = append(hops, h)
					}
				}
			}
			i := len(hops) - 1
			for ; i >= 0 && refHop(hops[i]) != got; i-- {
				if a := refHop(hops[i]); !a.IsValid() || !contains(trusted, a) {
					t.Fatalf("%q: %v, left of the untrusted or unreadable hop %q", lines, got, hops[i])
				}
			}
			if i < 0 {
				t.Fatalf("%q: %v is neither the peer nor a hop", lines, got)
			}
		}

		// The same header, with the proxy's hop appended.
		c := clients[int(client)%len(clients)]
		sent := append([]string(nil), lines...)
		if line || len(sent) == 0 {
			sent = append(sent, c.hop)
		} else if last := sent[len(sent)-1]; last == "" {
			sent[len(sent)-1] = c.hop
		} else {
			sent[len(sent)-1] = last + ", " + c.hop
		}
		r.Header["X-Forwarded-For"] = sent
		if got := ClientIP(r, trusted); got != netip.MustParseAddr(c.want) {
			t.Fatalf("client wrote %q, proxy sent %q: key %v, want %s", lines, sent, got, c.want)
		}
	})
}

// refHop reads a hop as a proxy writes it, independently of parseHop: an
// address, an address and port, or a bracketed IPv6 address; unzoned and
// unmapped. The zero Addr for anything else.
func refHop(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap()
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.WithZone("").Unmap()
		}
	}
	return netip.Addr{}
}
