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
	if _, err := fmt.Fprintf(w, "read %s, %s, %s of %s\n", Count(r.SettlementRows, "settlement row", "settlement rows"),
		Count(r.Payments, "payment", "payments"), Count(r.Orders, "order", "orders"), Count(r.Sales, "sale", "sales")); err != nil {
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
	_, err := fmt.Fprintln(w, Count(len(r.Mismatches), "mismatch", "mismatches"))
	return err
}

// Count writes n and the noun that goes with it: one for 1, many for
// any other count ("1 mismatch", "2 mismatches", "0 sales").
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
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
