package deploy_test

import (
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestHelmServiceKeepsTheBuyersAddress: values.yaml says that without a
// proxy in front (trustedProxies empty) the TCP peer is the buyer, on a
// LoadBalancer Service with externalTrafficPolicy: Local, but the chart
// had no such value and rendered none, so Kubernetes' default, Cluster,
// applied: a node forwards a buyer's connection to a pod anywhere with the
// source rewritten to its own address, every pod counted the cluster's
// nodes as its buyers, and the whole drop shared a few addresses' limits
// (1,024 connections, 16 waiting-room streams, one --rate-limit-ip bucket
// each), 429 past them. A LoadBalancer or NodePort Service is Local unless
// asked otherwise; a ClusterIP one (the headless one among them) carries
// no policy, which Kubernetes refuses there.
func TestHelmServiceKeepsTheBuyersAddress(t *testing.T) {
	for _, mode := range []string{"embedded", "cluster"} {
		for _, tc := range []struct {
			name string
			args []string
			want string // the Service's externalTrafficPolicy, "" for none
		}{
			{"ClusterIP", nil, ""},
			{"LoadBalancer", []string{"--set", "service.type=LoadBalancer"}, "Local"},
			{"NodePort", []string{"--set", "service.type=NodePort"}, "Local"},
			{"LoadBalancer, Cluster asked", []string{"--set", "service.type=LoadBalancer", "--set", "service.externalTrafficPolicy=Cluster"}, "Cluster"},
			{"LoadBalancer, Kubernetes' default asked", []string{"--set", "service.type=LoadBalancer", "--set", "service.externalTrafficPolicy="}, ""},
		} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				out := renderChart(t, mode, tc.args...)
				services := renderedServices(t, out)
				main, ok := services["drop-surge"]
				if !ok {
					t.Fatalf("helm template %v: no Service drop-surge:\n%s", tc.args, out)
				}
				if main.Type == "" {
					main.Type = "ClusterIP"
				}
				if main.ExternalTrafficPolicy != tc.want {
					t.Errorf("helm template %v: the %s Service's externalTrafficPolicy is %q, want %q: with Cluster a node rewrites "+
						"each buyer's address to its own, and the pods' per-address limits count the nodes, not the buyers",
						tc.args, main.Type, main.ExternalTrafficPolicy, tc.want)
				}
				for name, s := range services {
					if (s.Type == "" || s.Type == "ClusterIP") && s.ExternalTrafficPolicy != "" {
						t.Errorf("helm template %v: the ClusterIP Service %s has externalTrafficPolicy %q, which Kubernetes refuses there",
							tc.args, name, s.ExternalTrafficPolicy)
					}
				}
			})
		}
	}

	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	chart := filepath.Join("helm", "surge")
	values := filepath.Join(chart, "ci", "embedded-values.yaml")
	if out := runTool(t, helm, "lint", "--strict", chart, "-f", values, "--set", "service.type=LoadBalancer"); !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint, service.type=LoadBalancer:\n%s", out)
	}
	out, err := exec.Command(helm, "template", "drop", chart, "-f", values, "--set", "service.type=LoadBalancer",
		"--set", "service.externalTrafficPolicy=local").CombinedOutput()
	if want := "service.externalTrafficPolicy must be Local, Cluster or empty"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("service.externalTrafficPolicy=local: %v, %s; want a failure saying %q", err, out, want)
	}
}

// renderedService is the part of a rendered Service these tests read.
type renderedService struct {
	Type                  string
	ExternalTrafficPolicy string `yaml:"externalTrafficPolicy"`
}

// renderedServices are helm template's Services by name.
func renderedServices(t *testing.T, out string) map[string]renderedService {
	t.Helper()
	services := map[string]renderedService{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc struct {
			Kind     string
			Metadata struct{ Name string }
			Spec     renderedService
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return services
		}
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		if doc.Kind == "Service" {
			services[doc.Metadata.Name] = doc.Spec
		}
	}
}

// TestHelmNotesWarnOfARewritingService: a LoadBalancer or NodePort
// Service whose externalTrafficPolicy is not Local (Cluster, or unset:
// Kubernetes' default) has every buyer's address rewritten to a node's,
// and with no trustedProxies the pods count the nodes as the buyers. The
// install's notes said nothing of it, or, with no trustedProxies, advised
// setting them to a proxy's pods, which cannot help: no proxy there adds
// X-Forwarded-For. They must name the policy and Local instead, and say
// nothing of it where the Service keeps the address (Local, ClusterIP) or
// a proxy's X-Forwarded-For is believed.
func TestHelmNotesWarnOfARewritingService(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	chart := filepath.Join("helm", "surge")
	const warning = "set service.externalTrafficPolicy to Local"
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--set", "service.type=LoadBalancer", "--set", "service.externalTrafficPolicy=Cluster"}, true},
		{[]string{"--set", "service.type=NodePort", "--set", "service.externalTrafficPolicy=Cluster"}, true},
		{[]string{"--set", "service.type=LoadBalancer", "--set", "service.externalTrafficPolicy="}, true},
		{[]string{"--set", "service.type=LoadBalancer"}, false},
		{nil, false},
		{[]string{"--set", "service.type=LoadBalancer", "--set", "service.externalTrafficPolicy=Cluster", "--set", "trustedProxies={10.0.0.0/8}"}, false},
	} {
		args := append([]string{"install", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"), "--dry-run=client"}, tc.args...)
		out := runTool(t, helm, args...)
		if got := strings.Contains(out, warning); got != tc.warn {
			t.Errorf("helm install %v: the notes say %q: %v, want %v:\n%s", tc.args, warning, got, tc.warn, out)
		}
		if tc.warn && strings.Contains(out, "set trustedProxies to the proxy pods' CIDR") {
			t.Errorf("helm install %v: the notes advise trustedProxies, which cannot give back an address a node rewrote:\n%s", tc.args, out)
		}
	}
}
