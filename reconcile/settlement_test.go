package reconcile

import (
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
