package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/v2"
)

// freshServeFlags is serve's flag set with every default, as
// loadServeConfig makes it.
func freshServeFlags() *flagSet {
	fs := newFlagSet("serve", "surge serve [flags]", io.Discard)
	c := newServeConfig()
	c.register(fs)
	return fs
}

func flagValues(fs *flagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

// secretTexts returns the texts a file gives secret settings (those
// --print-config masks), each item of a list, and a list's items joined,
// as the parser read them; short ones are left out (a refusal may
// well contain "a" or "10").
func secretTexts(body []byte, isTOML bool) []string {
	var p koanf.Parser = yaml.Parser()
	if isTOML {
		p = toml.Parser()
	}
	m, err := p.Unmarshal(body)
	if err != nil {
		return nil
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case nil:
		default:
			s := fmt.Sprint(v)
			if len(s) >= 8 {
				out = append(out, s)
			}
			for _, part := range strings.Split(s, ",") {
				if part = strings.TrimSpace(part); len(part) >= 8 {
					out = append(out, part)
				}
			}
		}
	}
	for key, v := range m {
		if masked(key, "x") == mask {
			walk(v)
		}
	}
	return out
}

// FuzzConfigFile: a --config file (YAML or TOML) either is refused whole,
// changing no setting and quoting no secret it holds, or sets exactly
// the keys it names, and --print-config's output of the result loads
// back to the same settings (secrets aside, which it masks).
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []struct {
		body   string
		isTOML bool
	}{
		{"http-addr: 0.0.0.0:8080\ndata-dir: /var/lib/surge\nrate-limit-ip: 20\ntrusted-proxies: [10.0.0.0/8]\nlog-format: json\n", false},
		{"rate-limit-ip = 3\ndrain-delay = \"3s\"\ntrusted-proxies = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nshed = false\n", true},
		{"admin-token: 4815162342108151\n", false},
		{"payment-webhook-secret: [\"whsec_first_secret_0001\", \"whsec_second_secret_0002\"]\n", false},
		{"payment-webhook-secret = [\"whsec_first_secret_0001\", \"whsec_second_secret_0002\"]\n", true},
		{"jwt-secret: \"31415926535897932384626433832795\"\nredis-prefix: \"0777\"\n", false},
		{"postgres-url: postgres://u:hunter2hunter2@db:5432/x\nredis-url: redis://:pw@h:6379/0\n", false},
		{"rate-limit: {ip: 5}\n", false},
		{"node-id: ~\nshed: yes\nmax-batch: 0x10\n", false},
		{"cors-origins: [\"https://a.example\", \"https://b.example\"]\n", false},
	} {
		f.Add([]byte(seed.body), seed.isTOML)
	}
	f.Fuzz(func(t *testing.T, body []byte, isTOML bool) {
		name := "surge.yaml"
		if isTOML {
			name = "surge.toml"
		}
		dir := t.TempDir()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		fs := freshServeFlags()
		before := flagValues(fs)
		keys, err := applyFile(fs, path)
		after := flagValues(fs)
		if err != nil {
			for k, v := range before {
				if after[k] != v {
					t.Fatalf("refused file (%v) changed %s from %q to %q", err, k, v, after[k])
				}
			}
			msg := err.Error()
			for _, s := range secretTexts(body, isTOML) {
				if strings.Contains(msg, s) {
					t.Fatalf("the refusal shows the secret %q: %v", s, err)
				}
			}
			return
		}
		named := map[string]bool{}
		for k := range keys {
			named[k] = true
			if fs.Lookup(k) == nil || k == "config" || k == "print-config" {
				t.Fatalf("accepted key %q", k)
			}
		}
		for k, v := range before {
			if !named[k] && after[k] != v {
				t.Fatalf("key %s, not in the file, changed from %q to %q", k, v, after[k])
			}
		}
		// --print-config of what the file set, loaded back.
		l := &loaded{fs: fs, from: map[string]string{}}
		for _, k := range keys {
			l.from[k] = fromFile
		}
		var out bytes.Buffer
		if err := printConfig(&out, l); err != nil {
			t.Fatal(err)
		}
		back := filepath.Join(dir, "back.yaml")
		if err := os.WriteFile(back, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		fs2 := freshServeFlags()
		if _, err := applyFile(fs2, back); err != nil {
			t.Fatalf("--print-config's output does not load back: %v\n%s", err, out.String())
		}
		again := flagValues(fs2)
		for k, v := range after {
			if k == "config" || k == "print-config" || masked(k, v) != v {
				continue
			}
			if again[k] != v {
				t.Fatalf("key %s: %q, printed and read back as %q\nfile:\n%s\nprinted:\n%s", k, v, again[k], body, out.String())
			}
		}
	})
}
