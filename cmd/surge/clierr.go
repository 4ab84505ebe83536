package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// clientError says a client command's failure in the command line's
// terms: which flag or variable to fix, what to check. Other errors pass
// unchanged.
func clientError(err error) error {
	var (
		ae *client.APIError
		ue *url.Error
		oe *net.OpError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNoAdminToken):
		return errors.New("no admin token: pass --admin-token or set SURGE_ADMIN_TOKEN (`surge serve` printed the one it generated)")
	case errors.As(err, &ae) && ae.Attempts > 1 && (ae.Status == 429 || ae.Status == 503):
		return fmt.Errorf("the server stayed busy: %v; try again later", ae)
	case errors.As(err, &ae) && ae.Status == 401:
		return fmt.Errorf("the server refused the admin token (%s (HTTP %d): %s): check --admin-token or SURGE_ADMIN_TOKEN", ae.Code, ae.Status, ae.Message)
	case errors.As(err, &ae) && ae.Code == "http_error" && (ae.Status == 502 || ae.Status == 503 || ae.Status == 504):
		// A gateway's page in place of the API's error: a proxy before a
		// Surge that is down or unreachable from it.
		return fmt.Errorf("the server answered HTTP %d with a page that is not Surge's API (a proxy whose Surge is down?): %s; check that `surge serve` runs behind --server (or SURGE_SERVER)",
			ae.Status, oneLineQuote(ae.Message))
	case errors.As(err, &ae) && ae.Code == "http_error",
		errors.As(err, &ae) && ae.Status == 404 && ae.Code == "not_found":
		// Surge answers every path it serves with its own codes: an
		// endpoint it lacks, or a page of another server, means --server
		// names something else (its --debug-addr, a path, another service).
		return fmt.Errorf("the server at --server (or SURGE_SERVER) is not Surge's API, or older than this command: it answered HTTP %d: %s; point --server at the address `surge serve` listens on (--http-addr, or --admin-addr when set), with no path",
			ae.Status, oneLineQuote(ae.Message))
	case errors.As(err, &oe) && oe.Op == "dial":
		where := ""
		if errors.As(err, &ue) {
			if u, perr := url.Parse(ue.URL); perr == nil {
				where = " " + u.Scheme + "://" + u.Host
			}
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("cannot connect to the server%s: connection refused; check --server (or SURGE_SERVER) and that `surge serve` runs there", where)
		}
		return fmt.Errorf("cannot connect to the server%s: %v; check --server (or SURGE_SERVER)", where, oe.Err)
	}
	return err
}

// probeSale is the sale whose order export publicListener asks for: it
// need not exist (a valid id, so the answer is about the route).
const probeSale = "surge-cli-probe"

// publicListener turns err, the failure of an admin command sent to
// server with token, into "not an admin listener" when server is the
// public address of a split deployment (serve --admin-addr). There the
// admin token grants nothing, so a command open to buyers too (order
// get, order cancel) is answered 401, which reads as a wrong token, and
// the admin-only ones 404 not_found "no such endpoint". Neither tells
// that apart from a wrong token or a server that is not Surge, so one
// read-only admin request asks, the order export of probeSale: the public
// address answers it 404 not_found whatever the token; an admin listener
// answers 401 to a wrong token, and to a right one sale_not_found or the
// export, which is stopped at its first order; a second read, of the sale
// itself, which the public listener serves to anyone, tells it from an
// address that serves no API (--debug-addr's, a wrong path). Any other
// err is returned as it is.
func publicListener(ctx context.Context, server, token string, err error) error {
	var ae *client.APIError
	if token == "" || !errors.As(err, &ae) || (ae.Status != 401 && (ae.Status != 404 || ae.Code != "not_found")) {
		return err
	}
	stop := errors.New("stop")
	perr := client.New(server, token).Orders(ctx, probeSale, func(api.Order) error { return stop })
	var pe *client.APIError
	if !errors.As(perr, &pe) || pe.Status != 404 || pe.Code != "not_found" {
		return err
	}
	// An address that serves no API at all (--debug-addr's, a --server
	// with a wrong path) hides the export too; the public listener, and
	// only it, still answers a public read of the same sale.
	if _, serr := client.New(server, "").Sale(ctx, probeSale); serr != nil {
		var se *client.APIError
		if !errors.As(serr, &se) || se.Code != string(surge.CodeSaleNotFound) {
			return err
		}
	}
	// Not wrapped: clientError would read the 401 as a wrong token.
	return fmt.Errorf("%s is not an admin listener: it serves the public API only, where the admin token grants nothing and the admin endpoints are hidden (it answered %v); surge serve runs with --admin-addr: point --server (or SURGE_SERVER) at that address", server, ae)
}

// oneLineQuote is a server's message on one line: a web server's page
// spread the error over a dozen lines of a terminal or a log.
func oneLineQuote(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
