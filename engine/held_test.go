package engine

import (
	"context"
	"testing"

	"github.com/surgehq/surge"
)

// heldBy sums the units user holds in a sale (reserved or paid), as the
// store's orders show them; 0 for an unknown sale.
func heldBy(tb testing.TB, st surge.OrderBook, saleID, user string) int64 {
	tb.Helper()
	var n int64
	err := st.Orders(context.Background(), saleID, func(o surge.Order) error {
		if o.UserID == user && (o.Status == surge.OrderReserved || o.Status == surge.OrderPaid) {
			n += o.Quantity
		}
		return nil
	})
	if err != nil && !surge.HasCode(err, surge.CodeSaleNotFound) {
		tb.Fatalf("orders of %s: %v", saleID, err)
	}
	return n
}
