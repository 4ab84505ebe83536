package deploy_test

import (
	"maps"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeEdgeFindsRecreatedNodes: nginx resolves the names in an
// upstream block once, when it starts or reloads (re-resolving them needs
// `server … resolve`, nginx 1.27.3 and later, not Debian's 1.22 that the
// edge test runs; a variable in proxy_pass re-resolves but loses the
// upstream's keep-alive pool, least_conn and max_fails). A node container
// that `docker compose up` recreates (a new image, a changed setting) may
// come back on another address: the edge then sends that node's share of
// the buyers to the old one, 502, until the edge restarts. Each node the
// edge names must keep its address: fixed on the project's network, and
// outside the range Docker hands out to the other containers, so that
// none of them can hold it when the node comes back.
func TestComposeEdgeFindsRecreatedNodes(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Networks map[string]struct {
				IPv4 string `yaml:"ipv4_address"`
			}
		}
		Networks map[string]struct {
			IPAM struct {
				Config []struct {
					Subnet  string
					IPRange string `yaml:"ip_range"`
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(read(t, "docker-compose.yml")), &c); err != nil {
		t.Fatal(err)
	}
	var subnet, dynamic netip.Prefix
	if cfg := c.Networks["default"].IPAM.Config; len(cfg) == 1 {
		subnet, _ = netip.ParsePrefix(cfg[0].Subnet)
		dynamic, _ = netip.ParsePrefix(cfg[0].IPRange)
	}
	if !subnet.IsValid() {
		t.Fatal("the default network has no fixed subnet")
	}
	hosts := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*server ([A-Za-z0-9.-]+):\d+\b`).FindAllStringSubmatch(read(t, filepath.Join("nginx", "nginx.conf")), -1) {
		hosts[m[1]] = true
	}
	if len(hosts) < 2 {
		t.Fatalf("nginx.conf's upstreams name %v, want the nodes", hosts)
	}
	seen := map[netip.Addr]string{}
	fixed := []string{"edge"}
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		fixed = append(fixed, h)
	}
	for _, svc := range fixed {
		s, ok := c.Services[svc]
		if !ok {
			t.Errorf("nginx.conf names %s, which is no service of docker-compose.yml", svc)
			continue
		}
		addr, err := netip.ParseAddr(s.Networks["default"].IPv4)
		if err != nil {
			t.Errorf("%s has no fixed address on the default network: the edge resolves it once, at its start, "+
				"and a recreated %s on another address gets 502 through the edge until the edge restarts", svc, svc)
			continue
		}
		if !subnet.Contains(addr) {
			t.Errorf("%s's address %s is not in the default network's subnet %v", svc, addr, subnet)
		}
		if !dynamic.IsValid() || dynamic.Contains(addr) || !subnet.Contains(dynamic.Addr()) {
			t.Errorf("%s's address %s is not outside the default network's ip_range (%q), within its subnet: "+
				"Docker may give it to another container while %s is down, and %s then cannot start", svc, addr, dynamic, svc, svc)
		}
		if other, dup := seen[addr]; dup {
			t.Errorf("%s and %s share the address %s", svc, other, addr)
		}
		seen[addr] = svc
	}
}
