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
	// An instant out of range is RFC 3339 as sent: its message names the
	// years, as the API's does (TestTimeRangeMessageSaysWhatIsChecked).
	const format, years = " must be an RFC 3339 time", " must lie between years 0001 and 9999 in UTC"
	for _, tt := range []struct{ v, want string }{
		{"2026-11-23T1:00:00Z", format},       // one-digit hour
		{"2026-11-23T10:00:00,5Z", format},    // comma before the fraction
		{"2026-11-23T10:00:00+24:00", format}, // offset hour 24
		{"2026-11-23T10:00:00-01:60", format}, // offset minute 60
		{"0001-01-01T00:30:00+01:00", years},  // before year 1 in UTC
		{"9999-12-31T23:30:00-01:00", years},  // after year 9999 in UTC
		{"0000-06-01T00:00:00Z", years},       // year 0000: RFC 3339, not the API's
	} {
		v := tt.v
		for _, args := range [][]string{
			{"sale", "create", "--name", "x", "--stock", "1", "--starts-at", v},
			{"sale", "create", "--name", "x", "--stock", "1", "--ends-at", v},
			{"sale", "update", "phone", "--ends-at", v},
		} {
			flag := args[len(args)-2]
			code, stdout, stderr := runCLI(cancelled(), args...)
			if code != 2 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, flag+tt.want) {
				t.Errorf("surge %s: exit %d, stderr %q; want exit 2 and one line saying %s%s, as the API refuses it",
					strings.Join(args, " "), code, stderr, flag, tt.want)
			}
		}
	}
}
