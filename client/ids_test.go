package client_test

import (
	"errors"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// An id of "." or ".." (typed by a person: `surge sale get .`) went into
// the path as it is, a segment the server (and any proxy) reads as a
// relative path: the answer was 404 not_found "no such endpoint: a path
// has no empty, "." or ".." segment", which matches no sentinel, so
// errors.Is(err, surge.ErrSaleNotFound) was false for a sale that cannot
// exist. Such an id is sent escaped, and is not found as any other.
func TestDotIDsAreNotFound(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	admin.Retry.MaxAttempts = 1
	ann := admin.AsUser("ann")
	ctx := t.Context()
	for _, id := range []string{".", ".."} {
		_, errSale := admin.Sale(ctx, id)
		_, errBuy := ann.Purchase(ctx, id, client.PurchaseOptions{})
		_, errPatch := admin.UpdateSale(ctx, id, api.SalePatch{Paused: new(true)})
		_, errArchive := admin.ArchiveSale(ctx, id)
		_, errJoin := ann.JoinQueue(ctx, id)
		errExport := admin.Orders(ctx, id, func(api.Order) error { return nil })
		_, errOrder := ann.Order(ctx, id)
		_, errCancel := ann.CancelOrder(ctx, id)
		_, errPay := admin.PayOrder(ctx, id)
		for _, c := range []struct {
			call string
			err  error
			want error
		}{
			{"Sale", errSale, surge.ErrSaleNotFound}, {"Purchase", errBuy, surge.ErrSaleNotFound},
			{"UpdateSale", errPatch, surge.ErrSaleNotFound}, {"ArchiveSale", errArchive, surge.ErrSaleNotFound},
			{"JoinQueue", errJoin, surge.ErrSaleNotFound}, {"Orders", errExport, surge.ErrSaleNotFound},
			{"Order", errOrder, surge.ErrOrderNotFound}, {"CancelOrder", errCancel, surge.ErrOrderNotFound},
			{"PayOrder", errPay, surge.ErrOrderNotFound},
		} {
			if !errors.Is(c.err, c.want) {
				t.Errorf("%s(%q): %v; want %v", c.call, id, c.err, c.want)
			}
		}
	}
}
