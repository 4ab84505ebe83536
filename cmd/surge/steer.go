package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// saleSteer runs surge sale pause|resume|end|update ID: one PATCH
// /v1/sales/{id}, printing the changed sale. end sets ends_at to "now",
// the server's present; update sends only the flags given.
func saleSteer(ctx context.Context, verb string, args []string, stdout io.Writer) error {
	synopsis := "surge sale " + verb + " ID [flags]"
	if verb == "update" {
		synopsis = "surge sale update ID [--stock N --name NAME --per-user-limit N --ends-at TIME|none --hold-seconds N] [flags]"
	}
	fs := newFlagSet("sale "+verb, synopsis, stdout)
	server, token := serverFlags(fs)
	var (
		name, ends         string
		stock, limit, hold int64
	)
	if verb == "update" {
		fs.envNote = "--server and --admin-token also settable as SURGE_SERVER and SURGE_ADMIN_TOKEN; the sale's fields only as flags"
		fs.Int64Var(&stock, "stock", 0, "new stock: up, or down to the units reserved and paid orders hold")
		fs.StringVar(&name, "name", "", "new name")
		fs.Int64Var(&limit, "per-user-limit", 0, "new per-user limit (binds purchases made from now on)")
		fs.StringVar(&ends, "ends-at", "", `new RFC 3339 end time, or "none" for no end`)
		fs.Int64Var(&hold, "hold-seconds", 0, "new hold of reservations made from now on")
	}
	// Let the id come before or after the flags.
	var id string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if id == "" || fs.NArg() > 0 {
		return errUsage{"sale " + verb + ": needs exactly one sale ID"}
	}
	var p api.SalePatch
	switch verb {
	case "pause":
		p.Paused = new(true)
	case "resume":
		p.Paused = new(false)
	case "end":
		// The server's clock, which decides purchases: this machine's,
		// running ahead, left the sale live until it read that late.
		p.EndsAt = new(api.EndsAt("now"))
	case "update":
		// Only the flags given are sent: a zero the server refuses is
		// told apart from a field left as it is. A field's SURGE_*
		// variable is refused, not sent: one left from a sale create
		// would change a live sale under an unrelated update.
		named := fs.onCommandLine(args)
		fields := []string{"stock", "name", "per-user-limit", "ends-at", "hold-seconds"}
		var fromEnv []string
		fs.Visit(func(f *flag.Flag) {
			if slices.Contains(fields, f.Name) && !named[f.Name] {
				fromEnv = append(fromEnv, envName(f.Name))
			}
		})
		if len(fromEnv) > 0 {
			slices.Sort(fromEnv)
			return errUsage{fmt.Sprintf("sale update: %s is set in the environment, but update changes only the fields given as flags: unset it, or give the flag", strings.Join(fromEnv, ", "))}
		}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "stock":
				p.Stock = &stock
			case "name":
				p.Name = &name
			case "per-user-limit":
				p.PerUserLimit = &limit
			case "hold-seconds":
				p.HoldSeconds = &hold
			case "ends-at":
				p.EndsAt = new(api.EndsAt(""))
			}
		})
		if p.EndsAt != nil && ends != "none" {
			if why := apiTime(ends); why != "" {
				if _, err := api.ParseTime(ends); err != nil {
					why += `, or "none"`
				}
				return errUsage{"sale update: --ends-at " + why}
			}
			*p.EndsAt = api.EndsAt(ends)
		}
		if p == (api.SalePatch{}) {
			return errUsage{"sale update: give at least one of --stock, --name, --per-user-limit, --ends-at, --hold-seconds"}
		}
	}
	if err := checkServer("sale "+verb, *server); err != nil {
		return err
	}
	c := client.New(*server, *token)
	s, err := c.UpdateSale(ctx, id, p)
	if ae := (*client.APIError)(nil); verb == "end" && errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Message, "RFC 3339") {
		// A server older than "now" (a cluster being upgraded): this
		// machine's clock, as before.
		p.EndsAt = new(api.EndsAt(api.FormatTime(time.Now())))
		s, err = c.UpdateSale(ctx, id, p)
	}
	if err != nil {
		return publicListener(ctx, *server, *token, err)
	}
	return printJSON(stdout, s)
}
