package deploy_test

import (
	"net/netip"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeTrustsOnlyTheEdge: a node believes X-Forwarded-For from the
// addresses SURGE_TRUSTED_PROXIES names, and its per-address limits count
// the address that header gives. In docker-compose.yml those must be the
// edge's alone, fixed on the project's network: a private range would
// also trust every other client on it (the host's bridge gateway, a
// neighbour on the LAN), and let each pick its own address.
func TestComposeTrustsOnlyTheEdge(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Environment map[string]string
			Networks    map[string]struct {
				IPv4 string `yaml:"ipv4_address"`
			}
		}
		Networks map[string]struct {
			IPAM struct {
				Config []struct{ Subnet string }
			}
		}
	}
	if err := yaml.Unmarshal([]byte(read(t, "docker-compose.yml")), &c); err != nil {
		t.Fatal(err)
	}
	edge := c.Services["edge"].Networks["default"].IPv4
	addr, err := netip.ParseAddr(edge)
	if err != nil {
		t.Fatalf("the edge has no fixed address on the default network (%q): the nodes cannot trust it alone", edge)
	}
	var subnet netip.Prefix
	if cfg := c.Networks["default"].IPAM.Config; len(cfg) == 1 {
		subnet, _ = netip.ParsePrefix(cfg[0].Subnet)
	}
	if !subnet.IsValid() || !subnet.Contains(addr) {
		t.Errorf("the edge's address %s is not in the default network's fixed subnet %v", addr, subnet)
	}
	for _, node := range []string{"surge-a", "surge-b"} {
		// Each node merges the x-surge-node anchor's environment.
		if trusted := c.Services[node].Environment["SURGE_TRUSTED_PROXIES"]; trusted != addr.String()+"/32" {
			t.Errorf("%s trusts X-Forwarded-For from %q; want the edge's %s/32 alone", node, trusted, addr)
		}
	}
}
