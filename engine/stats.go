package engine

// Stats are the pipeline's path counters, which no metric duplicates:
// the API counts answers by outcome, not by the path that decided them.
// Batch sizes are in the node's registry (surge_batch_size).
type Stats struct {
	FastRejects int64 // purchases answered without the store
	Shed        int64 // purchases refused admission to the slow path
}

// Stats returns the path counters.
func (e *Engine) Stats() Stats {
	return Stats{FastRejects: e.fastRejects.Load(), Shed: e.shed.Load()}
}
