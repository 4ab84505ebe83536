package reconcile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/surgehq/surge"
)

// Status is a settlement row's status, folded from the provider's words.
type Status string

const (
	Settled  Status = "settled"  // money taken: succeeded, paid, settled, captured
	Refunded Status = "refunded" // money given back: refunded, refund
	Failed   Status = "failed"   // no money moved: failed, declined, canceled, cancelled
)

// Row is one payment of the provider's settlement file.
type Row struct {
	PaymentID   string
	OrderID     string // may be empty: the provider does not always know it
	AmountCents int64
	Currency    string
	Status      Status
	// stripeCents is the amount read in Stripe's minor units, where
	// Stripe counts the currency's places otherwise than ISO 4217 (ISK,
	// MGA) and the line wrote it as a decimal; 0 otherwise. A payment
	// Surge recorded from Stripe is in Stripe's units (its webhooks'
	// amounts, and so the sale's price), and is compared with this.
	stripeCents int64
	// inStripe says AmountCents itself is in Stripe's units: a fraction
	// only they hold ("40.10" krónur). Its digits are Stripe's then, and
	// the amount is shown by them, not by ISO 4217's.
	inStripe bool
}

// columns of the settlement file, in this order, after a header row.
var columns = []string{"payment id", "order id", "amount", "currency", "status"}

// ReadSettlement reads a settlement file: CSV (encoding/csv: quoting,
// CRLF), a header row, then payment id, order id, amount, currency,
// status. The amount is in minor units (12999) or decimal (129.99). A
// leading UTF-8 byte order mark is skipped.
func ReadSettlement(r io.Reader) ([]Row, error) {
	// Excel's "CSV UTF-8" and many providers' exports begin with a UTF-8
	// byte order mark: no part of the header's first name.
	br := bufio.NewReader(r)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	// Every line is read whatever its length, so that a column too few
	// or too many is named (checkHeader, checkFields), not refused as
	// encoding/csv's "wrong number of fields".
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("reconcile: the settlement file is empty; it needs a header row")
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: settlement header: %w", err)
	}
	if err := checkHeader(header); err != nil {
		return nil, err
	}
	var rows []Row
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reconcile: settlement: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if err := checkFields(rec, line); err != nil {
			return nil, err
		}
		row := Row{PaymentID: strings.TrimSpace(rec[0]), OrderID: strings.TrimSpace(rec[1]),
			Currency: strings.ToUpper(strings.TrimSpace(rec[3]))}
		if row.PaymentID == "" {
			return nil, fmt.Errorf("reconcile: settlement line %d: no payment id", line)
		}
		// The table shows these to the operator: a terminal escape or a
		// bidirectional override could make one id read as another.
		for _, f := range []struct{ name, v string }{{"payment id", row.PaymentID}, {"order id", row.OrderID}, {"currency", row.Currency}} {
			if !surge.Plain(f.v) {
				return nil, fmt.Errorf("reconcile: settlement line %d: the %s %q holds a control character, a line separator, a bidirectional control or invalid UTF-8", line, f.name, f.v)
			}
		}
		amount := strings.TrimSpace(rec[2])
		row.AmountCents, err = parseAmount(amount, surge.MinorDigits(row.Currency))
		if d := surge.StripeDigits(row.Currency); d != surge.MinorDigits(row.Currency) && strings.Contains(amount, ".") {
			// A fraction Stripe's units cannot hold leaves it 0: such a
			// line is no Stripe payment's, and is compared as read.
			if sc, serr := parseAmount(amount, d); serr == nil {
				row.stripeCents = sc
				if err != nil {
					// A fraction only Stripe's units hold (a króna charge
					// of before 2023, "40.10"): read in them, not refused.
					row.AmountCents, row.inStripe, err = sc, true, nil
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("reconcile: settlement line %d: %w", line, err)
		}
		if row.Status, err = parseStatus(rec[4]); err != nil {
			return nil, fmt.Errorf("reconcile: settlement line %d: %w", line, err)
		}
		rows = append(rows, row)
	}
}

// checkHeader refuses a header that is not columns (names may use spaces,
// "_" or "-", in any case), naming the first column at fault, what it
// holds and what is wanted there: the operator fixes the file from that.
func checkHeader(header []string) error {
	for i := range max(len(header), len(columns)) {
		var found string
		switch {
		case i >= len(header):
			found = "missing"
		case i >= len(columns):
			return fmt.Errorf("reconcile: settlement header: column %d is %q, want none after %q (the header is %s)",
				i+1, header[i], columns[len(columns)-1], strings.Join(columns, ", "))
		case strings.ToLower(strings.NewReplacer("_", " ", "-", " ").Replace(strings.TrimSpace(header[i]))) == columns[i]:
			continue
		default:
			found = strconv.Quote(header[i])
		}
		return fmt.Errorf("reconcile: settlement header: column %d is %s, want %q (the header is %s)",
			i+1, found, columns[i], strings.Join(columns, ", "))
	}
	return nil
}

// checkFields refuses a line of other than len(columns) fields, saying
// how many it has, which are wanted and, when too few, which have none.
func checkFields(rec []string, line int) error {
	if len(rec) == len(columns) {
		return nil
	}
	fields := "fields"
	if len(rec) == 1 {
		fields = "field"
	}
	err := fmt.Errorf("reconcile: settlement line %d: %d %s, want %d (%s)", line, len(rec), fields, len(columns), strings.Join(columns, ", "))
	if len(rec) < len(columns) {
		err = fmt.Errorf("%w: no %s", err, strings.Join(columns[len(rec):], ", "))
	}
	return err
}

// amountFor is the row's amount in the units Surge recorded p in: Stripe's
// for a Stripe payment, whose amounts are the webhooks'; digits are those
// units' places, for showing it.
func (r Row) amountFor(p surge.Payment) (cents int64, digits int) {
	if r.stripeCents != 0 && p.Provider == "stripe" {
		return r.stripeCents, surge.StripeDigits(strings.ToUpper(r.Currency))
	}
	return r.AmountCents, r.digits()
}

// digits are the places of the units AmountCents is in: a count of
// Stripe's hundredths of a króna shown as whole krónur would read as a
// hundred times the line's figure.
func (r Row) digits() int {
	if r.inStripe {
		return surge.StripeDigits(strings.ToUpper(r.Currency))
	}
	return surge.MinorDigits(strings.ToUpper(r.Currency))
}

// parseAmount reads minor units, or a decimal in major units with at most
// digits places (the currency's minor unit); zeros beyond them are
// accepted ("1000.00" yen). Only the forms docs/payments.md gives: ASCII
// digits, with at most one point between digits. A sign ("+12", "-0") or
// a bare fraction (".5") is another format's, whose next line may not
// read as it means (a signed ledger's "-12.00", a refund).
func parseAmount(s string, digits int) (int64, error) {
	whole, frac, dec := strings.Cut(s, ".")
	if !decimalDigits(whole) || dec && !decimalDigits(frac) {
		return 0, fmt.Errorf("amount %q is not digits of a non-negative amount: minor units (12999) or a decimal in major units (129.99), with no sign", s)
	}
	if trimmed := strings.TrimRight(frac, "0"); len(frac) > digits {
		if len(trimmed) > digits {
			return 0, fmt.Errorf("amount %q: at most %s decimal places in this currency", s, []string{"zero", "one", "two", "three", "four"}[digits])
		}
		frac = frac[:digits]
	}
	if dec {
		frac += strings.Repeat("0", digits-len(frac))
	}
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		// Digits only: the one failure left is the range.
		return 0, fmt.Errorf("amount %q is over the largest amount, %s", s, strings.TrimSpace(surge.FormatMinorUnits(math.MaxInt64, digits, "")))
	}
	return n, nil
}

// decimalDigits reports whether s is one or more ASCII digits.
func decimalDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func parseStatus(s string) (Status, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "succeeded", "paid", "settled", "captured", "payment.succeeded":
		return Settled, nil
	case "refunded", "refund", "refund.succeeded":
		return Refunded, nil
	case "failed", "declined", "canceled", "cancelled", "payment.failed":
		return Failed, nil
	}
	return "", fmt.Errorf("status %q: want succeeded, refunded or failed", s)
}
