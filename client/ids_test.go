package client_test

import (
	"errors"
	"strings"
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

// An empty id (an unset variable) went into the path as an empty segment:
// /v1/sales/ and /v1/orders/ name no endpoint, /v1/sales//purchases is
// an unclean path, and the answer was 404 not_found "no such endpoint",
// which says nothing of the id and matches no sentinel. Every call taking
// a sale's or an order's id refuses an empty one before sending anything.
func TestEmptyIDRefusedBeforeSending(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	admin.Retry.MaxAttempts = 1
	ann := admin.AsUser("ann")
	ctx := t.Context()
	_, errSale := admin.Sale(ctx, "")
	_, errBuy := ann.Purchase(ctx, "", client.PurchaseOptions{})
	_, errPatch := admin.UpdateSale(ctx, "", api.SalePatch{Paused: new(true)})
	_, errArchive := admin.ArchiveSale(ctx, "")
	_, errJoin := ann.JoinQueue(ctx, "")
	_, errStatus := ann.QueueStatus(ctx, "", "ticket")
	errWatch := ann.WatchQueue(ctx, "", "ticket", func(api.Queue) error { return nil })
	errExport := admin.Orders(ctx, "", func(api.Order) error { return nil })
	_, errOrder := ann.Order(ctx, "")
	_, errCancel := ann.CancelOrder(ctx, "")
	_, errPay := admin.PayOrder(ctx, "")
	for _, c := range []struct {
		call, kind string
		err        error
	}{
		{"Sale", "sale", errSale}, {"Purchase", "sale", errBuy}, {"UpdateSale", "sale", errPatch},
		{"ArchiveSale", "sale", errArchive}, {"JoinQueue", "sale", errJoin}, {"QueueStatus", "sale", errStatus},
		{"WatchQueue", "sale", errWatch}, {"Orders", "sale", errExport},
		{"Order", "order", errOrder}, {"CancelOrder", "order", errCancel}, {"PayOrder", "order", errPay},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), "the "+c.kind+" id is required, nothing was sent") {
			t.Errorf(`%s(""): %v; want it refused, saying the %s id is required`, c.call, c.err, c.kind)
		}
		if !errors.Is(c.err, client.ErrEmptyID) {
			t.Errorf(`%s(""): %v; want errors.Is ErrEmptyID`, c.call, c.err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for route, n := range s.counts {
		t.Errorf("%s sent %d times; want nothing sent for an empty id", route, n)
	}
}
