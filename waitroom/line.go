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
// Admission ends with the sale: once it has ended nobody waits (every
// place is expired), and the admitted are those whose slot opened
// before the end.
func (r *Room) Line(ctx context.Context, sale *surge.Sale) (waiting, admitted int64, err error) {
	q := queueOf(sale)
	now := r.now()
	at, _ := clock(sale, now)
	opened := q.Schedule.Opened(at)
	ended := sale.Window(now) == surge.CodeEnded
	if ended {
		end, _ := clock(sale, sale.EndsAt)
		opened = min(opened, q.Schedule.FirstFree(end))
	}
	if admitted, err = r.backend.Between(ctx, q, 0, opened); err != nil {
		return 0, 0, fmt.Errorf("waitroom: line of %s: %w", sale.ID, err)
	}
	if ended {
		return 0, admitted, nil
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
