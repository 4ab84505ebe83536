package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

const saleUsage = `Usage:
  surge sale create --name NAME --stock N [flags]
  surge sale list [--archived] [--json] [flags]
  surge sale get ID [flags]
  surge sale archive ID [flags]
  surge sale pause|resume|end ID [flags]
  surge sale update ID [--stock N --name NAME --per-user-limit N --ends-at TIME|none --hold-seconds N] [flags]

Run 'surge sale create --help' for the flags.

Exit status: 0 done, the sale printed as JSON (pause, resume and end again: the
same); 2 a flag or argument refused before anything was sent; 1 anything else,
one line on stderr: the server's refusal, no server, no or a wrong admin token.
`

func sale(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errUsage{"sale: missing subcommand: create, list, get, archive, pause, resume, end or update (run 'surge sale --help')"}
	}
	switch args[0] {
	case "create":
		return saleCreate(ctx, args[1:], stdout)
	case "list", "get", "archive":
		return saleRead(ctx, args[0], args[1:], stdout)
	case "pause", "resume", "end", "update":
		return saleSteer(ctx, args[0], args[1:], stdout) // steer.go
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, saleUsage)
		return nil
	}
	return errUsage{fmt.Sprintf("sale: unknown subcommand %q%s (use create, list, get, archive, pause, resume, end or update)",
		args[0], didYouMean(args[0], "", []string{"create", "list", "get", "archive", "pause", "resume", "end", "update"}))}
}

// serverFlags are the flags every client command shares.
func serverFlags(fs *flagSet) (server, token *string) {
	server = fs.String("server", "http://127.0.0.1:8080", "base URL of the Surge server")
	fs.StringVar(server, "target", *server, "the same as --server (surge bench's former name for it)")
	token = fs.String("admin-token", "", "admin bearer token of the server")
	return server, token
}

func saleCreate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("sale create", "surge sale create --name NAME --stock N [flags]", stdout)
	server, token := serverFlags(fs)
	var (
		id, name, currency, starts, ends, policy string
		stock, limit, price, hold, rate, ticket  int64
	)
	fs.StringVar(&id, "id", "", "sale id (generated if empty)")
	fs.StringVar(&name, "name", "", "name of the sale (required)")
	fs.Int64Var(&stock, "stock", 0, "units for sale (required)")
	fs.Int64Var(&limit, "per-user-limit", 0, "most units one buyer may hold (server default 1)")
	fs.Int64Var(&price, "price-cents", 0, "unit price in cents")
	fs.StringVar(&currency, "currency", "", "ISO 4217 currency (server default USD)")
	fs.StringVar(&starts, "starts-at", "", "RFC 3339 start time (default now)")
	fs.StringVar(&ends, "ends-at", "", "RFC 3339 end time (default none)")
	fs.Int64Var(&hold, "hold-seconds", 0, "seconds a reservation waits for payment (server default 900)")
	fs.Int64Var(&rate, "admit-per-second", 0, "waiting room: buyers admitted per second from the start (with --queue and --ticket-seconds)")
	fs.StringVar(&policy, "queue", "", `waiting room: the order buyers are admitted in, "fifo" or "lottery" (the API's waiting_room.order)`)
	fs.Int64Var(&ticket, "ticket-seconds", 0, "waiting room: seconds an admitted buyer may buy for")
	if err := fs.parse(args); err != nil {
		return err
	}
	// Parsing stops at the first argument that is no flag: an unquoted name
	// ("--name Phone drop") would otherwise drop every flag after it and
	// create a sale the operator did not ask for.
	if fs.NArg() > 0 {
		return errUsage{fmt.Sprintf("sale create: unexpected argument %q (quote a name with spaces; run 'surge sale create --help')", fs.Arg(0))}
	}
	if name == "" || stock == 0 {
		return errUsage{"sale create: --name and --stock are required"}
	}
	// Empty text flags are absent: the server's defaults apply. A number is
	// sent when given, 0 too: the server refuses what is out of range
	// rather than the command reading 0 as "not given".
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	in := api.NewSale{Name: &name, Stock: &stock}
	for _, f := range []struct {
		v   string
		dst **string
	}{{id, &in.ID}, {currency, &in.Currency}} {
		if f.v != "" {
			*f.dst = new(f.v)
		}
	}
	for _, f := range []struct {
		flag string
		v    int64
		dst  **int64
	}{{"per-user-limit", limit, &in.PerUserLimit}, {"price-cents", price, &in.PriceCents}, {"hold-seconds", hold, &in.HoldSeconds}} {
		if given[f.flag] {
			*f.dst = new(f.v)
		}
	}
	for _, t := range []struct {
		flag, v string
		dst     **string
	}{{"--starts-at", starts, &in.StartsAt}, {"--ends-at", ends, &in.EndsAt}} {
		if t.v == "" {
			continue
		}
		if why := apiTime(t.v); why != "" {
			return errUsage{fmt.Sprintf("sale create: %s %s", t.flag, why)}
		}
		*t.dst = new(t.v)
	}
	if room := []bool{given["admit-per-second"], given["queue"], given["ticket-seconds"]}; slices.Contains(room, true) {
		if slices.Contains(room, false) {
			return errUsage{"sale create: a waiting room needs --admit-per-second, --queue and --ticket-seconds"}
		}
		in.WaitingRoom = &api.NewWaitingRoom{AdmitPerSecond: &rate, Policy: &policy, TicketSeconds: &ticket}
	}
	if err := checkServer("sale create", *server); err != nil {
		return err
	}
	drawn := in.ID == nil
	if drawn {
		// Generated here, not by the server, so that the request sent
		// again after a lost answer names the same sale (createOnce).
		in.ID = new(surge.NewID("s_"))
	}
	s, mayExist, err := createOnce(ctx, client.New(*server, *token), in, drawn)
	if err != nil {
		err = clientError(publicListener(ctx, *server, *token, err))
		if mayExist {
			// Run again without --id, the command would draw another id
			// and make a second sale: the operator must learn this one's.
			err = fmt.Errorf("%w; the sale may have been made all the same, as %s: look with `surge sale get %s` before creating it again",
				err, *in.ID, *in.ID)
		}
		return err
	}
	return printJSON(stdout, s)
}

// createAttempts bounds how often createOnce sends a create whose answer
// was lost.
const createAttempts = 5

// createOnce creates the sale in, whose id is set, once. An answer after
// which the sale may exist all the same (503 unavailable: its commit's
// wait ran out; the connection lost after the request was sent) is
// followed by the same request again, and a sale_exists then is the sale
// asked for if it is what was asked for, or whatever it holds if drawn:
// the command drew the id, which nobody else knows, so a change made since
// (a PATCH) does not make it another's. The client retries only refusals
// after which nothing was done: a create is not idempotent without an id.
// A failure before any request was written (no connection, a refused TLS
// handshake, no token) made nothing, and is returned at once. mayExist
// reports, with a failure, that an earlier answer (or the request cut by
// ctx) may have come after the sale was made: it may exist under in's id.
func createOnce(ctx context.Context, c *client.Client, in api.NewSale, drawn bool) (s api.Sale, mayExist bool, err error) {
	// Set once a request's headers are on their way, by any attempt:
	// until then nothing can have been made. After, a connection refused
	// may be the server restarting, with the sale made: sent again.
	var sent atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }})
	for attempt := range createAttempts {
		// Every attempt after the first follows one whose answer may have
		// come after the sale was made.
		mayExist = attempt > 0
		if s, err = c.CreateSale(ctx, in); err == nil {
			return s, false, nil
		}
		if attempt > 0 && errors.Is(err, surge.ErrSaleExists) {
			s, gerr := c.Sale(ctx, *in.ID)
			if gerr == nil && (drawn || madeFrom(s, in)) {
				return s, false, nil
			}
			// Read, the sale under the id is another than the one asked
			// for; unread, it may be the one made.
			return api.Sale{}, gerr != nil, err
		}
		wait := time.Second
		var ae *client.APIError
		switch {
		case !sent.Load():
			return api.Sale{}, mayExist, err
		case ctx.Err() != nil:
			// Cut after its request was sent: it may have made the sale.
			return api.Sale{}, true, err
		case errors.As(err, &ae):
			// An overloaded refusal made nothing, and the client has sent
			// it again as its policy allows already: not once more per
			// attempt here.
			if ae.Status != http.StatusServiceUnavailable || ae.Code == string(surge.CodeOverloaded) {
				return api.Sale{}, mayExist, err
			}
			wait = min(max(wait, ae.RetryAfter), 10*time.Second)
		}
		if attempt == createAttempts-1 {
			break // no attempt to wait for
		}
		select {
		case <-ctx.Done():
			return api.Sale{}, true, err
		case <-time.After(wait):
		}
	}
	return api.Sale{}, true, err
}

// madeFrom reports whether s is what the request in makes: the sale found
// under in's id after a lost answer is then the one it made. Every setting
// counts: with --id, the sale may be another one made earlier under that
// id (the first answer a 503 before the server looked). A setting not given
// is asked for as the server's default (surge.NewSale's), no end and no
// waiting room included; only the start, "now", cannot be told. Nor can
// a change made since the lost answer (a PATCH): under --id the command
// then reports sale_exists, and the operator looks at the sale.
func madeFrom(s api.Sale, in api.NewSale) bool {
	same := func(v *int64, def, got int64) bool {
		if v != nil {
			def = *v
		}
		return def == got
	}
	currency := "USD" // the server's default
	if in.Currency != nil {
		currency = *in.Currency
	}
	return s.ID == *in.ID && s.Name == *in.Name && s.Stock == *in.Stock && same(in.PerUserLimit, 1, s.PerUserLimit) &&
		same(in.PriceCents, 0, s.PriceCents) && same(in.HoldSeconds, surge.DefaultHold, s.HoldSeconds) &&
		currency == s.Currency && sameRoom(in.WaitingRoom, s.WaitingRoom) &&
		(in.StartsAt == nil || sameInstant(*in.StartsAt, s.StartsAt)) &&
		(in.EndsAt == nil && s.EndsAt == nil || in.EndsAt != nil && s.EndsAt != nil && sameInstant(*in.EndsAt, *s.EndsAt))
}

// sameRoom reports whether the sale's waiting room is the one asked for
// (none for none).
func sameRoom(in *api.NewWaitingRoom, got *api.WaitingRoom) bool {
	if in == nil || got == nil {
		return in == nil && got == nil
	}
	return *in.AdmitPerSecond == got.AdmitPerSecond && *in.Policy == got.Policy && *in.TicketSeconds == got.TicketSeconds
}

// sameInstant reports whether the time asked for is the sale's, which the
// server keeps in UTC to the millisecond.
func sameInstant(asked, got string) bool {
	a, aerr := api.ParseTime(asked)
	g, gerr := api.ParseTime(got)
	return aerr == nil && gerr == nil && a.Truncate(time.Millisecond).Equal(g)
}

func saleRead(ctx context.Context, verb string, args []string, stdout io.Writer) error {
	synopsis := "surge sale list [flags]"
	if verb != "list" {
		synopsis = "surge sale " + verb + " ID [flags]"
	}
	fs := newFlagSet("sale "+verb, synopsis, stdout)
	server, token := serverFlags(fs)
	var archived, asJSON *bool
	if verb == "list" {
		archived = fs.Bool("archived", false, "list the archived sales instead of the others")
		asJSON = fs.Bool("json", false, "print the sales as a JSON array instead of a table")
	}
	// Let the id come before or after the flags.
	var id string
	if verb != "list" && len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := checkServer("sale "+verb, *server); err != nil {
		return err
	}
	c := client.New(*server, *token)
	if verb == "list" {
		if fs.NArg() > 0 {
			return errUsage{"sale list: takes no arguments"}
		}
		// Every page: the client follows the listing's cursors.
		list := c.Sales
		if *archived {
			list = c.ArchivedSales
		}
		sales, err := list(ctx)
		if err != nil {
			return err
		}
		if !*asJSON {
			return printSales(stdout, sales)
		}
		if sales == nil {
			sales = []api.Sale{} // [] rather than null
		}
		return printJSON(stdout, sales)
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if id == "" || fs.NArg() > 0 {
		return errUsage{"sale " + verb + ": needs exactly one sale ID"}
	}
	get := c.Sale
	if verb == "archive" {
		get = c.ArchiveSale
	}
	s, err := get(ctx, id)
	if err != nil && verb == "archive" {
		return publicListener(ctx, *server, *token, err)
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, s)
}

// apiTime says why the API would refuse v as a time (http's
// parseTimeField): RFC 3339 as api.ParseTime reads it, which refuses
// what time.Parse lets through (a one-digit hour, a comma before the
// fraction, an offset of +24:00), and an instant within years 0001-9999
// in UTC. What it refuses is refused before anything is sent (exit 2),
// with the API's words, which it returns ("" when v is fine).
func apiTime(v string) string {
	t, err := api.ParseTime(v)
	switch {
	case err != nil:
		return "must be an RFC 3339 time such as 2026-11-23T10:00:00Z"
	case !surge.Representable(t):
		return "must lie between years 0001 and 9999 in UTC"
	}
	return ""
}

// checkServer refuses a --server that is no http:// or https:// URL with
// a host (the commonest slip: localhost:8080, without its scheme), which
// would otherwise fail in Go's URL parser, naming no flag.
func checkServer(cmd, server string) error {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errUsage{fmt.Sprintf("%s: --server (or SURGE_SERVER) %q must be an http:// or https:// URL, e.g. http://127.0.0.1:8080", cmd, server)}
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
