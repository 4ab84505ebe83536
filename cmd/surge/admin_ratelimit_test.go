package main

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestAdminListenerHasItsOwnAddressBuckets: with --admin-addr and
// --rate-limit-ip, the admin listener limited each address in the public
// listener's buckets. Buyers behind the operators' address (one NAT, one
// office) spent its tokens on the public API and the operators' calls were
// refused 429 on their own listener; the operators' tools (a scraper, a
// script paying orders by hand) spent them and buyers from that address
// were refused. Each listener keeps buckets of its own.
func TestAdminListenerHasItsOwnAddressBuckets(t *testing.T) {
	const token = "admin-ratelimit-test-token"
	t.Setenv("SURGE_ADMIN_TOKEN", token)
	admin := freeAddr(t)
	srv := startServe(t, "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "warn",
		"--admin-addr", admin, "--rate-limit-ip", "0.01", "--rate-limit-ip-burst", "2")
	public := srv.base + "/v1/sales"
	operator := "http://" + admin + "/metrics" // an operator's call: the admin token's

	for _, tc := range []struct {
		name, from      string
		spend, then     string // the listener whose burst the address spends, then the other
		spendAs, thenAs string // bearer tokens
	}{
		{"buyers spend the address's tokens, then the operator calls", "127.0.0.2", public, operator, "", token},
		{"the operator's calls spend them, then a buyer calls", "127.0.0.3", operator, public, token, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}}).DialContext}}
			defer hc.CloseIdleConnections()
			get := func(url, tok string) (int, string) {
				t.Helper()
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			for i := range 2 {
				if code, body := get(tc.spend, tc.spendAs); code != http.StatusOK {
					t.Fatalf("call %d of the burst on %s: %d %s; want 200", i+1, tc.spend, code, body)
				}
			}
			if code, _ := get(tc.spend, tc.spendAs); code != http.StatusTooManyRequests {
				t.Fatalf("call past the burst on %s: %d; want 429 (the limit binds)", tc.spend, code)
			}
			if code, body := get(tc.then, tc.thenAs); code != http.StatusOK {
				t.Errorf("first call on %s from the same address: %d %s; want 200 (its own bucket, full)", tc.then, code, body)
			}
		})
	}
}
