// Package deploy_test checks the deploy files (this directory) with the
// tools that read them, not only by eye:
//
//   - Dockerfile: dockerfile-utils' linter (the Docker language server's,
//     from npm; hadolint is not packaged where this project builds), the
//     properties the image promises (static CGO_ENABLED=0 binary, checked
//     on a real build, non-root, HEALTHCHECK through `surge probe`,
//     0.0.0.0 inside), and its Go version against go.mod;
//   - docker-compose.yml: dclint (npm), which validates it against the
//     Compose Specification's JSON schema and lints it; the files it
//     mounts exist; its Prometheus config is the shipped one but for the
//     targets;
//   - the systemd unit: systemd-analyze verify and its offline security
//     score;
//   - the Helm chart: helm lint and helm template in both modes.
//
// scripts/services.sh installs the tools. Without one a test skips on a
// developer's machine and fails under CI: CI must not pass by testing
// nothing.
package deploy_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tool returns the path of an external command, failing under CI and
// skipping elsewhere when it is missing.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	// go install puts helm in GOPATH/bin, which need not be on PATH.
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p := filepath.Join(strings.TrimSpace(string(out)), "bin", name); fileExists(p) {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found: %s (scripts/services.sh does)", name, install)
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runTool runs a command and returns its combined output; it fails the
// test when the command fails.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfile(t *testing.T) {
	lint := tool(t, "dockerfile-utils", "npm install -g dockerfile-utils")
	// Warnings exit 0: any output is a finding.
	if out := runTool(t, lint, "lint", "Dockerfile"); strings.TrimSpace(out) != "" {
		t.Errorf("dockerfile-utils lint:\n%s", out)
	}
	df := read(t, "Dockerfile")
	gomod := read(t, filepath.Join("..", "go.mod"))
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(gomod)
	for _, want := range []struct{ what, re string }{
		{"a build stage", `(?m)^FROM golang:\$\{GO_VERSION\}-\S+ AS build$`},
		{"a static build", `CGO_ENABLED=0 go build -trimpath`},
		{"the version stamped", `-X github.com/surgehq/surge/version.version=\$\{VERSION\}`},
		{"a small final image", `(?m)^FROM gcr.io/distroless/static-debian12:nonroot$`},
		{"a non-root user", `(?m)^USER 65532:65532$`},
		{"the API on 0.0.0.0 inside", `SURGE_HTTP_ADDR=0.0.0.0:8080`},
		{"the data directory", `SURGE_DATA_DIR=/data`},
		{"a health check on /healthz by the binary", `(?m)^  CMD \["/usr/local/bin/surge", "probe", "--timeout", "3s"\]$`},
		{"go.mod's Go version", `(?m)^ARG GO_VERSION=` + regexp.QuoteMeta(goLine[1]) + `$`},
	} {
		if !regexp.MustCompile(want.re).MatchString(df) {
			t.Errorf("the Dockerfile lacks %s (%s)", want.what, want.re)
		}
	}
	if n := strings.Count(df, "\nFROM "); n != 2 {
		t.Errorf("%d stages, want 2 (build, final)", n)
	}

	// The build the Dockerfile runs gives a static binary (no ELF
	// interpreter), which distroless/static needs, and it probes.
	if testing.Short() {
		return
	}
	bin := filepath.Join(t.TempDir(), "surge")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/surgehq/surge/cmd/surge")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the CGO_ENABLED=0 binary is dynamically linked")
		}
	}
	if out, err := exec.Command(bin, "probe", "--url", "http://127.0.0.1:1/healthz", "--timeout", "1s").CombinedOutput(); err == nil || !strings.Contains(string(out), "probe") {
		t.Errorf("surge probe of a closed port: %v %s; want a failure", err, out)
	}
}

// TestHealthcheckReportsBeforeDockerKillsIt: Docker kills a health check
// that outlasts HEALTHCHECK --timeout and records no more than that it
// ran out. surge probe gives up on a server that does not answer after
// its own --timeout and says which URL failed and how: it must give up
// first, with a second to spare for starting the process on a busy host,
// or a hung server's check is never reported by the probe (with both at
// 3 s, Docker always won). The image's check allows /healthz the time
// the Helm chart's probes of it allow, so that a server is judged alike
// wherever it runs (docker-compose.yml's nodes take the image's check).
func TestHealthcheckReportsBeforeDockerKillsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	df := read(t, "Dockerfile")
	m := regexp.MustCompile(`(?m)^HEALTHCHECK ((?:--\S+ )+)\\\n +CMD (\[.*\])$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no HEALTHCHECK … CMD [exec form]")
	}
	docker := 30 * time.Second // Docker's default
	if d := regexp.MustCompile(`--timeout=(\S+)`).FindStringSubmatch(m[1]); d != nil {
		var err error
		if docker, err = time.ParseDuration(d[1]); err != nil {
			t.Fatalf("HEALTHCHECK --timeout=%s: %v", d[1], err)
		}
	}
	var argv []string
	if err := json.Unmarshal([]byte(m[2]), &argv); err != nil || len(argv) < 2 || argv[1] != "probe" {
		t.Fatalf("the HEALTHCHECK's CMD %s is not surge probe: %v", m[2], err)
	}
	bin := filepath.Join(t.TempDir(), "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The probe's --timeout as the CMD gives it, else the binary's default.
	probe := ""
	for i, a := range argv {
		if v, ok := strings.CutPrefix(a, "--timeout="); ok {
			probe = v
		} else if a == "--timeout" && i+1 < len(argv) {
			probe = argv[i+1]
		}
	}
	if probe == "" {
		help, _ := exec.Command(bin, "probe", "--help").CombinedOutput()
		d := regexp.MustCompile(`-timeout duration\n\s+give up after this long \(default (\S+)\)`).FindSubmatch(help)
		if d == nil {
			t.Fatalf("surge probe --help names no default --timeout:\n%s", help)
		}
		probe = string(d[1])
	}
	probeTimeout, err := time.ParseDuration(probe)
	if err != nil {
		t.Fatal(err)
	}
	const margin = time.Second
	if probeTimeout+margin > docker {
		t.Errorf("the HEALTHCHECK's surge probe gives up after %v, and Docker kills it after %v (HEALTHCHECK --timeout): "+
			"want the probe's --timeout at least %v below Docker's, so that a hung server's check ends with the probe's own report",
			probeTimeout, docker, margin)
	}
	// The check as Docker runs it, against a server that accepts and never
	// answers, killed at Docker's timeout: it must end by itself, saying so.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// In the image's environment, serve given the listener's port: the
	// check follows SURGE_HTTP_ADDR.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), docker)
	defer cancel()
	check := exec.CommandContext(ctx, bin, argv[1:]...)
	check.Env = append(check.Environ(), "SURGE_HTTP_ADDR=0.0.0.0:"+port)
	out, err := check.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "probe http://"+ln.Addr().String()) {
		t.Errorf("the HEALTHCHECK's CMD against a server that never answers, killed after %v as Docker does: %v, %q; want exit 1 and the probe's own report",
			docker, err, out)
	}
	// The Helm chart's probes of /healthz allow the same time.
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	chart := filepath.Join("helm", "surge")
	rendered := runTool(t, helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"))
	for _, kind := range []string{"startupProbe", "livenessProbe"} {
		// The probe's lines: those indented deeper than its key.
		p := regexp.MustCompile(`(?m)^( +)` + kind + `:\n`).FindStringSubmatchIndex(rendered)
		if p == nil {
			t.Errorf("helm template: no %s", kind)
			continue
		}
		indent, body := p[3]-p[2], ""
		for line := range strings.Lines(rendered[p[1]:]) {
			if len(line)-len(strings.TrimLeft(line, " ")) <= indent {
				break
			}
			body += line
		}
		want := fmt.Sprintf("timeoutSeconds: %d\n", int(probeTimeout/time.Second))
		if !strings.Contains(body, "path: /healthz\n") || !strings.Contains(body, want) {
			t.Errorf("helm template: the %s is not of /healthz or does not allow it the %v the image's HEALTHCHECK allows (want %q):\n%s",
				kind, probeTimeout, strings.TrimSpace(want), body)
		}
	}
}

func TestCompose(t *testing.T) {
	dclint := tool(t, "dclint", "npm install -g dclint")
	// The ordering rules are style; everything else, the schema first, must pass.
	out := runTool(t, dclint, "docker-compose.yml", "--max-warnings", "0",
		"--disable-rule", "service-keys-order", "services-alphabetical-order", "top-level-properties-order")
	if strings.Contains(out, "problem") {
		t.Errorf("dclint:\n%s", out)
	}
	// dclint catches what it should: a file off the schema fails.
	bad := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(bad, []byte(strings.Replace(read(t, "docker-compose.yml"), "restart: unless-stopped", "restrt: always", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(dclint, bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid-schema") {
		t.Errorf("dclint passed a compose file off the schema: %v\n%s", err, out)
	}

	compose := read(t, "docker-compose.yml")
	for _, svc := range []string{"surge-a", "surge-b", "redis", "postgres", "edge", "prometheus"} {
		if !strings.Contains(compose, "\n  "+svc+":\n") {
			t.Errorf("docker-compose.yml has no service %s", svc)
		}
	}
	// Every file it mounts is in the repository.
	for _, m := range regexp.MustCompile(`- (\./[^:]+):`).FindAllStringSubmatch(compose, -1) {
		if !fileExists(m[1]) {
			t.Errorf("docker-compose.yml mounts %s, which does not exist", m[1])
		}
	}
	// Its Prometheus config is the shipped one but for the comments and
	// the targets.
	strip := func(s string) string {
		var b strings.Builder
		for line := range strings.Lines(s) {
			trim := strings.TrimSpace(line)
			if trim == "" || strings.HasPrefix(trim, "#") || strings.HasPrefix(trim, "- 127.0.0.1:") || strings.HasPrefix(trim, "- surge-") {
				continue
			}
			b.WriteString(line)
		}
		return b.String()
	}
	if a, b := strip(read(t, "compose/prometheus.yml")), strip(read(t, "observability/prometheus.yml")); a != b {
		t.Errorf("compose/prometheus.yml drifted from observability/prometheus.yml:\n%s\n---\n%s", a, b)
	}
}

// TestComposeStopGraceCoversDrain: `docker compose stop` (and every
// `up` that replaces a node) sends SIGTERM and, after the service's
// stop_grace_period (Docker's default: 10 s), SIGKILL. A node given the
// compose file's environment drains for --drain-delay and then lets
// in-flight requests finish for up to --shutdown-timeout; the grace must
// cover both, as the Helm chart's terminationGracePeriodSeconds and the
// unit's TimeoutStopSec do, or the node is killed mid-drain.
func TestComposeStopGraceCoversDrain(t *testing.T) {
	out := composeNodeConfig(t, nil)
	compose := read(t, "docker-compose.yml")
	node := compose[:strings.Index(compose, "\nservices:")] // the x-surge-node anchor every node merges
	drain, inFlight := stopTimes(t, out)
	grace := 10 * time.Second // Docker's default
	if m := regexp.MustCompile(`(?m)^  stop_grace_period: (\S+)$`).FindStringSubmatch(node); m != nil {
		g, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		grace = g
	}
	if grace < drain+inFlight {
		t.Errorf("docker-compose.yml gives the nodes %v between SIGTERM and SIGKILL, but a node drains for %v (--drain-delay) "+
			"and then finishes in-flight requests for up to %v (--shutdown-timeout): `docker compose stop` SIGKILLs it while it may "+
			"still be answering requests in flight", grace, drain, inFlight)
	}
}

// TestDockerRunStopTimeoutCoversDrain: `docker stop` (and `docker run`'s
// container stopped by any means but compose) sends the image's
// STOPSIGNAL and, after the container's stop timeout (Docker's default:
// 10 s), SIGKILL. The image's serve drains for --drain-delay and then
// lets in-flight requests finish for up to --shutdown-timeout (30 s by
// default): the way the Dockerfile says to run it must give the
// container at least that, as docker-compose.yml's stop_grace_period, the
// chart's terminationGracePeriodSeconds and the unit's TimeoutStopSec do,
// or a stop kills it mid-drain, requests in flight unanswered.
func TestDockerRunStopTimeoutCoversDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	df := read(t, "Dockerfile")
	// serve's own reading of the image's environment (ENV).
	env := []string{"SURGE_ADMIN_TOKEN=docker-test-admin-token"}
	block := regexp.MustCompile(`(?m)^ENV ((?:.*\\\n)*.*)$`).FindStringSubmatch(df)
	if block == nil {
		t.Fatal("the Dockerfile has no ENV")
	}
	for _, m := range regexp.MustCompile(`(SURGE_\w+)=(\S+)`).FindAllStringSubmatch(block[1], -1) {
		env = append(env, m[1]+"="+m[2])
	}
	env = append(env, "SURGE_DATA_DIR="+t.TempDir())
	drain, inFlight := stopTimes(t, printConfigWith(t, env))
	// How the Dockerfile says to run the image.
	run := regexp.MustCompile(`(?m)^#\s+docker run .*$`).FindString(df)
	if run == "" {
		t.Fatalf("the Dockerfile does not say how to run the image (a `docker run` line): run as Docker does by default, "+
			"it is SIGKILLed 10 s after SIGTERM, while serve drains for %v and finishes in-flight requests for up to %v", drain, inFlight)
	}
	stop := 10 * time.Second // Docker's default
	if m := regexp.MustCompile(`--stop-timeout[ =](\d+)`).FindStringSubmatch(run); m != nil {
		n, _ := strconv.Atoi(m[1])
		stop = time.Duration(n) * time.Second
	}
	if stop < drain+inFlight {
		t.Errorf("the Dockerfile runs the image with %v between SIGTERM and SIGKILL (%s), but serve drains for %v (--drain-delay) "+
			"and then finishes in-flight requests for up to %v (--shutdown-timeout): `docker stop` kills it mid-drain", stop, strings.TrimSpace(run), drain, inFlight)
	}
}

// composeNodeConfig is the binary's own reading (`surge serve
// --print-config`, defaults included) of the environment
// docker-compose.yml gives its nodes: the x-surge-node anchor every node
// merges, with each ${VAR:-default} taken from shell as `docker compose
// up` takes it from the caller's shell.
func composeNodeConfig(t *testing.T, shell map[string]string) []byte {
	t.Helper()
	compose := read(t, "docker-compose.yml")
	node := compose[:strings.Index(compose, "\nservices:")]
	// The admin token comes as a compose secret file, /run/secrets/…,
	// which exists only in the container: give it as a value instead.
	env := []string{"SURGE_ADMIN_TOKEN=compose-test-admin-token", "SURGE_DATA_DIR=" + t.TempDir()}
	// The waiting-room key is required of the shell, as the file's header
	// exports it.
	if _, ok := shell["SURGE_WAITING_ROOM_SECRET"]; !ok {
		shell = maps.Clone(shell)
		if shell == nil {
			shell = map[string]string{}
		}
		shell["SURGE_WAITING_ROOM_SECRET"] = "compose-test-waiting-room-secret-0123456789"
	}
	for _, m := range regexp.MustCompile(`(?m)^    (SURGE_\w+): (.*)$`).FindAllStringSubmatch(node, -1) {
		if m[1] == "SURGE_ADMIN_TOKEN_FILE" {
			continue
		}
		v, err := composeInterpolate(strings.Trim(m[2], `'"`), shell)
		if err != nil {
			t.Fatalf("docker-compose.yml's %s with the shell %v: %v", m[1], shell, err)
		}
		env = append(env, m[1]+"="+v)
	}
	return printConfigWith(t, env)
}

// printConfigWith is surge serve --print-config with env as its only
// SURGE_* variables (the test's own are left out).
func printConfigWith(t *testing.T, env []string) []byte {
	t.Helper()
	cmd := exec.Command("go", "run", "github.com/surgehq/surge/cmd/surge", "serve", "--print-config")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("surge serve --print-config with %v: %v\n%s", env, err, out)
	}
	return out
}

// TestComposePaymentWebhook: the payment webhook's secret and scheme
// reach the compose nodes from the shell that runs `docker compose up`,
// as the Helm chart takes them from its Secret; without them the nodes
// start with no webhook rather than refusing to start.
func TestComposePaymentWebhook(t *testing.T) {
	const secret = "whsec_compose-webhook-0123"
	for _, c := range []struct {
		name  string
		shell map[string]string
		want  []string
	}{
		{"exported", map[string]string{"SURGE_PAYMENT_WEBHOOK_SECRET": secret, "SURGE_PAYMENTS": "stripe"},
			[]string{`payment-webhook-secret: "xxxxx" # env`, `payments: "stripe" # env`}},
		{"unset", nil, []string{`payment-webhook-secret: "" # `, `payments: "surge" # `}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := composeNodeConfig(t, c.shell)
			for _, w := range c.want {
				if !bytes.Contains(out, []byte("\n"+w)) {
					t.Errorf("a compose node with %v in the shell: --print-config has no %q:\n%s", c.shell, w, out)
				}
			}
		})
	}
}

func TestSystemdUnit(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "apt-get install systemd")
	// verify checks that ExecStart's binary exists: point it at one that
	// does (this test's), in a copy of the unit.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := read(t, "systemd/surge.service")
	for _, want := range []string{
		"\nExecReload=/bin/kill -HUP $MAINPID\n", "\nPIDFile=/run/surge/surge.pid\n", "--pid-file /run/surge/surge.pid",
		"\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n", "\nReadWritePaths=/var/lib/surge /run/surge\n", "\nPrivateTmp=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	// Settings live in the file, where SIGHUP can change them: a flag on
	// ExecStart would outrank the file for good.
	start := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(unit)
	if start == nil {
		t.Fatal("the unit has no ExecStart")
	}
	for _, f := range regexp.MustCompile(`--[a-z-]+`).FindAllString(start[1], -1) {
		if f != "--config" && f != "--pid-file" {
			t.Errorf("ExecStart sets %s: keep settings in /etc/surge/surge.yaml (a flag outranks the file, also on reload)", f)
		}
	}
	if !strings.Contains(start[1], "--config /etc/surge/surge.yaml") {
		t.Errorf("ExecStart does not read /etc/surge/surge.yaml: %s", start[1])
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "surge.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/surge", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Warnings (unknown keys, bad values) exit 0: any output is a finding.
	var out bytes.Buffer
	cmd := exec.Command(analyze, "verify", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out.String())
	}
	// The hardening, scored: 0 is locked down, 10 is none. The unit
	// scores 1.5 with systemd 252; 2.0 leaves room for newer checks.
	sec, err := exec.Command(analyze, "security", "--offline=yes", "--no-pager", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for surge.service: ([0-9.]+)`).FindSubmatch(sec)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, sec)
	}
	var score float64
	fmt.Sscan(string(m[1]), &score)
	if score > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0:\n%s", score, sec)
	}
}

func TestHelmChart(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	chart := filepath.Join("helm", "surge")
	// helm writes its cache and config under HOME: keep them in the test.
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	for _, mode := range []string{"embedded", "cluster"} {
		values := filepath.Join(chart, "ci", mode+"-values.yaml")
		if out := runTool(t, helm, "lint", "--strict", chart, "-f", values); !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint (%s):\n%s", mode, out)
		}
		out := runTool(t, helm, "template", "drop", chart, "-f", values)
		has := func(re string) bool { return regexp.MustCompile(re).MatchString(out) }
		want := []string{
			`(?m)^kind: Service$`, `(?m)^kind: Secret$`,
			`(?m)^ +readinessProbe:\n +httpGet:\n +path: /readyz$`,
			`(?m)^ +livenessProbe:\n +httpGet:\n +path: /healthz$`,
			// 10 s drain + 30 s in flight + 5 s margin.
			`(?m)^ +terminationGracePeriodSeconds: 45$`,
			`(?m)^ +- name: SURGE_DRAIN_DELAY\n +value: "10s"$`,
			`(?m)^ +- name: SURGE_HTTP_ADDR\n +value: "0.0.0.0:8080"$`,
			`(?m)^ +runAsNonRoot: true$`, `(?m)^ +readOnlyRootFilesystem: true$`,
		}
		absent := []string{`preStop`}
		if mode == "embedded" {
			want = append(want, `(?m)^kind: StatefulSet$`, `(?m)^  replicas: 1$`, `(?m)^  volumeClaimTemplates:$`, `(?m)^ +mountPath: /data$`)
			absent = append(absent, `kind: Deployment`, `kind: HorizontalPodAutoscaler`, `kind: PodDisruptionBudget`, `SURGE_REDIS_URL`)
		} else {
			want = append(want, `(?m)^kind: Deployment$`, `(?m)^kind: HorizontalPodAutoscaler$`, `(?m)^kind: PodDisruptionBudget$`,
				`(?m)^  maxUnavailable: 1$`, `(?m)^ +- name: SURGE_REDIS_URL\n`, `(?m)^ +- name: SURGE_POSTGRES_URL\n`,
				`(?m)^ +- name: SURGE_WAITING_ROOM_SECRET\n`, `(?m)^ +fieldPath: metadata.name$`)
			absent = append(absent, `kind: StatefulSet`, `volumeClaimTemplates`)
		}
		for _, re := range want {
			if !has(re) {
				t.Errorf("helm template (%s) lacks %s", mode, re)
			}
		}
		for _, re := range absent {
			if has(re) {
				t.Errorf("helm template (%s) has %s", mode, re)
			}
		}
		if t.Failed() {
			t.Logf("helm template (%s):\n%s", mode, out)
		}
	}

	// A preStop sleep adds to the grace period; wrong values fail the
	// render with a message, not a broken pod.
	out := runTool(t, helm, "template", "drop", chart, "-f", filepath.Join(chart, "ci", "embedded-values.yaml"), "--set", "preStopSleepSeconds=5")
	if !regexp.MustCompile(`(?m)^ +preStop:\n +sleep:\n +seconds: 5$`).MatchString(out) || !strings.Contains(out, "terminationGracePeriodSeconds: 50") {
		t.Errorf("preStopSleepSeconds=5: no preStop sleep or grace period 50:\n%s", out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "secrets.adminToken (at least 16 characters) or secrets.existingSecret is required"},
		{[]string{"--set", "secrets.adminToken=0123456789abcdef", "--set", "mode=cluster"}, "cluster mode needs secrets.redisUrl and secrets.postgresUrl"},
		{[]string{"--set", "secrets.adminToken=0123456789abcdef", "--set", "mode=both"}, `mode must be embedded or cluster`},
	} {
		out, err := exec.Command(helm, append([]string{"template", "drop", chart}, tt.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("helm template %v: %v, %s; want a failure saying %q", tt.args, err, out, tt.want)
		}
	}
}

// stopTimes reads a stop's two waits from surge serve --print-config's
// output: the drain delay (readyz 503 while the edge stops sending) and
// the shutdown timeout (in-flight requests finishing).
func stopTimes(t *testing.T, printed []byte) (drain, inFlight time.Duration) {
	t.Helper()
	setting := func(key string) time.Duration {
		m := regexp.MustCompile(`(?m)^` + key + `: "([^"]+)"`).FindSubmatch(printed)
		if m == nil {
			t.Fatalf("--print-config has no %s:\n%s", key, printed)
		}
		d, err := time.ParseDuration(string(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return setting("drain-delay"), setting("shutdown-timeout")
}
