package main

import (
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
)

// TestBenchChecksTheTokenBeforeTheCrowd: surge bench --sale ID, which
// verifies against the admin export, with an admin token the server
// refuses, fired its whole crowd at the sale (buying its units) and only
// then learned from the export's 401 that it could not verify: the run's
// figures were lost with it and the units sold for nothing. The token must
// be checked before a purchase is sent.
func TestBenchChecksTheTokenBeforeTheCrowd(t *testing.T) {
	ctx, admin := cliServer(t, "--insecure-user-header")
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(50))}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(ctx, "bench", "--sale", "drop", "--admin-token", "wrong-token-wrong-token",
		"--users", "20", "--connections", "4", "--retry-share", "0")
	s, err := admin.Sale(ctx, "drop")
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(stderr, "the server refused the admin token") || s.Remaining != 50 {
		t.Errorf("bench --sale with a wrong admin token: exit %d, %d of 50 units sold, stdout %q, stderr %q; want 1, the token refused and no purchase sent",
			code, 50-s.Remaining, stdout, stderr)
	}
}
