package engine

import (
	"context"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/metrics"
)

// Meter returns the series of sale saleID's purchases, made once with
// the sale: the API counts each answer on it without a label lookup. A
// sale this engine does not serve (unknown or archived) shares
// metrics.Unknown, so that no request can create a series.
func (e *Engine) Meter(saleID string) *metrics.Sale {
	if s := e.lookup(saleID); s != nil {
		return s.meter
	}
	return e.cfg.Metrics.Unknown()
}

// liner is a waiting room that can count a sale's line (waitroom.Room).
type liner interface {
	Line(ctx context.Context, sale *surge.Sale) (waiting, admitted int64, err error)
}

// SaleFigures returns the live sales' figures for metrics.SaleCollector,
// read now: nothing on the purchase path keeps them.
func (e *Engine) SaleFigures(ctx context.Context) []metrics.SaleFigures {
	room, _ := e.cfg.WaitingRoom.(liner)
	m := *e.sales.Load()
	out := make([]metrics.SaleFigures, 0, len(m))
	for _, s := range m {
		st := e.state(s) // stock, remaining and status read together, as the API reads them
		sl := &st.Sale
		f := metrics.SaleFigures{Sale: s.ID, Stock: sl.Stock, Remaining: st.Remaining, Status: string(st.Status), Stale: st.Stale, Queued: len(s.inbox)}
		if sl.WaitingRoom != nil && room != nil {
			var err error
			f.Waiting, f.Admitted, err = room.Line(ctx, sl)
			f.WaitingRoom = err == nil
		}
		out = append(out, f)
	}
	return out
}
