package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/reconcile"
)

// printSales is `surge sale list` for a person: one row a sale, the
// figures an operator watches during a drop. --json gives every field.
func printSales(w io.Writer, sales []api.Sale) error {
	if len(sales) == 0 {
		_, err := fmt.Fprintln(w, "no sales")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tREMAINING\tSTOCK\tLIMIT\tPRICE\tSTARTS\tENDS\tQUEUE")
	for _, s := range sales {
		status := s.Status
		if s.Stale {
			status += " (stale)"
		}
		ends := "-"
		if s.EndsAt != nil {
			ends = *s.EndsAt
		}
		queue := "-"
		if wr := s.WaitingRoom; wr != nil {
			queue = fmt.Sprintf("%s %d/s", wr.Policy, wr.AdmitPerSecond)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s %s\t%s\t%s\t%s\n", s.ID, s.Name, status, s.Remaining, s.Stock,
			s.PerUserLimit, price(s.PriceCents, s.Currency), s.Currency, s.StartsAt, ends, queue)
	}
	return tw.Flush()
}

// price writes an amount of minor units in its currency's major units:
// price_cents counts yen for JPY and fils for KWD (reconcile.MinorDigits),
// so a fixed two places would show ¥1000 as 10.00.
func price(minor int64, currency string) string {
	d := reconcile.MinorDigits(currency)
	if d == 0 {
		return strconv.FormatInt(minor, 10)
	}
	unit := int64(1)
	for range d {
		unit *= 10
	}
	return fmt.Sprintf("%d.%0*d", minor/unit, d, minor%unit)
}
