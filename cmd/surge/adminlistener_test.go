package main

import (
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// TestAdminCommandOnPublicListener: with --admin-addr, the public address
// takes no admin token and hides the admin endpoints. surge order cancel
// pointed at it said "the server refused the admin token ... check
// --admin-token", though the token was right; order pay and sale create
// said "not_found (HTTP 404): no such endpoint". Each must say that the
// address is not an admin listener, and where the admin endpoints are.
func TestAdminCommandOnPublicListener(t *testing.T) {
	admin := freeAddr(t)
	ctx, c := cliServer(t, "--admin-addr", admin, "--insecure-user-header")
	// The admin client of cliServer is the public address's: use the
	// admin listener to set up an order.
	_ = c
	ac := client.New("http://"+admin, "cli-test-admin-token")
	if _, err := ac.CreateSale(ctx, api.NewSale{ID: new("split"), Name: new("Split"), Stock: new(int64(5))}); err != nil {
		t.Fatal(err)
	}
	p, err := ac.AsUser("ann").Purchase(ctx, "split", client.PurchaseOptions{IdempotencyKey: "split-1"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "is not an admin listener"
	for _, args := range [][]string{
		{"order", "cancel", p.Order.ID},
		{"order", "get", p.Order.ID},
		{"order", "pay", p.Order.ID},
		{"sale", "create", "--name", "x", "--stock", "1"},
		{"sale", "pause", "split"},
	} {
		code, stdout, stderr := runCLI(ctx, args...)
		if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, want) || strings.Contains(stderr, "check --admin-token") {
			t.Errorf("surge %s on the public address: exit %d, stderr %q; want exit 1 and one line saying the address %s (not that the token is wrong)",
				strings.Join(args, " "), code, stderr, want)
		}
	}
	// The order is untouched, and a wrong token is still called wrong.
	if o, err := ac.Order(ctx, p.Order.ID); err != nil || o.Status != "reserved" {
		t.Errorf("order after the refusals: %v, %v; want reserved", o.Status, err)
	}
	code, _, stderr := runCLI(ctx, "order", "cancel", p.Order.ID, "--server", "http://"+admin, "--admin-token", "a-wrong-admin-token-here")
	if code != 1 || !strings.Contains(stderr, "check --admin-token") {
		t.Errorf("order cancel with a wrong token on the admin listener: exit %d, stderr %q; want 1 and check --admin-token", code, stderr)
	}
}
