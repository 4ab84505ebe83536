package admission

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.5/32"),
		netip.MustParsePrefix("fd00::/8"),
	}
	tests := []struct {
		name    string
		remote  string
		xff     []string // header lines; nil for none
		trusted []netip.Prefix
		want    string // "" for the zero Addr
	}{
		{name: "no XFF", remote: "203.0.113.9:51234", want: "203.0.113.9"},
		{name: "no XFF from a trusted proxy", remote: "10.1.2.3:443", want: "10.1.2.3"},
		{name: "XFF from an untrusted peer is ignored", remote: "203.0.113.9:51234", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "XFF ignored when nothing is trusted", remote: "10.1.2.3:443", xff: []string{"198.51.100.1"}, trusted: []netip.Prefix{}, want: "10.1.2.3"},
		{name: "one trusted proxy", remote: "10.1.2.3:443", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "chain of trusted hops", remote: "10.1.2.3:443", xff: []string{"198.51.100.1, 192.168.1.5, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "forged left part is skipped", remote: "10.1.2.3:443", xff: []string{"1.1.1.1, 2.2.2.2, 198.51.100.1, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "forged trusted address left of the client", remote: "10.1.2.3:443", xff: []string{"10.6.6.6, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "several header lines form one list", remote: "10.1.2.3:443", xff: []string{"1.1.1.1, 198.51.100.1", "10.9.9.9"}, want: "198.51.100.1"},
		{name: "all hops trusted: the leftmost", remote: "10.1.2.3:443", xff: []string{"10.7.7.7, 10.8.8.8"}, want: "10.7.7.7"},
		{name: "spaces and empty elements", remote: "10.1.2.3:443", xff: []string{" ,198.51.100.1 ,, 10.9.9.9 , "}, want: "198.51.100.1"},
		{name: "hop with a port", remote: "10.1.2.3:443", xff: []string{"198.51.100.1:4711"}, want: "198.51.100.1"},
		{name: "malformed XFF falls back to the peer", remote: "10.1.2.3:443", xff: []string{"not-an-ip"}, want: "10.1.2.3"},
		{name: "malformed hop behind the client is never reached", remote: "10.1.2.3:443", xff: []string{"garbage, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "malformed hop among trusted ones", remote: "10.1.2.3:443", xff: []string{"198.51.100.1, unknown, 10.9.9.9"}, want: "10.1.2.3"},
		{name: "empty XFF", remote: "10.1.2.3:443", xff: []string{""}, want: "10.1.2.3"},
		{name: "obfuscated Forwarded-style token", remote: "10.1.2.3:443", xff: []string{"_hidden"}, want: "10.1.2.3"},
		{name: "IPv6 peer", remote: "[2001:db8::7]:8080", want: "2001:db8::7"},
		{name: "IPv6 trusted proxy, IPv6 client", remote: "[fd00::1]:443", xff: []string{"2001:db8::42, fd00::2"}, want: "2001:db8::42"},
		{name: "IPv6 hop in brackets", remote: "[fd00::1]:443", xff: []string{"[2001:db8::42]"}, want: "2001:db8::42"},
		{name: "IPv6 hop with a port", remote: "[fd00::1]:443", xff: []string{"[2001:db8::42]:1234"}, want: "2001:db8::42"},
		{name: "IPv6 peer with a zone", remote: "[fe80::1%eth0]:443", want: "fe80::1"},
		{name: "IPv4-mapped peer is IPv4 and matches IPv4 prefixes", remote: "[::ffff:10.1.2.3]:443", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "IPv4-mapped client is IPv4", remote: "10.1.2.3:443", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "peer without a port", remote: "203.0.113.9", want: "203.0.113.9"},
		{name: "peer not an address", remote: "@", want: ""},
		{name: "peer empty", remote: "", xff: []string{"198.51.100.1"}, want: ""},
		{name: "chain longer than any real one", remote: "10.1.2.3:443", xff: []string{"198.51.100.1" + strings.Repeat(", 10.0.0.1", 40)}, want: "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/sales/s/purchases", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			tr := trusted
			if tt.trusted != nil {
				tr = tt.trusted
			}
			got := ClientIP(r, tr)
			var want netip.Addr
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Fatalf("ClientIP = %v, want %v", got, want)
			}
		})
	}
}

func TestClientIPNoAllocs(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.RemoteAddr = "10.1.2.3:443"
	r.Header.Set("X-Forwarded-For", "1.1.1.1, 198.51.100.1, 10.9.9.9")
	if n := testing.AllocsPerRun(1000, func() { ClientIP(r, trusted) }); n != 0 {
		t.Errorf("ClientIP: %v allocations per call", n)
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: " , ", want: nil},
		{in: "10.0.0.0/8", want: []string{"10.0.0.0/8"}},
		{in: "10.0.0.1", want: []string{"10.0.0.1/32"}},
		{in: "::1", want: []string{"::1/128"}},
		{in: "10.0.0.0/8, 172.16.0.0/12 ,fd00::/8,192.168.1.5", want: []string{"10.0.0.0/8", "172.16.0.0/12", "fd00::/8", "192.168.1.5/32"}},
		{in: "10.1.2.3/8", want: []string{"10.0.0.0/8"}},
		{in: "::ffff:10.0.0.1", want: []string{"10.0.0.1/32"}},
		{in: "::ffff:10.0.0.0/104", want: []string{"10.0.0.0/8"}},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "10.0.0", wantErr: true},
		{in: "proxy.internal", wantErr: true},
		{in: "10.0.0.0/8,,nope", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefixes(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePrefixes(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefixes(%q): %v", tt.in, err)
			}
			var want []netip.Prefix
			for _, w := range tt.want {
				want = append(want, netip.MustParsePrefix(w))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ParsePrefixes(%q) = %v, want %v", tt.in, got, want)
			}
		})
	}
}
