package main

import (
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
)

// surge sale pause|resume|end|update ID (issue 12, "Steer a live sale"):
// each prints the changed sale; update sends only the flags given; the
// server's refusals exit 1 with one line, bad usage exits 2 before any
// request.
func TestSaleSteer(t *testing.T) {
	ctx, c := cliServer(t)
	if _, err := c.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(10)), PerUserLimit: new(int64(2))}); err != nil {
		t.Fatal(err)
	}
	steer := func(args ...string) api.Sale {
		t.Helper()
		code, stdout, stderr := runCLI(ctx, append([]string{"sale"}, args...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("sale %v: %d, stderr %q", args, code, stderr)
		}
		var s api.Sale
		decodeJSON(t, stdout, &s)
		return s
	}

	if s := steer("pause", "drop"); s.Status != "paused" {
		t.Errorf("sale pause printed %+v", s)
	}
	if s, err := c.Sale(ctx, "drop"); err != nil || s.Status != "paused" {
		t.Errorf("after sale pause: %+v (%v)", s, err)
	}
	if s := steer("resume", "drop"); s.Status != "live" {
		t.Errorf("sale resume printed %+v", s)
	}
	s := steer("update", "drop", "--stock", "25", "--name", "Bigger drop", "--per-user-limit", "1",
		"--hold-seconds", "120", "--ends-at", "2099-01-01T00:00:00Z")
	if s.Stock != 25 || s.Remaining != 25 || s.Name != "Bigger drop" || s.PerUserLimit != 1 || s.HoldSeconds != 120 ||
		s.EndsAt == nil || *s.EndsAt != "2099-01-01T00:00:00.000Z" || s.Status != "live" {
		t.Errorf("sale update printed %+v", s)
	}
	// Only the flags given change; --ends-at none removes the end.
	s = steer("update", "--ends-at", "none", "drop")
	if s.EndsAt != nil || s.Stock != 25 || s.Name != "Bigger drop" {
		t.Errorf("sale update --ends-at none printed %+v", s)
	}
	// A field's SURGE_* variable left in the environment (from a sale
	// create, say) is no flag given: it is refused, and nothing changes.
	t.Run("field from the environment", func(t *testing.T) {
		t.Setenv("SURGE_STOCK", "5")
		code, stdout, stderr := runCLI(ctx, "sale", "update", "drop", "--name", "Renamed")
		if code != 2 || stdout != "" || !strings.Contains(stderr, "SURGE_STOCK is set in the environment") {
			t.Errorf("sale update --name with SURGE_STOCK=5 set: %d, stdout %q, stderr %q; want 2 and a refusal naming SURGE_STOCK", code, stdout, stderr)
		}
		if s, err := c.Sale(ctx, "drop"); err != nil || s.Stock != 25 || s.Name != "Bigger drop" {
			t.Errorf("after sale update --name with SURGE_STOCK=5 set: stock %d, name %q (%v); want 25 and the name unchanged", s.Stock, s.Name, err)
		}
	})
	if s := steer("end", "drop"); s.Status != "ended" || s.EndsAt == nil {
		t.Errorf("sale end printed %+v", s)
	}

	// Errors of the server: exit 1, one line on stderr.
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"stock 0", []string{"sale", "update", "drop", "--stock", "0"}, "invalid_request (HTTP 400)"},
		{"unknown sale", []string{"sale", "pause", "nope"}, "sale_not_found (HTTP 404)"},
		{"wrong token", []string{"sale", "resume", "drop", "--admin-token", "wrong-token-wrong-token"}, "unauthenticated (HTTP 401)"},
	} {
		code, stdout, stderr := runCLI(ctx, tt.args...)
		if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("%s: %d, stdout %q, stderr %q; want 1 and one line with %q", tt.name, code, stdout, stderr, tt.wantErr)
		}
	}
	// Bad usage: exit 2.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"sale", "pause"}, "sale pause:"},
		{[]string{"sale", "resume", "a", "b"}, "sale resume:"},
		{[]string{"sale", "end", "a", "--stock", "3"}, "sale end:"},
		{[]string{"sale", "update", "drop"}, "at least one of"},
		{[]string{"sale", "update", "drop", "--ends-at", "soon"}, "--ends-at"},
		{[]string{"sale", "update", "drop", "--stock", "many"}, "sale update:"},
	} {
		if code, _, stderr := runCLI(cancelled(), tt.args...); code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}
