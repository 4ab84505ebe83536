package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// TestSaleCreateAfterALostAnswer: surge sale create without --id, whose
// answer was lost (the server created the sale, then a 503: the commit
// wait ran out, or a proxy between gave up), and run again as the
// operator would, made a second sale: the server generated an id for each
// request. The sale must be made once: the command generates the id
// itself and sends it again after a 503, and a sale it finds under that
// id with what it asked for is its own.
func TestSaleCreateAfterALostAnswer(t *testing.T) {
	ctx, admin := cliServer(t)
	// The server creates the sale; its answer is lost.
	loseFirstCreate(t, func(_ *httptest.ResponseRecorder, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"the sale's commit did not finish in time"}}`))
	})
	// The operator runs it until it succeeds (at most three times).
	for range 3 {
		code, stdout, stderr := runCLI(ctx, "sale", "create", "--name", "Phone drop", "--stock", "5")
		t.Logf("exit %d: %s%s", code, stdout, stderr)
		if code == 0 {
			break
		}
	}
	sales, err := admin.Sales(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sales) != 1 {
		ids := []string{}
		for _, s := range sales {
			ids = append(ids, s.ID)
		}
		t.Errorf("after a create whose answer was lost, run until it succeeded: sales %v; want one", ids)
	}
}

// refusingProxy is a proxy in front of the server of cliServer whose
// answer to the first refused creates (POST /v1/sales) is refuse's, the
// request never reaching the server (a load balancer with no backend, a
// server draining); other requests pass. It counts the creates and
// records when the last one came.
type refusingProxy struct {
	creates atomic.Int64
	last    atomic.Int64 // unix nanoseconds of the last create
}

// proxyServer starts a proxy before the test's server (SURGE_SERVER):
// serve answers each request, with the server behind it as next. Closed
// when the test ends.
func proxyServer(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, next http.Handler)) *httptest.Server {
	t.Helper()
	target, err := url.Parse(os.Getenv("SURGE_SERVER"))
	if err != nil {
		t.Fatal(err)
	}
	server := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w, r, server) }))
	t.Cleanup(proxy.Close)
	return proxy
}

func newRefusingProxy(t *testing.T, refused int64, refuse func(http.ResponseWriter)) *refusingProxy {
	t.Helper()
	p := &refusingProxy{}
	proxy := proxyServer(t, func(w http.ResponseWriter, r *http.Request, server http.Handler) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/sales" {
			p.last.Store(time.Now().UnixNano())
			if p.creates.Add(1) <= refused {
				refuse(w)
				return
			}
		}
		server.ServeHTTP(w, r)
	})
	t.Setenv("SURGE_SERVER", proxy.URL)
	return p
}

// unavailable503 answers as a server whose sale store could not be
// reached: 503 unavailable, Retry-After seconds.
// loseFirstCreate points the command (SURGE_SERVER) at a proxy to the
// test's server that passes the first sale creation on and loses its
// answer: lost is given what the server answered and writes what the
// command gets instead.
func loseFirstCreate(t *testing.T, lost func(made *httptest.ResponseRecorder, w http.ResponseWriter)) {
	t.Helper()
	var done atomic.Bool
	proxy := proxyServer(t, func(w http.ResponseWriter, r *http.Request, server http.Handler) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/sales" && done.CompareAndSwap(false, true) {
			made := httptest.NewRecorder()
			server.ServeHTTP(made, r)
			lost(made, w)
			return
		}
		server.ServeHTTP(w, r)
	})
	t.Setenv("SURGE_SERVER", proxy.URL)
}

func unavailable503(seconds string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", seconds)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"the server is shutting down"}}`))
	}
}

// TestSaleCreateRetryTellsAnotherSale: with --id, the sale found under
// that id after a first answer that made nothing (a 503 before the server
// looked: a draining server, a balancer with no backend) may be another
// sale, made earlier with other settings. The command must take it for
// its own only if it is what the command asked for, every setting given
// included (waiting room, start, end), or the operator is told their
// sale was created while the one serving has another waiting room or end.
// A setting not given is asked for all the same, as the server's default
// (one unit per buyer, a price of 0 USD, a 900 s hold, no end, no waiting
// room): the sale found was taken for the command's own whatever its
// limit, price, currency, hold or end when the operator gave none.
func TestSaleCreateRetryTellsAnotherSale(t *testing.T) {
	ctx, admin := cliServer(t)
	room := func(rate int64, order string, ticket int64) *api.NewWaitingRoom {
		return &api.NewWaitingRoom{AdmitPerSecond: &rate, Policy: &order, TicketSeconds: &ticket}
	}
	for _, tc := range []struct {
		name     string
		existing api.NewSale
		asked    []string // beyond --id, --name and --stock
		own      bool     // the command's own sale: found, and printed as created
	}{
		{"another waiting room", api.NewSale{WaitingRoom: room(10, "fifo", 60)},
			[]string{"--admit-per-second", "5", "--queue", "lottery", "--ticket-seconds", "30"}, false},
		{"another end", api.NewSale{EndsAt: new("2031-01-01T00:00:00Z")}, []string{"--ends-at", "2032-01-01T00:00:00Z"}, false},
		{"another start", api.NewSale{StartsAt: new("2031-01-01T00:00:00Z")}, []string{"--starts-at", "2031-06-01T00:00:00Z"}, false},
		// Its own sale, every setting given (times as the server keeps
		// them: UTC, to the millisecond): found, and printed as created.
		{"the same settings", api.NewSale{WaitingRoom: room(10, "fifo", 60), StartsAt: new("2031-01-01T00:00:00Z"),
			EndsAt: new("2031-01-02T00:00:00.123Z")}, []string{"--admit-per-second", "10", "--queue", "fifo", "--ticket-seconds", "60",
			"--starts-at", "2031-01-01T01:00:00.0004+01:00", "--ends-at", "2031-01-02T00:00:00.123Z"}, true},
		// Its own sale, no setting given but name and stock.
		{"the defaults", api.NewSale{}, nil, true},
		// Settings not given, asked as the server's defaults.
		{"another per-user limit", api.NewSale{PerUserLimit: new(int64(3))}, nil, false},
		{"another price", api.NewSale{PriceCents: new(int64(1000))}, nil, false},
		{"another currency", api.NewSale{Currency: new("EUR")}, nil, false},
		{"another hold", api.NewSale{HoldSeconds: new(int64(60))}, nil, false},
		{"an end", api.NewSale{EndsAt: new("2031-01-01T00:00:00Z")}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			in := tc.existing
			in.ID, in.Name, in.Stock = &id, new("Phone drop"), new(int64(5))
			if _, err := admin.CreateSale(ctx, in); err != nil {
				t.Fatal(err)
			}
			p := newRefusingProxy(t, 1, unavailable503("1"))
			code, stdout, stderr := runCLI(ctx, append([]string{"sale", "create", "--id", id, "--name", "Phone drop", "--stock", "5"}, tc.asked...)...)
			if tc.own {
				if code != 0 || !strings.Contains(stdout, `"id": "`+id+`"`) {
					t.Errorf("sale create --id %s %v, the sale made and its answer lost: exit %d, stdout %s, stderr %q; want 0 and the sale",
						id, tc.asked, code, stdout, stderr)
				}
				return
			}
			if code != 1 || !strings.Contains(stderr, "sale_exists") {
				t.Errorf("sale create --id %s %v over an existing sale with %s, its first answer a 503 (%d creates sent): exit %d, stdout %s, stderr %q; want 1 and sale_exists",
					id, tc.asked, tc.name, p.creates.Load(), code, stdout, stderr)
			}
		})
	}
}

// TestSaleCreateOverloadedIsRetriedOnce: a 503 overloaded guarantees
// nothing was made, and the client already sends such a create again
// within its policy (client.DefaultMaxAttempts sends, at most
// client.DefaultMaxElapsed). The command's own resending after a lost
// answer must not multiply it: against a server that stays overloaded it
// sent 25 creates, and with a Retry-After of 10 s waited 2.5 minutes
// instead of 30 s before saying the server stayed busy.
func TestSaleCreateOverloadedIsRetriedOnce(t *testing.T) {
	ctx, _ := cliServer(t)
	p := newRefusingProxy(t, 1<<62, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"overloaded","message":"the server is overloaded; retry shortly"}}`))
	})
	code, stdout, stderr := runCLI(ctx, "sale", "create", "--name", "Phone drop", "--stock", "5")
	if n := p.creates.Load(); code != 1 || n > client.DefaultMaxAttempts || !strings.Contains(stderr, "the server stayed busy") {
		t.Errorf("sale create against a server that stays overloaded: exit %d after %d creates sent, stdout %q, stderr %q; want 1, at most %d (the client's policy) and \"the server stayed busy\"",
			code, n, stdout, stderr, client.DefaultMaxAttempts)
	}
}

// TestSaleCreateGivesUpAtOnce: after its last attempt the command reports
// the refusal; it slept the refusal's Retry-After (up to 10 s) first, for
// an attempt it would not make.
func TestSaleCreateGivesUpAtOnce(t *testing.T) {
	ctx, _ := cliServer(t)
	p := newRefusingProxy(t, 1<<62, unavailable503("2"))
	code, stdout, stderr := runCLI(ctx, "sale", "create", "--name", "Phone drop", "--stock", "5")
	after := time.Since(time.Unix(0, p.last.Load()))
	if n := p.creates.Load(); code != 1 || n != createAttempts || !strings.Contains(stderr, "unavailable") {
		t.Errorf("sale create against a server that stays unavailable: exit %d after %d creates, stdout %q, stderr %q; want 1 after %d and the refusal",
			code, n, stdout, stderr, createAttempts)
	}
	// Its wait was 2 s: well above what reporting takes.
	if after >= 1500*time.Millisecond {
		t.Errorf("sale create reported the last refusal %v after it came; want at once, not after its Retry-After (2 s)", after.Round(time.Millisecond))
	}
}

// TestSaleCreateWithoutTokenFailsAtOnce: without an admin token the
// client sends nothing and says so; the command took that for a lost
// answer and tried again four times, a second apart, before telling the
// operator to pass --admin-token.
func TestSaleCreateWithoutTokenFailsAtOnce(t *testing.T) {
	ctx, _ := cliServer(t)
	p := newRefusingProxy(t, 0, nil)
	start := time.Now()
	code, stdout, stderr := runCLI(ctx, "sale", "create", "--admin-token", "", "--name", "Phone drop", "--stock", "5")
	took := time.Since(start)
	if code != 1 || !strings.Contains(stderr, "no admin token: pass --admin-token") || p.creates.Load() != 0 {
		t.Errorf("sale create without a token: exit %d, stdout %q, stderr %q, %d creates sent; want 1, the hint and none sent",
			code, stdout, stderr, p.creates.Load())
	}
	// Each try again waited 1 s: far above what refusing takes.
	if took >= 1500*time.Millisecond {
		t.Errorf("sale create without a token took %v to fail; want at once (nothing was sent)", took.Round(time.Millisecond))
	}
}

// TestSaleCreateAfterALostAnswerAndAPatch: surge sale create without
// --id, whose answer was lost after the server made the sale, sends the
// same request again and takes the sale it then finds under its id for
// its own if it is what it asked for. A PATCH made in between (an
// operator who saw the new sale in the list and changed its stock) made
// the comparison fail: the command said sale_exists and exited 1 for the
// sale it had made, and run again, as that invites, made a second one.
// Nobody else knows an id the command drew: the sale under it is its own,
// whatever it holds now.
func TestSaleCreateAfterALostAnswerAndAPatch(t *testing.T) {
	ctx, admin := cliServer(t)
	// The server creates the sale; its answer is lost, and the operator
	// changes the sale before the command sends again.
	loseFirstCreate(t, func(made *httptest.ResponseRecorder, w http.ResponseWriter) {
		var s api.Sale
		if err := json.Unmarshal(made.Body.Bytes(), &s); err != nil || made.Code != http.StatusCreated {
			t.Errorf("the create behind the lost answer: %d %s", made.Code, made.Body)
		} else if _, err := admin.UpdateSale(ctx, s.ID, api.SalePatch{Stock: new(int64(7))}); err != nil {
			t.Errorf("PATCH of the sale made: %v", err)
		}
		unavailable503("1")(w)
	})
	code, stdout, stderr := runCLI(ctx, "sale", "create", "--name", "Phone drop", "--stock", "5")
	sales, err := admin.Sales(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || len(sales) != 1 || !strings.Contains(stdout, `"id": "`+sales[0].ID+`"`) {
		t.Errorf("sale create, its answer lost and the sale changed by a PATCH before the command sent again: exit %d, stdout %s, stderr %q, %d sales; want 0 and the one sale it made",
			code, stdout, stderr, len(sales))
	}
}

// TestSaleCreateRefusedHandshakeFailsAtOnce: a server over TLS whose
// certificate the command does not trust (or any handshake that fails)
// was sent nothing; the command took the failure for a lost answer and
// tried again four times, a second apart, before reporting it: about 4 s
// for an answer known at once.
func TestSaleCreateRefusedHandshakeFailsAtOnce(t *testing.T) {
	t.Setenv("SURGE_ADMIN_TOKEN", "cli-test-admin-token")
	var reached atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	code, stdout, stderr := runCLI(ctx, "sale", "create", "--server", srv.URL, "--name", "Phone drop", "--stock", "5")
	took := time.Since(start)
	if code != 1 || !strings.Contains(stderr, "certificate") || reached.Load() != 0 {
		t.Errorf("sale create to a server whose certificate is not trusted: exit %d, stdout %q, stderr %q, %d requests reached it; want 1, the certificate named and none",
			code, stdout, stderr, reached.Load())
	}
	// Each try again waited 1 s: far above what a handshake takes.
	if took >= 1500*time.Millisecond {
		t.Errorf("sale create to a server whose certificate is not trusted took %v to fail; want at once (nothing was sent)", took.Round(time.Millisecond))
	}
}

// TestSaleCreateGivingUpNamesTheSale: surge sale create without --id whose
// first answer was lost after the server made the sale, and whose every
// later attempt found the server still unavailable, gave up with the last
// refusal and no word of the id it had drawn. The operator, running it
// again once the server was back, as the refusal invites, made a second
// sale under a new id, the first one unseen. The command must name the
// sale it may have made, so that it is looked at rather than made again.
func TestSaleCreateGivingUpNamesTheSale(t *testing.T) {
	ctx, admin := cliServer(t)
	var creates atomic.Int64
	// The first create reaches the server and its answer is lost; every
	// create after it finds the server unavailable (restarting, say).
	proxy := proxyServer(t, func(w http.ResponseWriter, r *http.Request, server http.Handler) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/sales" {
			if creates.Add(1) == 1 {
				server.ServeHTTP(httptest.NewRecorder(), r)
			}
			unavailable503("1")(w)
			return
		}
		server.ServeHTTP(w, r)
	})
	t.Setenv("SURGE_SERVER", proxy.URL)

	code, stdout, stderr := runCLI(ctx, "sale", "create", "--name", "Phone drop", "--stock", "5")
	sales, err := admin.Sales(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sales) != 1 {
		t.Fatalf("%d sales after the first create reached the server; want 1", len(sales))
	}
	id := sales[0].ID
	if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, "unavailable") ||
		!strings.Contains(stderr, "surge sale get "+id) {
		t.Errorf("sale create that gave up after %d creates, the first of which made sale %s: exit %d, stdout %q, stderr %q; want 1 and one line with the refusal and %q",
			creates.Load(), id, code, stdout, stderr, "surge sale get "+id)
	}
}
