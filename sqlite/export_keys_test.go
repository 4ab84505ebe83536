package sqlite

// KeyQuery is findKeys' query, for its plan test.
const KeyQuery = keyQuery

// Keys counts the idempotency keys a sale holds in memory (for tests and
// checks; it walks them all).
func (s *Store) Keys(saleID string) int {
	st := s.sale(saleID)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.l.Keys()
}

// Dormant reports whether a sale's orders were left on disk at start.
func (s *Store) Dormant(saleID string) bool {
	st := s.sale(saleID)
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.l.IsDormant()
}
