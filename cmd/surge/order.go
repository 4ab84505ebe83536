package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

const orderUsage = `Usage:
  surge order get ID [flags]      show an order
  surge order cancel ID [flags]   cancel a reservation: its units go back to the stock
  surge order pay ID [flags]      settle a reservation by hand: it becomes paid, and a manual payment is recorded

Flags: --server URL (alias --target), --admin-token TOKEN (or SURGE_ADMIN_TOKEN), --json.
Run 'surge order get --help' for details.
`

// order runs surge order get|cancel|pay ID as the operator, on the Go
// client (retries on 429 and 503 included).
func order(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errUsage{"order: missing subcommand: get, cancel or pay (run 'surge order --help')"}
	}
	verb := args[0]
	switch verb {
	case "get", "cancel", "pay":
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, orderUsage)
		return nil
	default:
		return errUsage{fmt.Sprintf("order: unknown subcommand %q%s (use get, cancel or pay)", verb, didYouMean(verb, "", []string{"get", "cancel", "pay"}))}
	}
	fs := newFlagSet("order "+verb, "surge order "+verb+" ID [flags]", stdout)
	server, token := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print the order as JSON instead of a table")
	// Let the id come before or after the flags.
	args = args[1:]
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
		return errUsage{"order " + verb + ": needs exactly one order ID"}
	}
	if err := checkServer("order "+verb, *server); err != nil {
		return err
	}
	c := client.New(*server, *token)
	call := map[string]func(context.Context, string) (api.Order, error){
		"get": c.Order, "cancel": c.CancelOrder, "pay": c.PayOrder,
	}[verb]
	o, err := call(ctx, id)
	if err != nil {
		return publicListener(ctx, *server, *token, err)
	}
	if *asJSON {
		return printJSON(stdout, o)
	}
	return printOrders(stdout, []api.Order{o})
}

// printOrders is an order for a person: one row an order. --json gives
// the API's object.
func printOrders(w io.Writer, orders []api.Order) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSALE\tUSER\tQUANTITY\tSTATUS\tCREATED\tEXPIRES\tIDEMPOTENCY KEY")
	for _, o := range orders {
		key := o.IdempotencyKey
		if key == "" {
			key = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", o.ID, o.SaleID, o.UserID, o.Quantity, o.Status, o.CreatedAt, o.ExpiresAt, key)
	}
	return tw.Flush()
}
