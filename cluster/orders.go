package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
)

// Cancel implements surge.Store.
func (s *Store) Cancel(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderCancelled, surge.ErrNotCancellable, now)
}

// Pay implements surge.Store.
func (s *Store) Pay(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderPaid, surge.ErrNotPayable, now)
}

func (s *Store) settle(ctx context.Context, id string, status surge.OrderStatus, notReserved error, now time.Time) (surge.Order, error) {
	if s.closed.Load() {
		return surge.Order{}, surge.ErrUnavailable
	}
	var o surge.Order
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		o, err = s.db.Settle(ctx, id, status, now.UTC().Truncate(time.Millisecond))
		return err
	})
	if errors.Is(err, postgres.ErrNotReserved) {
		return surge.Order{}, notReserved
	}
	if err != nil {
		return surge.Order{}, unavailable("updating the order", err)
	}
	if !status.Live() {
		s.release(ctx, o.SaleID, []surge.Order{o})
	}
	return o, nil
}

// Order implements surge.Store.
func (s *Store) Order(ctx context.Context, id string) (surge.Order, error) {
	var o surge.Order
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		o, err = s.db.Order(ctx, id)
		return err
	})
	if err != nil {
		return surge.Order{}, unavailable("reading the order", err)
	}
	return o, nil
}

// Orders implements surge.Store. It streams from PostgreSQL without the
// call timeout: an export of a large sale takes as long as it takes.
func (s *Store) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	if err := s.knownSale(ctx, saleID); err != nil { // archived ones too
		return err
	}
	if err := s.db.Orders(ctx, saleID, fn); err != nil {
		return unavailable("reading the orders", err)
	}
	return nil
}
