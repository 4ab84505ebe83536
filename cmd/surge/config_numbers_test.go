package main

import (
	"io"
	"strings"
	"testing"
)

// TestConfigNumberMeansWhatCommandLineSays: a number in the config file
// means what the same text means on the command line, or the file is
// refused naming the key. YAML 1.1 habits read `rate-limit-ip: 010` as
// octal 8 and `0x10` as 16, where `--rate-limit-ip 010` is 10 and
// `--rate-limit-ip 0x10` is refused: an operator copying a value between
// the unit's flags and the file got another limit without a word.
func TestConfigNumberMeansWhatCommandLineSays(t *testing.T) {
	for _, tc := range []struct{ key, text string }{
		{"rate-limit-ip", "010"},
		{"rate-limit-ip", "0x10"},
		{"rate-limit-ip", "0o10"},
		{"rate-limit-ip", "1_000"},
		{"rate-limit-buyer", "07"},
		{"rate-limit-ip", "10"},
		{"rate-limit-ip", "2.5"},
		{"max-batch", "0100"},
		{"max-batch", "100"},
	} {
		t.Run(tc.key+"="+tc.text, func(t *testing.T) {
			flagValue := func(args ...string) (string, error) {
				l, err := loadServeConfig(append(args, "--data-dir", t.TempDir()), io.Discard)
				if err != nil {
					return "", err
				}
				return l.fs.Lookup(tc.key).Value.String(), nil
			}
			cli, cliErr := flagValue("--" + tc.key + "=" + tc.text)
			for _, body := range []string{tc.key + ": " + tc.text + "\n", tc.key + ": \"" + tc.text + "\"\n"} {
				file, err := flagValue("--config", writeConfig(t, "surge.yaml", body))
				switch {
				case err != nil && (tc.text == "10" || tc.text == "2.5" || tc.text == "100"):
					t.Errorf("file %q: a decimal number refused: %v", body, err)
				case err != nil:
					if !strings.Contains(err.Error(), `key "`+tc.key+`"`) {
						t.Errorf("file %q refused without naming the key: %v", body, err)
					}
				case cliErr != nil:
					t.Errorf("file %q read as %s, but the command line refuses --%s %s (%v)", body, file, tc.key, tc.text, cliErr)
				case file != cli:
					t.Errorf("file %q read as %s, the command line's --%s %s as %s", body, file, tc.key, tc.text, cli)
				}
			}
		})
	}
}
