package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"

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
