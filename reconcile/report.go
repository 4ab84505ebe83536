package reconcile

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable writes the report for people: what was read, then one line
// per mismatch, or that everything matched.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "read %d settlement rows, %d payments, %d orders of %d sales\n", r.SettlementRows, r.Payments, r.Orders, r.Sales)
	if r.OK() {
		_, err := fmt.Fprintln(w, "no mismatch")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tPAYMENT\tORDER\tSALE\tDETAIL")
	for _, m := range r.Mismatches {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Kind, dash(m.PaymentID), dash(m.OrderID), dash(m.SaleID), m.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d mismatches\n", len(r.Mismatches))
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
