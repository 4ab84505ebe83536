package main

// The command line's checks: what a start refuses, a check of the file
// refuses too, before anything is created; secrets stay out of errors and
// of --print-config; flags out of range or malformed are refused.

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPrintConfigRefusesWhatServeRefuses: docs/configuration.md says
// --print-config "exits 0 (or 2 with the error when it does not validate:
// it doubles as a check of a file before a reload)". Values that serve
// refuses with exit 2 at start must fail the check too.
func TestPrintConfigRefusesWhatServeRefuses(t *testing.T) {
	for _, body := range []string{
		"payments: paypal\n",
		"waiting-room-secret: short\n",
		"payment-webhook-secret: \"0123456789abcdef0123,x\"\n",
		"redis-url: redis://127.0.0.1:6379/0\n", // cluster mode needs both
		"cluster-buckets: 2000\n",
		"nats-url: \"nats://127.0.0.1:bad\"\n",
	} {
		t.Run(strings.TrimSpace(body), func(t *testing.T) {
			p := writeConfig(t, "surge.yaml", body)
			code, _, stderr := runCLI(context.Background(), "serve", "--config", p, "--print-config", "--data-dir", t.TempDir())
			if code != 2 {
				t.Errorf("serve --config (%q) --print-config: exit %d, stderr %q; want 2: serve itself refuses this file", body, code, stderr)
			}
		})
	}
}

// TestReloadRefusesInvalidFileWhole: "if the file does not load or
// validate (… a bad value …), refuses it whole: the running configuration
// stays". A file whose restart-only key holds a value serve refuses is
// accepted by SIGHUP: its live keys are applied, the reload counts as ok,
// and the next restart with that same file fails.
func TestReloadRefusesInvalidFileWhole(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	base := "admin-token: checks-admin-token-0123\ninsecure-user-header: true\n"
	replaceConfig(t, cfg, base+"log-level: info\n")
	p := startConfigured(t, "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	replaceConfig(t, cfg, base+"log-level: debug\npayments: paypal\n")
	p.hup(t)
	deadline := time.Now().Add(15 * time.Second)
	for p.logCount("config reload") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p.logCount("config reload refused") == 0 {
		t.Errorf("SIGHUP took a file with payments: paypal (which serve refuses at start); log:\n%s", grepLines(p.logTail(), "config reload"))
	}
	// The same file is refused by a fresh start.
	code, _, stderr := runCLI(context.Background(), "serve", "--config", cfg, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0")
	t.Logf("a start with the file SIGHUP accepted: exit %d: %s", code, strings.TrimSpace(stderr))
}

// TestStartErrorsHideURLPasswords: secrets are never printed. The
// passwords of the store and NATS URLs are masked by --print-config, even
// for an unparsable URL ("it may hold anything"), but a start refused
// over such a URL prints it whole, password included, to stderr and the
// log.
func TestStartErrorsHideURLPasswords(t *testing.T) {
	const pw = "s3cretpw-checks"
	for _, args := range [][]string{
		// Redis not (yet) reachable at start: the commonest refusal.
		{"--redis-url", "redis://:" + pw + "@127.0.0.1:1/0", "--postgres-url", "postgres://u@127.0.0.1:1/db"},
		{"--redis-url", "redis://:" + pw + "@127.0.0.1:bad/0", "--postgres-url", "postgres://u@127.0.0.1:1/db"},
		{"--redis-url", "redis://:" + pw + "%zz@127.0.0.1:6379/0", "--postgres-url", "postgres://u@127.0.0.1:1/db"},
		{"--nats-url", "nats://user:" + pw + "@127.0.0.1:bad"},
	} {
		t.Run(args[1], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			all := append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", "checks-admin-token-0123"}, args...)
			code, stdout, stderr := runCLI(ctx, all...)
			if strings.Contains(stderr+stdout, pw) {
				t.Errorf("exit %d; the password is printed:\n%s", code, stderr)
			}
		})
	}
}

// TestMaskedNATSToken: --print-config's output "can go into a
// ticket". nats.go takes a URL's user without a password as the token
// (nats://TOKEN@host:4222), which is then printed as is.
func TestMaskedNATSToken(t *testing.T) {
	for _, v := range []string{
		"nats://s3crettoken@127.0.0.1:4222",
		// nats.Connect takes a comma-separated list of servers.
		"nats://u:pw1@h1:4222,nats://u:s3crettoken@h2:4222",
	} {
		if got := masked("nats-url", v); strings.Contains(got, "s3crettoken") {
			t.Errorf("masked(nats-url, %q) = %q: a NATS secret shows", v, got)
		}
	}
}

// TestRefusedStartChangesNothing: a bad flag value "gets a precise
// error and exit status 2 and changes nothing". A too short
// --waiting-room-secret (or a malformed --nats-url) is refused with exit
// 2 only after the data directory and its database were created.
func TestRefusedStartChangesNothing(t *testing.T) {
	for _, bad := range [][]string{
		{"--waiting-room-secret", "short"},
		{"--nats-url", "nats://127.0.0.1:bad"},
	} {
		t.Run(bad[0], func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code, _, stderr := runCLI(ctx, append([]string{"serve", "--data-dir", data, "--http-addr", "127.0.0.1:0",
				"--admin-token", "checks-admin-token-0123", "--log-level", "error"}, bad...)...)
			if code != 2 {
				t.Fatalf("exit %d (%s), want 2", code, stderr)
			}
			if ents, err := os.ReadDir(data); err == nil {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("refused with exit 2 (%s), but it created %s holding %v", strings.TrimSpace(stderr), data, names)
			}
		})
	}
}

// TestBadServerURL: "Client commands take --server …; their errors
// name the flag to fix. Bad flags print one line and exit 2". A --server
// without its scheme (the commonest slip) exits 1 with Go's URL error,
// naming no flag.
func TestBadServerURL(t *testing.T) {
	for _, srv := range []string{"localhost:8080", "127.0.0.1:8080"} {
		code, _, stderr := runCLI(cancelled(), "sale", "list", "--server", srv)
		if code != 2 || !strings.Contains(stderr, "--server") {
			t.Errorf("surge sale list --server %s: exit %d, stderr %q; want 2 and an error naming --server", srv, code, stderr)
		}
	}
}

// TestNumericFlagsChecked: a value its flag's own help calls out of
// range is accepted silently and replaced (or, for NaN, turns the limit
// off): --cluster-buckets is "1-1024" but 0 passes; a negative lease or
// in-flight count passes; NaN passes as a rate.
func TestNumericFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--rate-limit-buyer", "NaN"},
		{"--rate-limit-ip", "NaN"},
		{"--cluster-buckets", "0"},
		{"--cluster-lease-ttl", "-5s"},
		{"--cluster-in-flight", "-1"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		// print-config is enough: a value the check passes is one serve takes.
		code, _, _ := runCLI(ctx, append([]string{"serve", "--print-config", "--data-dir", t.TempDir()}, args...)...)
		cancel()
		if code == 0 {
			if _, err := loadServeConfig(append([]string{"--data-dir", t.TempDir()}, args...), io.Discard); err == nil {
				t.Errorf("serve %s: accepted", strings.Join(args, " "))
			}
		}
	}
}

// TestPrintConfigLoadsBack: --print-config writes "a valid --config
// file" (printConfig's own words; TestPrintConfig loads one back). With
// a secret file, the shape of deploy/surge.example.yaml, it prints the
// secret read from the file beside the file's path, labelled "# default",
// and the output is refused: "give --admin-token or --admin-token-file,
// not both".
func TestPrintConfigLoadsBack(t *testing.T) {
	tok := writeConfig(t, "admin-token", "checks-admin-token-0123\n")
	code, stdout, stderr := runCLI(context.Background(), "serve", "--admin-token-file", tok, "--print-config", "--data-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	back := writeConfig(t, "back.yaml", stdout)
	if _, err := loadServeConfig([]string{"--config", back}, io.Discard); err != nil {
		t.Errorf("--print-config's output does not load: %v\n%s", err, grepLines(stdout, "admin-token"))
	}
}

// TestFileTextSettingsQuoted: "values are written as on the command line".
// The YAML parser reads an unquoted 0777 as 511, 0x1F as 31 and a long
// digit string as a float: a text setting would silently differ from the
// file. Such values are refused, naming the key; quoted, they are kept.
func TestFileTextSettingsQuoted(t *testing.T) {
	for _, line := range []string{"redis-prefix: 0777", "node-id: 0x1F", "jwt-issuer: 0123456789012345678", "jwt-audience: true"} {
		p := writeConfig(t, "surge.yaml", line+"\n")
		_, err := loadServeConfig([]string{"--config", p, "--data-dir", t.TempDir()}, io.Discard)
		key, _, _ := strings.Cut(line, ":")
		if err == nil || !strings.Contains(err.Error(), "quotes") || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want a refusal asking for quotes", line, err)
		}
	}
	p := writeConfig(t, "surge.yaml", "redis-prefix: \"0777\"\nnode-id: '0x1F'\njwt-issuer: \"0123456789012345678\"\n")
	l, err := loadServeConfig([]string{"--config", p, "--data-dir", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if l.c.redisPrefix != "0777" || l.c.nodeID != "0x1F" || l.c.jwtIssuer != "0123456789012345678" {
		t.Errorf("quoted values read as %q, %q, %q", l.c.redisPrefix, l.c.nodeID, l.c.jwtIssuer)
	}
}
