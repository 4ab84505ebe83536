package dashboard

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/surgehq/surge/servicetest"
)

// TestRefusedSignInsLogged: a wrong admin token posted to the sign-in
// form was answered 401 and logged nowhere, so someone guessing the
// token went unseen. The first refusal is logged at warn level at once,
// with the address it came from; a burst of them writes no line each (a
// guesser would flood the log) but is counted in the next line.
func TestRefusedSignInsLogged(t *testing.T) {
	logs := &servicetest.Records{Level: slog.LevelWarn}
	_, srv := newTestServer(t, Config{Logger: slog.New(logs)})
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(token string) int {
		resp, _ := do(t, &c, "POST", srv.URL+"/dashboard/login", "", strings.NewReader(url.Values{"token": {token}}.Encode()))
		return resp.StatusCode
	}
	for i := range 5 {
		if code := post("guess-" + string(rune('a'+i))); code != http.StatusUnauthorized {
			t.Fatalf("a wrong token's sign-in answered %d, want 401", code)
		}
	}
	refused := logs.Named("dashboard sign-in refused")
	if len(refused) != 1 {
		t.Fatalf("5 refused sign-ins in a burst logged %d lines %v, want 1 at once", len(refused), refused)
	}
	attrs := map[string]string{}
	refused[0].Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	if !strings.HasPrefix(attrs["remote_addr"], "127.0.0.1:") {
		t.Errorf("the refused sign-in's line names no remote_addr: %v", attrs)
	}
	for k, v := range attrs {
		if strings.Contains(v, "guess-") {
			t.Errorf("the refused sign-in's line logs the token tried (%s=%s)", k, v)
		}
	}
	if code := post(testToken); code != http.StatusSeeOther {
		t.Fatalf("the admin token's sign-in answered %d, want 303", code)
	}
	if n := len(logs.Named("dashboard sign-in refused")); n != 1 {
		t.Errorf("a good sign-in logged a refusal (%d lines)", n)
	}
}
