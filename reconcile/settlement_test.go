package reconcile

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestReadSettlement(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []Row
		err      string
	}{
		{"minor units and decimals", "payment id,order id,amount,currency,status\np1,o1,12999,eur,succeeded\np2,,129.9,USD,Refunded\n\"p,3\",o3,0.05,EUR,failed\n",
			[]Row{{"p1", "o1", 12999, "EUR", Settled}, {"p2", "", 12990, "USD", Refunded}, {"p,3", "o3", 5, "EUR", Failed}}, ""},
		{"snake-case header, CRLF", "payment_id,order_id,amount,currency,status\r\np1,o1,1.00,EUR,paid\r\n",
			[]Row{{"p1", "o1", 100, "EUR", Settled}}, ""},
		{"empty", "", nil, "empty"},
		{"wrong header", "id,order,amount,currency,status\n", nil, "column 1"},
		{"three decimals", "payment id,order id,amount,currency,status\np1,o1,1.001,EUR,paid\n", nil, "two decimal places"},
		{"negative", "payment id,order id,amount,currency,status\np1,o1,-1,EUR,paid\n", nil, "non-negative"},
		{"unknown status", "payment id,order id,amount,currency,status\np1,o1,1,EUR,pending\n", nil, "status"},
		{"missing column", "payment id,order id,amount,currency,status\np1,o1,1,EUR\n", nil, "fields"},
		{"no payment id", "payment id,order id,amount,currency,status\n,o1,1,EUR,paid\n", nil, "no payment id"},
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

// FuzzReadSettlement: any file either reads, or fails with a message that
// says so; what it reads has a payment id, an amount not below zero and a
// known status, and written back as CSV in minor units it reads the same.
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
			}
			_ = w.Write([]string{r.PaymentID, r.OrderID, strconv.FormatInt(r.AmountCents, 10), r.Currency, string(r.Status)})
		}
		w.Flush()
		again, err := ReadSettlement(&out)
		if err != nil {
			t.Fatalf("rows read back: %v\n%s", err, out.String())
		}
		if !slices.Equal(again, rows) {
			t.Fatalf("read back %+v, want %+v", again, rows)
		}
	})
}
