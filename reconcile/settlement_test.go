package reconcile

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func TestReadSettlement(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []Row
		err      string
	}{
		{"minor units and decimals", "payment id,order id,amount,currency,status\np1,o1,12999,eur,succeeded\np2,,129.9,USD,Refunded\n\"p,3\",o3,0.05,EUR,failed\n",
			[]Row{{PaymentID: "p1", OrderID: "o1", AmountCents: 12999, Currency: "EUR", Status: Settled}, {PaymentID: "p2", AmountCents: 12990, Currency: "USD", Status: Refunded}, {PaymentID: "p,3", OrderID: "o3", AmountCents: 5, Currency: "EUR", Status: Failed}}, ""},
		{"snake-case header, CRLF", "payment_id,order_id,amount,currency,status\r\np1,o1,1.00,EUR,paid\r\n",
			[]Row{{PaymentID: "p1", OrderID: "o1", AmountCents: 100, Currency: "EUR", Status: Settled}}, ""},
		// Excel's "CSV UTF-8" and many providers' exports begin with a
		// byte order mark, which is no part of the first column's name.
		{"UTF-8 byte order mark", "\ufeffpayment id,order id,amount,currency,status\np1,o1,12.50,EUR,paid\n",
			[]Row{{PaymentID: "p1", OrderID: "o1", AmountCents: 1250, Currency: "EUR", Status: Settled}}, ""},
		{"empty", "", nil, "empty"},
		{"only a byte order mark", "\ufeff", nil, "empty"},
		{"wrong header", "id,order,amount,currency,status\n", nil, "column 1"},
		{"three decimals", "payment id,order id,amount,currency,status\np1,o1,1.001,EUR,paid\n", nil, "two decimal places"},
		{"negative", "payment id,order id,amount,currency,status\np1,o1,-1,EUR,paid\n", nil, "non-negative"},
		{"unknown status", "payment id,order id,amount,currency,status\np1,o1,1,EUR,pending\n", nil, "status"},
		{"missing column", "payment id,order id,amount,currency,status\np1,o1,1,EUR\n", nil, "fields"},
		{"no payment id", "payment id,order id,amount,currency,status\n,o1,1,EUR,paid\n", nil, "no payment id"},
		// Ids are shown to the operator in surge reconcile's table: a
		// terminal escape or a bidirectional override could make one read
		// as another.
		{"payment id with a terminal escape", "payment id,order id,amount,currency,status\n\"p1\x1b[2J\",o1,1,EUR,paid\n", nil, "payment id"},
		{"order id with a bidirectional override", "payment id,order id,amount,currency,status\np1,o1\u202e,1,EUR,paid\n", nil, "order id"},
		{"currency with a line separator", "payment id,order id,amount,currency,status\np1,o1,1,E\u2028R,paid\n", nil, "currency"},
		{"payment id not UTF-8", "payment id,order id,amount,currency,status\np\xff1,o1,1,EUR,paid\n", nil, "payment id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadSettlement(strings.NewReader(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("err = %v, want one about %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("rows = %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("row %d = %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// TestReadSettlementHeaderNamesColumns: a settlement file whose header is
// not the one docs/payments.md gives is refused (exit 2), and the message
// must let the operator fix it: the column at fault, the name found there
// and the name wanted. A header of a column too few was refused with
// encoding/csv's "wrong number of fields", naming no column, and a wrong
// name with the whole header, not the one name wanted there.
func TestReadSettlementHeaderNamesColumns(t *testing.T) {
	for _, c := range []struct{ name, header, want string }{
		{"first name wrong", "id,order id,amount,currency,status",
			`settlement header: column 1 is "id", want "payment id"`},
		{"a later name wrong", "payment id,order,amount,currency,status",
			`settlement header: column 2 is "order", want "order id"`},
		{"a column left out", "payment id,amount,currency,status",
			`settlement header: column 2 is "amount", want "order id"`},
		{"the last column missing", "payment id,order id,amount,currency",
			`settlement header: column 5 is missing, want "status"`},
		{"a column too many", "payment id,order id,amount,currency,status,fee",
			`settlement header: column 6 is "fee", want none after "status"`},
		{"a trailing comma", "payment id,order id,amount,currency,status,",
			`settlement header: column 6 is "", want none after "status"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadSettlement(strings.NewReader(c.header + "\np1,o1,1,EUR,paid\n"))
			if err == nil || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), "payment id, order id, amount, currency, status") {
				t.Errorf("err = %v, want one saying %q and giving the whole header", err, c.want)
			}
		})
	}
}

// TestReadSettlementLineNamesColumns: a line of a field too few or too
// many was refused with encoding/csv's "record on line 3: wrong number of
// fields", which says neither how many it has nor which are wanted; the
// message names both, and the column left without a value.
func TestReadSettlementLineNamesColumns(t *testing.T) {
	const header = "payment id,order id,amount,currency,status\n"
	for _, c := range []struct{ name, lines, want string }{
		{"a field too few", "p1,o1,1,EUR,paid\np2,o2,1,EUR\n",
			`settlement line 3: 4 fields, want 5 (payment id, order id, amount, currency, status): no status`},
		{"a field too many", "p1,o1,1,EUR,paid,extra\n",
			`settlement line 2: 6 fields, want 5 (payment id, order id, amount, currency, status)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadSettlement(strings.NewReader(header + c.lines))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestReadSettlementCurrencyDecimals: docs/payments.md reads a decimal
// amount as major units ("129.99" = 12999 minor units). A currency's minor
// unit is not always a hundredth (ISO 4217): a yen has none (a JPY sale's
// price_cents are yen), a Kuwaiti dinar has a thousandth (fils). Read with
// two places whatever the currency, "1000.00 JPY" became 100000 (a
// consistent store reported amount_differs), "12.5 KWD" became 1250 fils
// instead of 12500, and "12.345 KWD", the way a dinar amount is written,
// refused the whole file.
func TestReadSettlementCurrencyDecimals(t *testing.T) {
	const header = "payment id,order id,amount,currency,status\n"
	for _, c := range []struct {
		line string
		want int64
	}{
		{"p1,o1,1000.00,JPY,paid", 1000},
		{"p1,o1,1000,jpy,paid", 1000},
		{"p1,o1,12.345,KWD,paid", 12345},
		{"p1,o1,12.5,KWD,paid", 12500},
		{"p1,o1,12345,KWD,paid", 12345},
		{"p1,o1,129.99,EUR,paid", 12999},
	} {
		rows, err := ReadSettlement(strings.NewReader(header + c.line + "\n"))
		if err != nil {
			t.Errorf("%s: refused (%v); want %d minor units", c.line, err, c.want)
			continue
		}
		if len(rows) != 1 || rows[0].AmountCents != c.want {
			t.Errorf("%s: read %+v; want %d minor units of %s", c.line, rows, c.want, rows[0].Currency)
		}
	}
	for _, line := range []string{"p1,o1,1000.5,JPY,paid", "p1,o1,1.0001,KWD,paid", "p1,o1,1.001,EUR,paid"} {
		if rows, err := ReadSettlement(strings.NewReader(header + line + "\n")); err == nil {
			t.Errorf("%s: read %+v; want it refused, a fraction of the currency's minor unit", line, rows)
		}
	}
}

// TestReadSettlementAmountForms: docs/payments.md, "The amount is minor
// units (12999) or a decimal in major units with at most as many places
// as the currency's minor unit". "12." is refused (a decimal point must be
// followed by digits), "-1" too; "+12", ".5" and "-0" were read (12, 50,
// 0): forms the docs do not describe, from a file in another format (a
// signed ledger: "+12.00" taken, "-12.00" given back) read as far as its
// first refund. Each is refused naming what an amount is; the forms the
// docs give still read.
func TestReadSettlementAmountForms(t *testing.T) {
	const header = "payment id,order id,amount,currency,status\n"
	for _, amount := range []string{"+12", "+12.00", ".5", "+.5", "-0", "-0.00", "1.+5", "1.-5", "0x10", "1_000", "1e3"} {
		rows, err := ReadSettlement(strings.NewReader(header + "p1,o1," + amount + ",EUR,paid\n"))
		if err == nil {
			t.Errorf("amount %q: read as %d minor units; want it refused", amount, rows[0].AmountCents)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(amount)) || !strings.Contains(err.Error(), "digits") {
			t.Errorf("amount %q: refused with %q; want the amount named and what an amount is (digits)", amount, err)
		}
	}
	for amount, want := range map[string]int64{"12999": 12999, "129.99": 12999, "0.05": 5, "0": 0, "0.00": 0, "007": 7, "12.5": 1250,
		"92233720368547758.07": 9223372036854775807} {
		rows, err := ReadSettlement(strings.NewReader(header + "p1,o1," + amount + ",EUR,paid\n"))
		if err != nil || rows[0].AmountCents != want {
			t.Errorf("amount %q: read %+v, %v; want %d minor units", amount, rows, err, want)
		}
	}
	// Digits past int64: refused as too large, not as "not a non-negative amount".
	for _, amount := range []string{"92233720368547758.08", "9223372036854775808"} {
		_, err := ReadSettlement(strings.NewReader(header + "p1,o1," + amount + ",EUR,paid\n"))
		if err == nil || !strings.Contains(err.Error(), "over the largest amount, 92233720368547758.07") {
			t.Errorf("amount %q: %v; want it refused as over the largest amount, 92233720368547758.07", amount, err)
		}
	}
}

// FuzzReadSettlement: any file either reads, or fails with a message that
// says so; what it reads has a payment id, ids and currency in plain text,
// an amount not below zero and a known status, and written back as CSV in
// minor units it reads the same.
func FuzzReadSettlement(f *testing.F) {
	const header = "payment id,order id,amount,currency,status\n"
	for _, s := range []string{
		header + "p1,o1,12999,eur,succeeded\np2,,129.9,USD,Refunded\n\"p,3\",o3,0.05,EUR,failed\n",
		"payment_id,order_id,amount,currency,status\r\np1,o1,1.00,EUR,paid\r\n",
		header + "p1,o1,+.5,EUR,paid\n",
		header + "p1,o1,92233720368547758.07,EUR,paid\n",
		header + "\"p\"\"1\", o1 ,1,EUR, captured \n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, err := ReadSettlement(bytes.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "reconcile: ") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			return
		}
		var out bytes.Buffer
		w := csv.NewWriter(&out)
		_ = w.Write(columns)
		for _, r := range rows {
			switch {
			case r.PaymentID == "" || r.PaymentID != strings.TrimSpace(r.PaymentID):
				t.Fatalf("row %+v: payment id empty or not trimmed", r)
			case r.AmountCents < 0:
				t.Fatalf("row %+v: negative amount", r)
			case r.Status != Settled && r.Status != Refunded && r.Status != Failed:
				t.Fatalf("row %+v: status %q", r, r.Status)
			case !surge.Plain(r.PaymentID) || !surge.Plain(r.OrderID) || !surge.Plain(r.Currency):
				t.Fatalf("row %+v: an id or the currency is not plain text", r)
			}
			_ = w.Write([]string{r.PaymentID, r.OrderID, strconv.FormatInt(r.AmountCents, 10), r.Currency, string(r.Status)})
		}
		w.Flush()
		again, err := ReadSettlement(&out)
		if err != nil {
			t.Fatalf("rows read back: %v\n%s", err, out.String())
		}
		for i := range rows {
			rows[i].stripeCents = 0 // written back in minor units: the decimal's other reading is gone
		}
		if !slices.Equal(again, rows) {
			t.Fatalf("read back %+v, want %+v", again, rows)
		}
	})
}

// TestWriteTableShowsIdsPlainly: ids recorded before the webhooks refused
// control characters (or read from a source that does not check them)
// must not reach the operator's terminal raw.
func TestWriteTableShowsIdsPlainly(t *testing.T) {
	rep := Report{Mismatches: []Mismatch{{Kind: PaidNotAtProvider, PaymentID: "evt_\x1b[2J", OrderID: "o_\u202e1",
		SaleID: "s\u2028", Detail: "Surge counts 100 E\x07R paid for \xffo_1 \uFFFD"}}}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, r := range out.String() {
		if r != '\n' && (r < ' ' || r == 0x7f || r == '\u202e' || r == '\u2028') {
			t.Fatalf("table holds %U raw:\n%q", r, out.String())
		}
	}
	for _, want := range []string{`"evt_\x1b[2J"`, `"o_\u202e1"`, `"s\u2028"`, `E\aR`, "for \\xffo_1 \uFFFD"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %s:\n%s", want, out.String())
		}
	}
}

// TestSettlementReadsEveryWebhookID: docs/payments.md, reconciliation:
// "a consistent store never reports a mismatch", and the settlement's ids
// "must be plain text, as a webhook's event id". The webhook records an
// event id with spaces around it (plain text), but a settlement line
// naming that very id, quoted as CSV quotes it, reads as the id without
// its spaces: the payment can never be matched, and a consistent store
// reports paid_not_in_surge and paid_not_at_provider, exit 1.
func TestSettlementReadsEveryWebhookID(t *testing.T) {
	for _, id := range []string{" evt_1", "evt_2 ", "\u00a0evt_3"} {
		ev := surge.PaymentEvent{ID: id, Type: surge.PaymentSucceeded, OrderID: "o_1", AmountCents: 100, Currency: "EUR",
			Created: time.Unix(1767225600, 0).UTC(), Provider: "surge"}
		if err := surge.CheckPaymentEvent(ev); err != nil {
			continue // refused by the webhook: nothing to match
		}
		rows, err := ReadSettlement(strings.NewReader("payment id,order id,amount,currency,status\n\"" + id + "\",o_1,100,EUR,succeeded\n"))
		if err != nil {
			t.Errorf("webhook id %q: the settlement line naming it is refused: %v", id, err)
			continue
		}
		if rows[0].PaymentID != id {
			t.Errorf("the webhook records payment id %q; the settlement line naming it reads as %q: they never match", id, rows[0].PaymentID)
		}
	}
}
