package reconcile

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/surgehq/surge"
)

// WriteTable writes the report for people: what was read, then one line
// per mismatch, or that everything matched.
func (r *Report) WriteTable(w io.Writer) error {
	// Every write's error counts: a report missing a line is not written,
	// and the caller's exit status says so.
	if _, err := fmt.Fprintf(w, "read %d settlement rows, %d payments, %d orders of %d sales\n", r.SettlementRows, r.Payments, r.Orders, r.Sales); err != nil {
		return err
	}
	if r.OK() {
		_, err := fmt.Fprintln(w, "no mismatch")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tPAYMENT\tORDER\tSALE\tDETAIL")
	for _, m := range r.Mismatches {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Kind, dash(m.PaymentID), dash(m.OrderID), dash(m.SaleID), escaped(m.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d mismatches\n", len(r.Mismatches))
	return err
}

// dash shows an id: "-" for none, quoted with Go's escapes when it is not
// plain text (payments recorded before the webhooks refused such ids), so
// that nothing in it reaches the terminal raw.
func dash(s string) string {
	switch {
	case s == "":
		return "-"
	case !surge.Plain(s):
		return strconv.Quote(s)
	}
	return s
}

// escaped writes each character of s that is not plain text as Go's escape
// for it (\a, \x1b, \u202e) and leaves the prose around it as it is.
func escaped(s string) string {
	if surge.Plain(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case surge.Unshowable(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
