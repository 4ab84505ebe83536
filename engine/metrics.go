package engine

import "github.com/surgehq/surge/metrics"

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
