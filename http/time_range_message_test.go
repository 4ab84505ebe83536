package http_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestTimeRangeMessageSaysWhatIsChecked: a time that is RFC 3339 but
// outside years 0001-9999 in UTC (docs/api.md: RFC 3339 has a year 0000,
// gRPC's Timestamp does not) was refused with "must be an RFC 3339 time
// such as 2026-11-23T10:00:00Z": the client, who sent one, was told to
// fix its format, not the year.
func TestTimeRangeMessageSaysWhatIsChecked(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":1}`)
	cases := []struct{ method, path, body string }{
		{"POST", "/v1/sales", `{"name":"x","stock":1,"starts_at":"0000-06-01T00:00:00Z"}`},
		{"POST", "/v1/sales", `{"name":"x","stock":1,"starts_at":"0001-01-01T00:00:00+00:01"}`},
		{"POST", "/v1/sales", `{"name":"x","stock":1,"ends_at":"9999-12-31T23:59:59-23:00"}`},
		{"PATCH", "/v1/sales/s", `{"ends_at":"9999-12-31T23:59:59-23:00"}`},
	}
	for _, c := range cases {
		r := e.do(t, c.method, c.path, c.body, asAdmin())
		wantError(t, r, http.StatusBadRequest, "invalid_request")
		if msg := string(r.body); !strings.Contains(msg, "0001") || !strings.Contains(msg, "9999") {
			t.Errorf("%s %s %s: %s, want the message to name the years 0001 to 9999", c.method, c.path, c.body, msg)
		}
	}
	// A malformed time keeps the format's message.
	r := e.do(t, "POST", "/v1/sales", `{"name":"x","stock":1,"starts_at":"tomorrow"}`, asAdmin())
	wantError(t, r, http.StatusBadRequest, "invalid_request")
	if msg := string(r.body); !strings.Contains(msg, "RFC 3339") {
		t.Errorf("a malformed time: %s, want the message to ask for RFC 3339", msg)
	}
}
