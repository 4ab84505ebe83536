package main

import (
	"strings"
	"testing"
)

// TestCLITimesAsStrictAsTheAPI: surge sale create --starts-at/--ends-at
// and sale update --ends-at checked times with time.Parse, which takes
// what the API refuses (api.ParseTime: a one-digit hour, a comma before
// the fraction, an offset of +24:00 or minute 60; an instant out of years
// 0001-9999 in UTC). Each must be refused before anything is sent: exit
// 2 and one line naming the flag, not the server's 400 (exit 1).
func TestCLITimesAsStrictAsTheAPI(t *testing.T) {
	// Nothing listens there: a time the CLI let through fails to connect.
	t.Setenv("SURGE_SERVER", "http://127.0.0.1:1")
	t.Setenv("SURGE_ADMIN_TOKEN", "times-test-admin-token")
	for _, v := range []string{
		"2026-11-23T1:00:00Z",       // one-digit hour
		"2026-11-23T10:00:00,5Z",    // comma before the fraction
		"2026-11-23T10:00:00+24:00", // offset hour 24
		"2026-11-23T10:00:00-01:60", // offset minute 60
		"0001-01-01T00:30:00+01:00", // before year 1 in UTC
		"9999-12-31T23:30:00-01:00", // after year 9999 in UTC
	} {
		for _, args := range [][]string{
			{"sale", "create", "--name", "x", "--stock", "1", "--starts-at", v},
			{"sale", "create", "--name", "x", "--stock", "1", "--ends-at", v},
			{"sale", "update", "phone", "--ends-at", v},
		} {
			flag := args[len(args)-2]
			code, stdout, stderr := runCLI(cancelled(), args...)
			if code != 2 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, flag+" must be an RFC 3339 time") {
				t.Errorf("surge %s: exit %d, stderr %q; want exit 2 and one line saying %s must be an RFC 3339 time, as the API refuses it",
					strings.Join(args, " "), code, stderr, flag)
			}
		}
	}
}
