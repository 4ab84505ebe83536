package admission

// Overloaded reports whether the queue was overloaded at the last batch.
func (q *CoDel) Overloaded() bool { return q.overloaded.Load() }
