package main

import (
	"testing"
	"time"

	"github.com/surgehq/surge/api"
)

// TestSaleEndAgainKeepsTheEnd: `surge sale end` sends ends_at as this
// machine's now, so an operator who runs it again (its answer timed out,
// a script retrying) moved the end of a sale that had already ended to
// the later time: the sale then read as ended when it had long refused
// purchases. Ending an ended sale keeps the end it had, as pausing a
// paused sale keeps the pause's start.
func TestSaleEndAgainKeepsTheEnd(t *testing.T) {
	ctx, c := cliServer(t)
	if _, err := c.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(10))}); err != nil {
		t.Fatal(err)
	}
	end := func() string {
		t.Helper()
		code, stdout, stderr := runCLI(ctx, "sale", "end", "drop")
		if code != 0 || stderr != "" {
			t.Fatalf("sale end: %d, stderr %q", code, stderr)
		}
		var s api.Sale
		decodeJSON(t, stdout, &s)
		if s.Status != "ended" || s.EndsAt == nil {
			t.Fatalf("sale end printed %+v", s)
		}
		return *s.EndsAt
	}
	first := end()
	time.Sleep(50 * time.Millisecond)
	if again := end(); again != first {
		t.Errorf("sale end run again printed ends_at %s; want the end it had, %s", again, first)
	}
	if s, err := c.Sale(ctx, "drop"); err != nil || s.EndsAt == nil || *s.EndsAt != first {
		t.Errorf("the sale after a second sale end: %+v (%v); want ends_at %s", s, err, first)
	}
}
