package waitroom

import (
	"context"
	"fmt"
	"math"

	"github.com/surgehq/surge"
)

// Line counts a sale's queue now, for its metrics: waiting are the
// buyers whose slot has not opened yet, admitted those whose slot has
// (each slot opens once, so admitted only grows). A lottery's entrants
// hold no slot before the draw and count in neither until it is made.
func (r *Room) Line(ctx context.Context, sale *surge.Sale) (waiting, admitted int64, err error) {
	q := queueOf(sale)
	at, _ := clock(sale, r.now())
	opened := q.Schedule.Opened(at)
	if admitted, err = r.backend.Between(ctx, q, 0, opened); err != nil {
		return 0, 0, fmt.Errorf("waitroom: line of %s: %w", sale.ID, err)
	}
	if waiting, err = r.backend.Between(ctx, q, opened, math.MaxInt64); err != nil {
		return 0, 0, fmt.Errorf("waitroom: line of %s: %w", sale.ID, err)
	}
	return waiting, admitted, nil
}

// Drop forgets the queue of an archived sale: nobody is admitted to it
// again, and without this its entries (up to the queue's bound) would stay
// in memory or in Redis for ever.
func (r *Room) Drop(ctx context.Context, saleID string) error {
	if err := r.backend.Drop(ctx, saleID); err != nil {
		return fmt.Errorf("waitroom: %w", err)
	}
	return nil
}
