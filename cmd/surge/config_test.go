package main

import (
	"bufio"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a config file named name in a new directory.
func writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: a flag beats its SURGE_* variable, which beats
// the file, which beats the default, key by key, in YAML and in TOML;
// --print-config names where each value came from.
func TestConfigPrecedence(t *testing.T) {
	files := map[string]string{
		"surge.yaml": "rate-limit-ip: 3\ndrain-delay: 3s\ntrusted-proxies: [10.0.0.0/8, 192.168.0.0/16]\nshed: false\n",
		"surge.toml": "rate-limit-ip = 3\ndrain-delay = \"3s\"\ntrusted-proxies = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nshed = false\n",
	}
	for _, tc := range []struct {
		name            string
		file, env, flag bool
		want            float64 // rate-limit-ip
		wantFrom        string
	}{
		{"default", false, false, false, 0, fromDefault},
		{"file", true, false, false, 3, fromFile},
		{"env over file", true, true, false, 5, fromEnv},
		{"env alone", false, true, false, 5, fromEnv},
		{"flag over env and file", true, true, true, 7, fromFlag},
		{"flag over file", true, false, true, 7, fromFlag},
		{"flag alone", false, false, true, 7, fromFlag},
	} {
		for name, body := range files {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				args := []string{"--data-dir", t.TempDir()}
				if tc.file {
					args = append(args, "--config", writeConfig(t, name, body))
				}
				if tc.env {
					t.Setenv("SURGE_RATE_LIMIT_IP", "5")
				}
				if tc.flag {
					args = append(args, "--rate-limit-ip", "7")
				}
				l, err := loadServeConfig(args, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				from := l.from["rate-limit-ip"]
				if from == "" {
					from = fromDefault
				}
				if l.c.rateIP != tc.want || from != tc.wantFrom {
					t.Errorf("rate-limit-ip = %v from %s, want %v from %s", l.c.rateIP, from, tc.want, tc.wantFrom)
				}
				// The file's other keys apply whatever overrides this one.
				wantDelay, wantProxies, wantShed := time.Duration(0), "", true
				if tc.file {
					wantDelay, wantProxies, wantShed = 3*time.Second, "10.0.0.0/8,192.168.0.0/16", false
				}
				if l.c.drainDelay != wantDelay || l.c.trustedProxies != wantProxies || l.c.shed != wantShed {
					t.Errorf("drain-delay %v, trusted-proxies %q, shed %v; want %v, %q, %v",
						l.c.drainDelay, l.c.trustedProxies, l.c.shed, wantDelay, wantProxies, wantShed)
				}
			})
		}
	}
}

// TestConfigFileFromEnv: SURGE_CONFIG names the file when --config does
// not; --config wins over it.
func TestConfigFileFromEnv(t *testing.T) {
	a := writeConfig(t, "a.yaml", "rate-limit-ip: 11\n")
	b := writeConfig(t, "b.yaml", "rate-limit-ip: 22\n")
	t.Setenv("SURGE_CONFIG", a)
	for _, tc := range []struct {
		args []string
		want float64
	}{
		{nil, 11},
		{[]string{"--config", b}, 22},
	} {
		l, err := loadServeConfig(append([]string{"--data-dir", t.TempDir()}, tc.args...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if l.c.rateIP != tc.want {
			t.Errorf("args %q: rate-limit-ip %v, want %v", tc.args, l.c.rateIP, tc.want)
		}
	}
}

// TestConfigFileRefused: a file with an unknown key, a nested key, a bad
// value or an unknown format is refused whole with an error naming the
// file and the key; nothing of it applies.
func TestConfigFileRefused(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string // in the error
	}{
		{"surge.yaml", "rate-limit-ip: 3\nrate-limt-ip: 4\n", []string{`unknown key "rate-limt-ip"`}},
		{"surge.toml", "[rate-limit]\nip = 3\n", []string{`unknown key "rate-limit.ip"`}},
		{"surge.yaml", "config: other.yaml\n", []string{`key "config" is command-line only`}},
		{"surge.yaml", "print-config: true\n", []string{`key "print-config" is command-line only`}},
		{"surge.yaml", "rate-limit-ip: fast\n", []string{`key "rate-limit-ip"`, `invalid value "fast"`}},
		{"surge.toml", "drain-delay = 5\n", []string{`key "drain-delay"`, `invalid value "5"`}},
		{"surge.yaml", "shed: maybe\n", []string{`key "shed"`}},
		{"surge.yaml", "log-level: loud\n", []string{`invalid --log-level "loud"`}},
		{"surge.yaml", "rate-limit-ip: [1\n", []string{"surge.yaml"}},
		{"surge.json", "{}", []string{".yaml, .yml or .toml"}},
	} {
		t.Run(tc.body, func(t *testing.T) {
			p := writeConfig(t, tc.name, tc.body)
			_, err := loadServeConfig([]string{"--config", p, "--data-dir", t.TempDir()}, io.Discard)
			if err == nil {
				t.Fatal("loaded; want refused")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// From the command line: exit 2, one line.
			code, _, stderr := runCLI(context.Background(), "serve", "--config", p, "--data-dir", t.TempDir())
			if code != 2 || !oneLine(stderr) {
				t.Errorf("surge serve --config: exit %d, stderr %q; want 2 and one line", code, stderr)
			}
		})
	}
	// Nothing of a refused file applies: the flag set is untouched.
	fs := newFlagSet("serve", "", io.Discard)
	var c serveConfig
	c.register(fs)
	if _, err := applyFile(fs, writeConfig(t, "x.yaml", "rate-limit-ip: 9\nbogus: 1\n")); err == nil || c.rateIP != 0 {
		t.Errorf("applyFile: err %v, rate-limit-ip %v; want refused and 0", err, c.rateIP)
	}
}

// TestPrintConfig: --print-config prints every setting, secrets masked
// (the admin token, the JWT and waiting-room secrets, the passwords of
// the store URLs), exits 0, and its output is a config file that loads.
func TestPrintConfig(t *testing.T) {
	secrets := map[string]string{
		"admin-token":         "admin-token-secret-value",
		"jwt-secret":          "jwt-secret-value-of-at-least-32-bytes!!",
		"waiting-room-secret": "room-secret-value-of-at-least-32-bytes!",
	}
	var body strings.Builder
	for k, v := range secrets {
		body.WriteString(k + ": " + v + "\n")
	}
	body.WriteString("redis-url: redis://:redispass@127.0.0.1:6379/0\n")
	body.WriteString("postgres-url: postgres://bob:pgpass@127.0.0.1:5432/db?password=qpass\n")
	p := writeConfig(t, "surge.yaml", body.String())
	code, stdout, stderr := runCLI(context.Background(), "serve", "--config", p, "--print-config", "--rate-limit-ip", "9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, s := range []string{"admin-token-secret-value", "jwt-secret-value", "room-secret-value", "redispass", "pgpass", "qpass"} {
		if strings.Contains(stdout, s) {
			t.Errorf("--print-config shows the secret %q:\n%s", s, stdout)
		}
	}
	for _, want := range []string{
		`admin-token: "xxxxx" # file`, `jwt-secret: "xxxxx" # file`, `waiting-room-secret: "xxxxx" # file`,
		`redis-url: "redis://:xxxxx@127.0.0.1:6379/0" # file`,
		`postgres-url: "postgres://bob:xxxxx@127.0.0.1:5432/db?password=xxxxx" # file`,
		`rate-limit-ip: 9 # flag`, `drain-delay: "0s" # default`, `shed: true # default`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, stdout)
		}
	}
	// Every key, once each, and nothing the command line alone sets.
	fs := newFlagSet("serve", "", io.Discard)
	var c serveConfig
	c.register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		n := strings.Count(stdout, "\n"+f.Name+": ")
		if want := 1; slices.Contains(commandLineOnly, f.Name) {
			want = 0
			if n != want {
				t.Errorf("--print-config prints %s", f.Name)
			}
		} else if n != want {
			t.Errorf("--print-config prints %s %d times, want once", f.Name, n)
		}
	})
	// The output loads back as a file (with the URLs masked; the masked
	// secrets are long enough for their floors, so nothing else in it is
	// refused).
	back := writeConfig(t, "back.yaml", strings.ReplaceAll(stdout, "xxxxx", "back-secret-value-of-at-least-32-bytes-long"))
	if _, err := loadServeConfig([]string{"--config", back}, io.Discard); err != nil {
		t.Errorf("--print-config's output does not load: %v", err)
	}
}

// TestMasked: the rules by which --print-config masks values.
func TestMasked(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"admin-token", "abc", "xxxxx"},
		{"admin-token", "", ""},
		{"admin-token-file", "/run/secrets/token", "/run/secrets/token"},
		{"webhook-secret", "whsec_1", "xxxxx"}, // flags added later are masked by name
		{"waiting-room-keys", "k1,k2", "xxxxx"},
		{"redis-url", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis-url", "redis://u:p@h:1/0", "redis://u:xxxxx@h:1/0"},
		{"postgres-url", "host=db user=bob password='p w' dbname=x", "host=db user=bob password=xxxxx dbname=x"},
		{"postgres-url", "host=db password=pw", "host=db password=xxxxx"},
		{"http-addr", "127.0.0.1:8080", "127.0.0.1:8080"},
		// A key server may take its credential as a query parameter.
		{"jwks-url", "https://keys.example/jwks?tenant=a&access_token=s3cret", "https://keys.example/jwks?access_token=xxxxx&tenant=xxxxx"},
		{"jwks-url", "https://keys.example/jwks", "https://keys.example/jwks"},
		// Or as the whole query, a bare word: the word is the secret.
		{"jwks-url", "https://keys.example/jwks?s3cret", "https://keys.example/jwks?xxxxx"},
	} {
		if got := masked(tc.name, tc.in); got != tc.want {
			t.Errorf("masked(%q, %q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// TestExampleConfigLoads: deploy/surge.example.yaml loads and validates
// as it is.
func TestExampleConfigLoads(t *testing.T) {
	p := filepath.Join("..", "..", "deploy", "surge.example.yaml")
	// The secret files it names are the host's: the test's stand in.
	token := writeConfig(t, "admin-token", "an-admin-token-for-the-example\n")
	secret := writeConfig(t, "jwt-secret", "a-jwt-secret-for-the-example-of-32-bytes\n")
	l, err := loadServeConfig([]string{"--config", p, "--admin-token-file", token, "--jwt-secret-file", secret}, io.Discard)
	if err != nil {
		t.Fatalf("deploy/surge.example.yaml: %v", err)
	}
	if len(l.from) < 10 {
		t.Errorf("the example sets %d keys; it should show the common ones", len(l.from))
	}
}

// TestConfigDocListsEveryKey: docs/configuration.md has a row for every
// serve flag, with its SURGE_* variable and whether SIGHUP applies it
// live, as reload does. A new flag fails here until its row is added.
func TestConfigDocListsEveryKey(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// | `key` | `SURGE_KEY` | default | live | meaning |
	row := regexp.MustCompile("^\\| `([a-z0-9-]+)` \\| `(SURGE_[A-Z0-9_]+)` \\| [^|]* \\| (yes|no|—) \\|")
	type entry struct{ env, live string }
	rows := map[string]entry{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			rows[m[1]] = entry{m[2], m[3]}
		}
	}
	fs := newFlagSet("serve", "", io.Discard)
	var c serveConfig
	c.register(fs)
	fs.VisitAll(func(fl *flag.Flag) {
		e, ok := rows[fl.Name]
		want := "no"
		switch {
		case slices.Contains(commandLineOnly, fl.Name):
			want = "—"
		case slices.Contains(liveKeys, fl.Name):
			want = "yes"
		}
		switch {
		case !ok:
			t.Errorf("docs/configuration.md has no row for --%s: add | `%s` | `%s` | default | %s | meaning |", fl.Name, fl.Name, envName(fl.Name), want)
		case e.env != envName(fl.Name) || e.live != want:
			t.Errorf("docs/configuration.md: %s: %s, live %s; want %s, live %s", fl.Name, e.env, e.live, envName(fl.Name), want)
		}
		delete(rows, fl.Name)
	})
	for name := range rows {
		t.Errorf("docs/configuration.md lists %s, which is no serve flag", name)
	}
	for _, k := range liveKeys {
		if fs.Lookup(k) == nil {
			t.Errorf("liveKeys names %s, which is no serve flag", k)
		}
	}
}

// TestRefusedConfigHidesSecrets: --print-config "doubles as a check of a
// file before a reload" and masks secrets "so the output can go into a
// ticket"; a refused reload logs its error. A secret written unquoted that
// YAML reads as a number (a numeric admin token or webhook secret) is
// refused, rightly, but the error quotes the secret itself, into the
// terminal, the ticket and the journal.
func TestRefusedConfigHidesSecrets(t *testing.T) {
	for key, secret := range map[string]string{
		"admin-token":            "4815162342108151",
		"payment-webhook-secret": "9007199254740993",
		"jwt-secret":             "31415926535897932384626433832795",
	} {
		cfg := writeConfig(t, "surge.yaml", key+": "+secret+"\n")
		code, stdout, stderr := runCLI(context.Background(), "serve", "--config", cfg, "--print-config")
		if code != 2 {
			t.Errorf("%s unquoted: exit %d, want 2", key, code)
		}
		// The YAML number as the parser printed it, whole or in part.
		if out := stdout + stderr; strings.Contains(out, secret[:12]) {
			t.Errorf("%s: the refusal shows the secret: %q", key, out)
		}
	}
}

// TestRefusedConfigListHidesSecrets: the twin of
// TestRefusedConfigHidesSecrets for the other refusal of a secret's
// value: payment-webhook-secret is comma-separated (a rotation holds two),
// so a file may give it as a YAML list; an item holding a comma is
// refused, rightly, but the error quotes the item, the secrets
// themselves, into the terminal, --print-config's ticket and the journal.
func TestRefusedConfigListHidesSecrets(t *testing.T) {
	const old, next = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
	for name, body := range map[string]string{
		"surge.yaml": "payment-webhook-secret:\n  - \"" + old + "," + next + "\"\n",
		// A nested list: its item is the two secrets joined.
		"surge.toml": "payment-webhook-secret = [[\"" + old + "\", \"" + next + "\"]]\n",
	} {
		cfg := writeConfig(t, name, body)
		code, stdout, stderr := runCLI(context.Background(), "serve", "--config", cfg, "--print-config")
		if code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
		if out := stdout + stderr; strings.Contains(out, old) || strings.Contains(out, next) {
			t.Errorf("%s: the refusal shows the secrets: %q", name, out)
		}
	}
}

// TestConfigRefusesAddressStartRefuses: a listen address no start can
// listen on (a port that is no number or service, or above 65535) is
// refused when the file is loaded, as every bad value is: --print-config
// "refuses whatever a start would refuse", and SIGHUP, which loads the
// file the same way, must not answer "config reloaded" for a file the
// next restart or upgrade cannot start with.
func TestConfigRefusesAddressStartRefuses(t *testing.T) {
	for _, body := range []string{
		"debug-addr: \"127.0.0.1:notaport\"\n",
		"admin-addr: \"127.0.0.1:99999\"\n",
		"http-addr: \"localhost\"\n",
		// Cluster URLs the start cannot parse (the other one valid).
		"redis-url: \"http://127.0.0.1:6379\"\npostgres-url: \"postgres://127.0.0.1:5432/test\"\n",
		"postgres-url: \"postgres://127.0.0.1:notaport/test\"\nredis-url: \"redis://127.0.0.1:6379\"\n",
	} {
		t.Run(body, func(t *testing.T) {
			p := writeConfig(t, "surge.yaml", body+"admin-token: config-address-admin-token\n")
			key := body[:strings.Index(body, ":")]
			// The start refuses it (the API on a free port, unless the
			// file's http-addr is the point).
			args := []string{"serve", "--config", p, "--data-dir", filepath.Join(t.TempDir(), "data")}
			if key != "http-addr" {
				args = append(args, "--http-addr", "127.0.0.1:0")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code, _, stderr := runCLI(ctx, args...)
			if code == 0 {
				t.Fatalf("surge serve with %q started (exit 0); want refused", body)
			}
			// The file check of --print-config and of SIGHUP.
			code, _, _ = runCLI(context.Background(), "serve", "--config", p, "--print-config")
			if _, err := loadServeConfig([]string{"--config", p}, io.Discard); err == nil || code != 2 {
				t.Errorf("%s: a start refuses it (exit 1: %s), but loading the file for --print-config and SIGHUP accepts it (exit %d, err %v); want refused naming --%s",
					strings.TrimSpace(body), lastLine(stderr), code, err, key)
			} else if !strings.Contains(err.Error(), key) {
				t.Errorf("the refusal %q does not name --%s", err, key)
			}
		})
	}
}

// lastLine is the last line of s that is not empty.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
