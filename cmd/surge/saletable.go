package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Name, status, s.Remaining, s.Stock,
			s.PerUserLimit, surge.FormatAmount(s.PriceCents, s.Currency), s.StartsAt, ends, queue)
	}
	return tw.Flush()
}
