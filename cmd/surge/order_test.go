package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// surge order get|cancel|pay ID against a running server: a table or
// --json, the server's refusals as one line and exit 1, bad usage exit 2.
func TestOrderCommands(t *testing.T) {
	ctx, c := cliServer(t, "--insecure-user-header")
	if _, err := c.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(5)), PerUserLimit: new(int64(2))}); err != nil {
		t.Fatal(err)
	}
	buy := func() api.Order {
		t.Helper()
		p, err := c.AsUser("alice").Purchase(ctx, "drop", client.PurchaseOptions{IdempotencyKey: "k-" + time.Now().Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		return p.Order
	}
	toPay, toCancel := buy(), buy()

	for _, tt := range []struct {
		name       string
		args       []string
		wantStatus string // the order's status in the output (--json decoded, or the table's row)
		wantErr    string // instead: exit 1 and one line with this
	}{
		{"get as a table", []string{"order", "get", toPay.ID}, "reserved", ""},
		{"get as JSON", []string{"order", "get", toPay.ID, "--json"}, "reserved", ""},
		{"pay", []string{"order", "pay", "--json", toPay.ID}, "paid", ""},
		{"pay again", []string{"order", "pay", toPay.ID}, "", "not_payable (HTTP 409)"},
		{"cancel a paid order", []string{"order", "cancel", toPay.ID}, "", "not_cancellable (HTTP 409)"},
		{"cancel", []string{"order", "cancel", toCancel.ID}, "cancelled", ""},
		{"cancel again", []string{"order", "cancel", toCancel.ID, "--json"}, "", "not_cancellable (HTTP 409)"},
		{"get after cancel, --target", []string{"order", "get", toCancel.ID, "--json", "--target", os.Getenv("SURGE_SERVER")}, "cancelled", ""},
		{"unknown order", []string{"order", "get", "o_nope"}, "", "order_not_found (HTTP 404)"},
		{"wrong token", []string{"order", "get", toPay.ID, "--admin-token", "wrong-token-wrong-token"}, "", "the server refused the admin token"},
		{"no token", []string{"order", "pay", toPay.ID, "--admin-token", ""}, "", "no admin token: pass --admin-token or set SURGE_ADMIN_TOKEN"},
		{"no server", []string{"order", "get", toPay.ID, "--server", "http://127.0.0.1:1"}, "", "cannot connect to the server http://127.0.0.1:1: connection refused; check --server"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(ctx, tt.args...)
			if tt.wantErr != "" {
				if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, tt.wantErr) {
					t.Errorf("%d, stdout %q, stderr %q; want 1 and one line with %q", code, stdout, stderr, tt.wantErr)
				}
				return
			}
			if code != 0 || stderr != "" {
				t.Fatalf("%d, stderr %q", code, stderr)
			}
			id := tt.args[2]
			if id == "--json" {
				id = tt.args[3]
			}
			if strings.Contains(strings.Join(tt.args, " "), "--json") {
				var o api.Order
				decodeJSON(t, stdout, &o)
				if o.ID != id || o.Status != tt.wantStatus || o.UserID != "alice" || o.SaleID != "drop" {
					t.Errorf("printed %+v, want order %s %s", o, id, tt.wantStatus)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATUS") {
				t.Fatalf("table %q: want a header and one row", stdout)
			}
			row := strings.Fields(lines[1])
			if row[0] != id || row[1] != "drop" || row[2] != "alice" || row[3] != "1" || row[4] != tt.wantStatus {
				t.Errorf("row %q, want %s drop alice 1 %s …", lines[1], id, tt.wantStatus)
			}
		})
	}

	// Bad usage: exit 2, before any request.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"order"}, "order: missing subcommand"},
		{[]string{"order", "refund", "x"}, `order: unknown subcommand "refund"`},
		{[]string{"order", "get"}, "order get: needs exactly one order ID"},
		{[]string{"order", "pay", "a", "b"}, "order pay: needs exactly one order ID"},
		{[]string{"order", "cancel", "a", "--bogus"}, "order cancel: flag provided but not defined: -bogus"},
	} {
		if code, stdout, stderr := runCLI(cancelled(), tt.args...); code != 2 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: %d, stdout %q, stderr %q; want 2 and %q", tt.args, code, stdout, stderr, tt.want)
		}
	}
	// Help.
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"order", "--help"}, []string{orderUsage}},
		{[]string{"help", "order"}, []string{orderUsage}},
		{[]string{"help", "order", "pay"}, []string{"Usage: surge order pay ID [flags]\n", "-server", "-target", "-admin-token", "-json"}},
		{[]string{"order", "get", "x", "-h"}, []string{"Usage: surge order get ID [flags]\n"}},
		{[]string{"help"}, []string{usage, "surge order get ID", "surge order cancel ID", "surge order pay ID"}},
	} {
		code, stdout, stderr := runCLI(cancelled(), tt.args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, tt.want[0]) {
			t.Errorf("%v: %d, stderr %q, stdout %.100q; want 0 and %.60q", tt.args, code, stderr, stdout, tt.want[0])
			continue
		}
		for _, w := range tt.want[1:] {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: stdout lacks %q", tt.args, w)
			}
		}
	}
}

// A server that stays overloaded: the client retries within its bounds,
// then the command says the server stayed busy, in one line.
func TestOrderServerBusy(t *testing.T) {
	var n atomic.Int32
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"overloaded","message":"the sale's queue is full; retry shortly"}}`)
	}))
	defer busy.Close()
	code, stdout, stderr := runCLI(t.Context(), "order", "get", "o_1", "--server", busy.URL, "--admin-token", "t")
	want := fmt.Sprintf("the server stayed busy: overloaded (HTTP 503): the sale's queue is full; retry shortly (gave up after %d attempts); try again later", client.DefaultMaxAttempts)
	if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, want) {
		t.Errorf("%d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, want)
	}
	if got := n.Load(); got != client.DefaultMaxAttempts {
		t.Errorf("%d attempts, want %d", got, client.DefaultMaxAttempts)
	}
}
