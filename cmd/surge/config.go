package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	yamlv3 "go.yaml.in/yaml/v3"

	surgehttp "github.com/surgehq/surge/http"
)

// Where a setting's value came from, as --print-config shows it.
const (
	fromDefault = "default"
	fromFile    = "file"
	fromEnv     = "env"
	fromFlag    = "flag"
)

// Keys that only make sense on the command line: a file naming another
// file, or asking to print itself, would be a riddle.
var commandLineOnly = []string{"config", "print-config"}

// loaded is serve's effective configuration and how it was reached.
type loaded struct {
	c    serveConfig
	fs   *flagSet
	from map[string]string // flag name: fromDefault, fromFile, …
	// shadowed are the file's keys that a SURGE_* variable or a flag
	// overrides with another value: what the file says of them has no
	// effect, at start or on SIGHUP (warnShadowed).
	shadowed []shadow
}

// shadow is a key of the config file and what overrides it (a flag or a
// SURGE_* variable, as the operator writes it).
type shadow struct{ key, by string }

// secretFileKeys are the secrets that may also be read from a file, the
// key with "-file" appended (readSecrets).
var secretFileKeys = []string{"admin-token", "jwt-secret", "jwt-previous-secret", "payment-webhook-secret", "waiting-room-secret"}

// sourceRank orders where a value came from: a later source overrides.
var sourceRank = map[string]int{fromDefault: 0, fromFile: 1, fromEnv: 2, fromFlag: 3}

// twoSpellings are the settings given by either of two keys: a secret and
// its -file (secretFileKeys), and the buyers' key set, from a JWKS file or
// a URL.
func twoSpellings() [][2]string {
	pairs := [][2]string{{"jwks-file", "jwks-url"}}
	for _, name := range secretFileKeys {
		pairs = append(pairs, [2]string{name, name + "-file"})
	}
	return pairs
}

// oneSpelling resolves a setting given in one source in one spelling and
// in another in the other (twoSpellings): the later source wins, as for
// any key, and the earlier one's spelling is cleared (a file key so
// overridden is named by warnShadowed). Given both in one source, they
// are left for validate to refuse.
func (l *loaded) oneSpelling(inFile map[string]string) {
	for _, pair := range twoSpellings() {
		if l.fs.Lookup(pair[0]).Value.String() == "" || l.fs.Lookup(pair[1]).Value.String() == "" {
			continue
		}
		win, lose := pair[0], pair[1]
		if sourceRank[l.from[lose]] > sourceRank[l.from[win]] {
			win, lose = lose, win
		}
		if l.from[win] == l.from[lose] {
			continue
		}
		_ = l.fs.Set(lose, "")
		if _, ok := inFile[lose]; ok && l.from[lose] == fromFile {
			by := "--" + win
			if l.from[win] == fromEnv {
				by = envName(win)
			}
			l.shadowed = append(l.shadowed, shadow{key: lose, by: by})
		}
		l.from[lose] = l.from[win]
	}
}

// loadServeConfig reads serve's settings: the defaults, then the file of
// --config (or SURGE_CONFIG), then SURGE_* variables, then the command
// line, each overriding the one before; and validates them. Every flag
// register defines is a key of the file: a flag added there needs nothing
// here. SIGHUP runs it again with the same arguments.
func loadServeConfig(args []string, stdout io.Writer) (*loaded, error) {
	l := &loaded{c: newServeConfig(), fs: newFlagSet("serve", "surge serve [flags]", stdout), from: map[string]string{}}
	l.c.register(l.fs)
	// The command line alone first: it may name the file, and its
	// mistakes are reported before anything is read.
	if err := l.fs.parseArgs(args); err != nil {
		return nil, err
	}
	if l.fs.NArg() > 0 {
		return nil, errUsage{fmt.Sprintf("serve: unexpected argument %q (run 'surge serve --help')", l.fs.Arg(0))}
	}
	var onCommandLine []string
	l.fs.Visit(func(f *flag.Flag) { onCommandLine = append(onCommandLine, f.Name) })
	path := l.c.configFile
	if v, ok := os.LookupEnv(envName("config")); ok && !slices.Contains(onCommandLine, "config") {
		path = v
	}
	var inFile map[string]string
	if path != "" {
		var err error
		if inFile, err = applyFile(l.fs, path); err != nil {
			return nil, errUsage{"serve: " + err.Error()}
		}
		for k := range inFile {
			l.from[k] = fromFile
		}
	}
	fromEnvVars, err := l.fs.applyEnv()
	if err != nil {
		return nil, err
	}
	for _, k := range fromEnvVars {
		l.from[k] = fromEnv
	}
	// Parsed before, so it cannot fail now.
	if err := l.fs.parseArgs(args); err != nil {
		return nil, err
	}
	for _, k := range onCommandLine {
		l.from[k] = fromFlag
	}
	for k, v := range inFile {
		// Before validate, which replaces a secret by its file's content.
		if l.from[k] != fromFile && l.fs.Lookup(k).Value.String() != v {
			by := "--" + k
			if l.from[k] == fromEnv {
				by = envName(k)
			}
			l.shadowed = append(l.shadowed, shadow{key: k, by: by})
		}
	}
	l.oneSpelling(inFile)
	slices.SortFunc(l.shadowed, func(a, b shadow) int { return strings.Compare(a.key, b.key) })
	l.c.configFile = path
	if err := l.c.validate(); err != nil {
		return nil, err
	}
	return l, nil
}

// warnShadowed logs each key of the file that a SURGE_* variable or a flag
// overrides with another value: an operator who edits it in the file and
// sends SIGHUP would otherwise see nothing change, and no reason why (the
// container image and the Helm chart set some variables themselves).
func (l *loaded) warnShadowed(log *slog.Logger) {
	for _, s := range l.shadowed {
		log.Warn("config file: this key is overridden, so the file's value has no effect, at start or on reload; set it in one place",
			"file", l.c.configFile, "key", s.key, "overridden_by", s.by)
	}
}

// applyFile sets the flags the file at path names, and returns their
// names with their values as the flags print them. A key that is no flag,
// or a value its flag refuses, refuses the whole file: nothing is set.
func applyFile(fs *flagSet, path string) (map[string]string, error) {
	var p koanf.Parser
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		p = oneDocYAML{yaml.Parser()}
	case ".toml":
		p = toml.Parser()
	default:
		return nil, fmt.Errorf("config file %s: the name must end in .yaml, .yml or .toml (its format)", path)
	}
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), p); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	// Check every key before setting any: flag.Value.Set may leave a
	// value half set, and a refused file must change nothing. Values are
	// checked on a scratch copy of the flags.
	scratch := flag.NewFlagSet("check", flag.ContinueOnError)
	scratch.SetOutput(io.Discard)
	var c serveConfig
	c.register(&flagSet{FlagSet: scratch})
	vals := map[string]string{}
	for _, key := range k.Keys() {
		if slices.Contains(commandLineOnly, key) {
			// A flag of serve's --help, so "unknown" would mislead.
			how := "pass --print-config on the command line (or SURGE_PRINT_CONFIG=true)"
			if key == "config" {
				how = "a file cannot name another; pass --config or SURGE_CONFIG"
			}
			return nil, fmt.Errorf("config file %s: key %q is command-line only, not a key of the file: %s", path, key, how)
		}
		if fs.Lookup(key) == nil {
			return nil, fmt.Errorf("config file %s: unknown key %q (the keys are serve's flag names, e.g. rate-limit-ip; see 'surge serve --help')", path, key)
		}
		raw := k.Get(key)
		v, err := settingText(raw)
		if err != nil {
			return nil, fmt.Errorf("config file %s: key %q: %w", path, key, err)
		}
		if n := unquoted(raw); n != nil && textSetting(scratch.Lookup(key)) {
			// The parser read 0777 as 511 and 0x1F as 31: text must be
			// what the file says, so an unquoted number is refused.
			// The number is shown unless the key holds a secret: the
			// error goes to the terminal, a ticket, the journal.
			return nil, fmt.Errorf("config file %s: key %q is text: write its value in quotes (the file's %s was read as a %T)", path, key, masked(key, fmt.Sprint(n)), n)
		}
		if err := scratch.Set(key, v); err != nil {
			return nil, fmt.Errorf("config file %s: key %q: invalid value %q: %w", path, key, masked(key, v), explain(scratch.Lookup(key).Value, err))
		}
		vals[key] = v
	}
	set := make(map[string]string, len(vals))
	for key, v := range vals {
		_ = fs.Set(key, v) // accepted by the scratch copy above
		set[key] = scratch.Lookup(key).Value.String()
	}
	return set, nil
}

// oneDocYAML is koanf's YAML parser for a file of one document: its
// yaml.Unmarshal reads the first and drops the rest, so the keys after a
// line "---" were silently not applied, at start and on SIGHUP. Empty
// documents (a "---" at the end) hold no key and are let be.
type oneDocYAML struct{ koanf.Parser }

func (p oneDocYAML) Unmarshal(b []byte) (map[string]any, error) {
	d := yamlv3.NewDecoder(bytes.NewReader(b))
	var doc yamlv3.Node
	if err := d.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := decimalNumbers(&doc); err != nil {
		return nil, err
	}
	var out map[string]any
	if doc.Kind != 0 { // 0: no document at all
		if err := doc.Decode(&out); err != nil {
			return nil, err
		}
	}
	for {
		var more any
		switch err := d.Decode(&more); {
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return nil, err
		case more != nil:
			return nil, errors.New(`it holds more than one YAML document (a line "---" starts another, whose keys would not apply): write every key in one`)
		}
	}
}

// decimalNumber is a number as the command line reads it whatever the
// flag: decimal digits without a leading zero, with an optional sign,
// fraction and exponent.
var decimalNumber = regexp.MustCompile(`^[-+]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$`)

// decimalNumbers refuses an unquoted number of the top-level keys (or of
// their lists) written other than in decimal digits: YAML reads 010 as
// octal 8, 0x10 as 16 and 1_000 as 1000, where the command line and the
// SURGE_* variables read --rate-limit-ip 010 as 10 and refuse 0x10, so the
// same text meant two things. A quoted value is read as the command line
// reads it.
func decimalNumbers(doc *yamlv3.Node) error {
	if doc.Kind != yamlv3.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yamlv3.MappingNode {
		return nil // no keys, or no mapping: the decoder says what is wrong
	}
	m := doc.Content[0].Content
	for i := 0; i+1 < len(m); i += 2 {
		key, v := m[i].Value, m[i+1]
		items := []*yamlv3.Node{v}
		if v.Kind == yamlv3.SequenceNode {
			items = v.Content
		}
		for _, n := range items {
			if n.Kind != yamlv3.ScalarNode || n.Style != 0 || decimalNumber.MatchString(n.Value) {
				continue
			}
			if tag := n.ShortTag(); tag != "!!int" && tag != "!!float" {
				continue
			}
			return fmt.Errorf("key %q: %s is not a decimal number (YAML reads a leading 0 as octal, 0x as hex, and drops _, "+
				"unlike the command line): write it in decimal digits, or in quotes to have it read as the command line reads it",
				key, masked(key, n.Value))
		}
	}
	return nil
}

// textSetting reports whether f takes free text (a string flag), whose
// value a file must quote when it looks like a number or a boolean.
func textSetting(f *flag.Flag) bool {
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, text := g.Get().(string)
	return text
}

// unquoted returns the number or boolean a parser made of v or of an
// item of v's list, nil when there is none.
func unquoted(v any) any {
	switch v := v.(type) {
	case bool, int, int64, uint64, float64:
		return v
	case []any:
		for _, e := range v {
			if n := unquoted(e); n != nil {
				return n
			}
		}
	}
	return nil
}

// settingText turns a value the YAML or TOML parser produced into the
// text its flag parses, so a file accepts exactly what the command line
// does (durations as "5s", lists as comma-separated text or a list).
func settingText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case nil:
		return "", nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := settingText(e)
			if err != nil {
				return "", err
			}
			if strings.Contains(s, ",") {
				// Numbered, not quoted: the item may be a secret.
				return "", fmt.Errorf("list item %d holds a comma", i+1)
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("a %T is not a setting (use a string, number, boolean or list)", v)
}

// printConfig writes the effective configuration as YAML, a valid
// --config file, with each value's origin, and secrets masked.
func printConfig(w io.Writer, l *loaded) error {
	fmt.Fprintln(w, "# surge serve: effective configuration (secrets masked)")
	var err error
	l.fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(commandLineOnly, f.Name) || err != nil {
			return
		}
		from := l.from[f.Name]
		if from == "" {
			from = fromDefault
		}
		v := f.Value.String()
		if file := l.fs.Lookup(f.Name + "-file"); file != nil && file.Value.String() != "" {
			// Read from its file (validate), which the output names: both
			// would be refused.
			v = ""
		}
		_, err = fmt.Fprintf(w, "%s: %s # %s\n", f.Name, yamlValue(f, masked(f.Name, v)), from)
	})
	return err
}

// yamlValue writes a flag's value as a YAML scalar of its type.
func yamlValue(f *flag.Flag, v string) string {
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool, int, int64, uint, uint64, float64:
			return v
		}
	}
	return strconv.Quote(v)
}

// Secrets are recognised by name, so a flag added later (a webhook
// secret, ticket keys) is masked with no more code: these words in a
// name mark a secret, unless the name ends in -file (a path is no
// secret).
var secretWords = []string{"secret", "token", "password", "keys"}

// dsnPassword is the password of a key=value connection string
// (PostgreSQL's "host=… password=…").
var dsnPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// mask is what --print-config shows of a secret: url.URL.Redacted's.
const mask = "xxxxx"

// masked returns what --print-config may show of a setting's value:
// secrets masked (empty ones stay empty, which says none is set), and
// the passwords in URLs and connection strings.
func masked(name, v string) string {
	if v == "" {
		return v
	}
	if !strings.HasSuffix(name, "-file") {
		for _, w := range secretWords {
			if strings.Contains(name, w) {
				return mask
			}
		}
	}
	// A --jwks-url without "://" (its scheme left out or mistyped) still
	// carries its query to the fetch, whose errors show it masked: so here.
	if strings.HasSuffix(name, "-url") && (strings.Contains(v, "://") || name == "jwks-url") {
		// NATS takes a comma-separated list of servers, and a user with
		// no password as a token.
		nats := name == "nats-url"
		parts := []string{v}
		if nats {
			parts = strings.Split(v, ",")
		}
		for i, p := range parts {
			u, err := url.Parse(p)
			if err != nil {
				return mask // unparsable: it may hold anything
			}
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), mask)
			} else if nats && u.User != nil {
				u.User = url.User(mask)
			}
			if q := u.Query(); name == "jwks-url" && u.RawQuery != "" {
				// A key server may take its credential in the query
				// (?access_token=…): shown as the fetch's errors and logs
				// show it, judged by the raw query, not by what parsed.
				u.RawQuery = surgehttp.MaskedQuery(u.RawQuery)
			} else if q.Has("password") {
				q.Set("password", mask)
				u.RawQuery = q.Encode()
			}
			parts[i] = u.String()
		}
		v = strings.Join(parts, ",")
	}
	return dsnPassword.ReplaceAllString(v, "${1}"+mask)
}
