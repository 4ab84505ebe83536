package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// surge sale archive ID, and surge sale list over more sales than one page
// (issue 9, item 12): the list follows the cursors, --archived lists the
// archived ones.
func TestSaleArchiveAndListPages(t *testing.T) {
	ctx, c := cliServer(t)
	past := func(h int) *string { return new(api.FormatTime(time.Date(2025, 1, 1, h, 0, 0, 0, time.UTC))) }
	if _, err := c.CreateSale(ctx, api.NewSale{ID: new("gone"), Name: new("Gone"), Stock: new(int64(3)), StartsAt: past(0), EndsAt: past(1)}); err != nil {
		t.Fatal(err)
	}
	const n = 105 // more than the server's page of 100
	for i := range n {
		if _, err := c.CreateSale(ctx, api.NewSale{ID: new(fmt.Sprintf("s%03d", i)), Name: new("Live"), Stock: new(int64(1))}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(args ...string) []api.Sale {
		t.Helper()
		code, stdout, stderr := runCLI(ctx, append([]string{"sale", "list", "--json"}, args...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("sale list %v: %d, stderr %q", args, code, stderr)
		}
		var sales []api.Sale
		decodeJSON(t, stdout, &sales)
		return sales
	}
	if got := list(); len(got) != n+1 {
		t.Fatalf("sale list: %d sales, want %d", len(got), n+1)
	}
	if got := list("--archived"); len(got) != 0 {
		t.Fatalf("sale list --archived before archiving: %+v", got)
	}

	for range 2 { // archiving again answers the same
		code, stdout, stderr := runCLI(ctx, "sale", "archive", "gone")
		if code != 0 || stderr != "" {
			t.Fatalf("sale archive: %d, stderr %q", code, stderr)
		}
		var s api.Sale
		decodeJSON(t, stdout, &s)
		if s.ID != "gone" || !s.Archived || s.Status != "ended" || s.Remaining != 3 {
			t.Errorf("sale archive printed %+v", s)
		}
	}
	if got := list(); len(got) != n || got[0].ID != "s000" {
		t.Errorf("sale list after archiving: %d sales from %s, want %d from s000", len(got), got[0].ID, n)
	}
	if got := list("--archived"); len(got) != 1 || got[0].ID != "gone" || !got[0].Archived {
		t.Errorf("sale list --archived: %+v", got)
	}

	// Errors of the server: exit 1, one line on stderr.
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"live sale", []string{"sale", "archive", "s000"}, "not_archivable (HTTP 409)"},
		{"unknown sale", []string{"sale", "archive", "nope"}, "sale_not_found (HTTP 404)"},
		{"wrong token", []string{"sale", "archive", "gone", "--admin-token", "wrong-token-wrong-token"}, "unauthenticated (HTTP 401)"},
	} {
		code, stdout, stderr := runCLI(ctx, tt.args...)
		if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("%s: %d, stdout %q, stderr %q; want 1 and one line with %q", tt.name, code, stdout, stderr, tt.wantErr)
		}
	}
	// Bad usage: exit 2.
	for _, args := range [][]string{{"sale", "archive"}, {"sale", "archive", "a", "b"}, {"sale", "archive", "a", "--bogus"}} {
		if code, _, stderr := runCLI(cancelled(), args...); code != 2 || !strings.Contains(stderr, "sale archive:") {
			t.Errorf("%v: %d, stderr %q; want 2 and a sale archive: message", args, code, stderr)
		}
	}
}

// surge sale create makes a waiting-room sale with --admit-per-second,
// --queue and --ticket-seconds (issue 10 item 5); the three go together.
func TestSaleCreateWaitingRoom(t *testing.T) {
	ctx, c := cliServer(t)
	code, stdout, stderr := runCLI(ctx, "sale", "create", "--id", "room", "--name", "Room", "--stock", "5",
		"--admit-per-second", "20", "--queue", "lottery", "--ticket-seconds", "120")
	if code != 0 || stderr != "" {
		t.Fatalf("sale create with a waiting room: %d, stderr %q", code, stderr)
	}
	var s api.Sale
	decodeJSON(t, stdout, &s)
	want := api.WaitingRoom{AdmitPerSecond: 20, Policy: "lottery", TicketSeconds: 120}
	if s.ID != "room" || s.WaitingRoom == nil || *s.WaitingRoom != want {
		t.Errorf("created %+v with waiting room %+v, want %+v", s, s.WaitingRoom, want)
	}
	if got, err := c.Sale(ctx, "room"); err != nil || got.WaitingRoom == nil || *got.WaitingRoom != want {
		t.Errorf("read back %+v (%v)", got, err)
	}

	// A waiting room needs all three flags: exit 2 before any request.
	for _, args := range [][]string{
		{"--admit-per-second", "20"},
		{"--queue", "fifo", "--ticket-seconds", "60"},
		{"--admit-per-second", "20", "--queue", "fifo"},
	} {
		args = append([]string{"sale", "create", "--name", "X", "--stock", "1"}, args...)
		if code, _, stderr := runCLI(cancelled(), args...); code != 2 || !strings.Contains(stderr, "--admit-per-second, --queue and --ticket-seconds") {
			t.Errorf("%v: %d, stderr %q; want 2 and the three flags named", args, code, stderr)
		}
	}
	// A bad value is the server's 400, with the API's field name.
	code, _, stderr = runCLI(ctx, "sale", "create", "--name", "X", "--stock", "1",
		"--admit-per-second", "20", "--queue", "random", "--ticket-seconds", "60")
	if code != 1 || !strings.Contains(stderr, `waiting_room.order must be "fifo" or "lottery"`) {
		t.Errorf("--queue random: %d, stderr %q", code, stderr)
	}
}

// TestSaleCreateRefusesStrayArguments: Go's flag package stops at the first
// argument that is no flag, so `surge sale create --stock 1000 --name Phone
// drop --per-user-limit 2 --starts-at T` (a name left unquoted) read the name
// "Phone" and nothing after "drop": it created a sale with a limit of 1 that
// was live at once instead of at T, and exited 0. Every other command refuses
// a stray argument (README: bad flags print one line and exit 2); so must
// this one, before it creates anything.
func TestSaleCreateRefusesStrayArguments(t *testing.T) {
	ctx, c := cliServer(t)
	starts := api.FormatTime(time.Now().Add(24 * time.Hour).UTC())
	code, stdout, stderr := runCLI(ctx, "sale", "create", "--id", "stray", "--stock", "1000",
		"--name", "Phone", "drop", "--per-user-limit", "2", "--starts-at", starts)
	if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, `"drop"`) {
		t.Errorf("sale create with the stray argument \"drop\": exit %d, stdout %q, stderr %q; want exit 2 and one line naming \"drop\"",
			code, stdout, stderr)
	}
	s, err := c.Sale(ctx, "stray")
	var ae *client.APIError
	switch {
	case err == nil:
		t.Errorf("the refused command created sale %q anyway: name %q, per_user_limit %d, starts_at %s, status %s; want no sale (the command line asked for a limit of 2 and a start at %s)",
			s.ID, s.Name, s.PerUserLimit, s.StartsAt, s.Status, starts)
	case !errors.As(err, &ae) || ae.Status != http.StatusNotFound:
		t.Errorf("reading sale stray: %v; want 404 sale_not_found", err)
	}
}

// TestSaleListPriceInCurrencyUnits: the table printed every price_cents as
// hundredths, so a sale of 1000 yen (price_cents counts the currency's
// minor unit: yen for JPY, fils for KWD) was listed at "10.00 JPY" and one
// of 12.345 dinars at "123.45 KWD".
func TestSaleListPriceInCurrencyUnits(t *testing.T) {
	ctx, c := cliServer(t)
	want := map[string]string{"yen": "1000 JPY", "kwd": "12.345 KWD", "eur": "129.99 EUR"}
	for id, p := range map[string]struct {
		cents    int64
		currency string
	}{"yen": {1000, "JPY"}, "kwd": {12345, "KWD"}, "eur": {12999, "EUR"}} {
		if _, err := c.CreateSale(ctx, api.NewSale{ID: new(id), Name: new(id), Stock: new(int64(5)), PriceCents: new(p.cents), Currency: new(p.currency)}); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCLI(ctx, "sale", "list")
	if code != 0 || stderr != "" {
		t.Fatalf("sale list: exit %d, stderr %q", code, stderr)
	}
	for line := range strings.Lines(stdout) {
		id, _, _ := strings.Cut(line, " ")
		if w, ok := want[id]; ok {
			delete(want, id)
			if !strings.Contains(line, "  "+w+"  ") {
				t.Errorf("sale list shows sale %s as %q; want its price as %q", id, strings.TrimSpace(line), w)
			}
		}
	}
	for id := range want {
		t.Errorf("sale list lacks sale %s:\n%s", id, stdout)
	}
}

// TestSaleCreateSendsExplicitZeros: `surge sale create` took a flag given
// as 0 for a flag not given, so `--per-user-limit 0` (a limit of none, as
// an operator might think) created a sale with the server's default of 1,
// and `--hold-seconds 0` one with 900, exit 0 both: the value typed was
// never checked. The API refuses both (per_user_limit 1…stock,
// hold_seconds 1…604800); so must the command, and create nothing, as
// `surge sale update --stock 0` already does. A waiting room admitting 0
// buyers a second was told it lacked --admit-per-second.
func TestSaleCreateSendsExplicitZeros(t *testing.T) {
	ctx, c := cliServer(t)
	for _, tc := range []struct{ id, flag string }{
		{"zero-limit", "--per-user-limit"},
		{"zero-hold", "--hold-seconds"},
		{"zero-admission", "--admit-per-second"},
	} {
		args := []string{"sale", "create", "--id", tc.id, "--name", "Zero", "--stock", "5", tc.flag, "0"}
		if tc.flag == "--admit-per-second" {
			args = append(args, "--queue", "fifo", "--ticket-seconds", "60")
		}
		code, stdout, stderr := runCLI(ctx, args...)
		if code != 1 || !oneLine(stderr) || !strings.Contains(stderr, "invalid_request (HTTP 400)") {
			t.Errorf("surge %s: exit %d, stdout %q, stderr %q; want exit 1 and the server's 400 invalid_request",
				strings.Join(args, " "), code, stdout, stderr)
		}
		s, err := c.Sale(ctx, tc.id)
		var ae *client.APIError
		switch {
		case err == nil:
			t.Errorf("%s 0 created sale %s anyway: per_user_limit %d, hold_seconds %d, stock %d; want no sale", tc.flag, s.ID, s.PerUserLimit, s.HoldSeconds, s.Stock)
		case !errors.As(err, &ae) || ae.Status != http.StatusNotFound:
			t.Errorf("reading sale %s: %v; want 404 sale_not_found", tc.id, err)
		}
	}
}

// cliServer starts surge serve on a new data directory, points the CLI at
// it (SURGE_SERVER, SURGE_ADMIN_TOKEN), and returns a context for the
// test's calls and an admin client of the server.
func cliServer(t *testing.T, flags ...string) (context.Context, *client.Client) {
	t.Helper()
	const token = "cli-test-admin-token"
	t.Setenv("SURGE_ADMIN_TOKEN", token)
	srv := startServe(t, append([]string{"--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "warn"}, flags...)...)
	t.Setenv("SURGE_SERVER", srv.base)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx, client.New(srv.base, token)
}
