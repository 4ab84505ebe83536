package engine

// Stats are pipeline counters.
type Stats struct {
	Batches     int64 // store calls made by owners
	Purchases   int64 // purchases in those calls
	FastRejects int64 // purchases answered without the store
	Shed        int64 // purchases refused admission to the slow path
}

// MeanBatch is purchases per store call.
func (s Stats) MeanBatch() float64 {
	if s.Batches == 0 {
		return 0
	}
	return float64(s.Purchases) / float64(s.Batches)
}

// Stats returns the pipeline counters.
func (e *Engine) Stats() Stats {
	return Stats{Batches: e.batches.Load(), Purchases: e.purchases.Load(), FastRejects: e.fastRejects.Load(), Shed: e.shed.Load()}
}
