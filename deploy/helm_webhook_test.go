package deploy_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelmChartWebhookSecret: the payment webhook's secret is a secret
// like the admin token: given as secrets.paymentWebhookSecret it goes into
// the chart's Secret and reaches the pod from there; with
// secrets.existingSecret the pod reads that Secret's payment-webhook-secret
// key, optional as the other secrets but the admin token. The chart had no
// value for it, so it could only be passed in plain text through env.
// One too short (the server refuses each under 16 bytes) fails the render.
func TestHelmChartWebhookSecret(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	chart := filepath.Join("helm", "surge")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	const secret = "whsec_helm-webhook-secret-0123"
	fromSecret := func(name string, optional bool) string {
		re := `(?m)^ +- name: SURGE_PAYMENT_WEBHOOK_SECRET\n +valueFrom:\n +secretKeyRef:\n +name: ` + name + `\n +key: payment-webhook-secret$`
		if optional {
			re += `\n +optional: true$`
		}
		return re
	}
	for _, tc := range []struct {
		name        string
		args        []string
		want, avoid []string
	}{
		{"given", []string{"--set", "secrets.paymentWebhookSecret=" + secret},
			[]string{`(?m)^  payment-webhook-secret: "` + secret + `"$`, fromSecret("drop-surge", false)},
			[]string{`optional: true`}},
		{"a rotation", []string{"--set-string", `secrets.paymentWebhookSecret=` + secret + `\,whsec_the-next-secret-0123`},
			[]string{`(?m)^  payment-webhook-secret: "` + secret + `,whsec_the-next-secret-0123"$`, fromSecret("drop-surge", false)}, nil},
		{"an existing secret", []string{"--set", "secrets.existingSecret=shop-secrets"},
			[]string{fromSecret("shop-secrets", true)}, []string{`(?m)^kind: Secret$`}},
		{"none", nil, nil, []string{`SURGE_PAYMENT_WEBHOOK_SECRET`, `payment-webhook-secret`}},
	} {
		args := append([]string{"template", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml")}, tc.args...)
		out := runTool(t, helm, args...)
		for _, re := range tc.want {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s: helm template lacks %s", tc.name, re)
			}
		}
		for _, re := range tc.avoid {
			if regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s: helm template has %s", tc.name, re)
			}
		}
		if t.Failed() {
			t.Logf("helm template %v:\n%s", tc.args, out)
		}
	}
	out, err := exec.Command(helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"),
		"--set", "secrets.paymentWebhookSecret=short").CombinedOutput()
	if want := "secrets.paymentWebhookSecret"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("a 5-byte webhook secret: %v, %s; want a failure naming %s", err, out, want)
	}
}
