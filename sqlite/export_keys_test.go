package sqlite

import (
	"database/sql"
	"testing"
)

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

// QueryPlan is SQLite's plan for query with args on db, a step a line
// (EXPLAIN QUERY PLAN's detail column).
func QueryPlan(t testing.TB, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
