package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestChecksBuildNoIndexPerRow: the CHECKs on an order's status and an
// outbox event are coded without a temporary index, for a new database
// and for one of an older version whose CHECKs listed the values with IN
// (rewritten at Open). SQLite builds such an index anew for every row an
// INSERT or the quick check checks; it cost a start after a crash 1.4 s
// of CPU with a million orders. The rewritten CHECKs accept exactly the
// values the old ones did and still refuse any other.
func TestChecksBuildNoIndexPerRow(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(map[bool]string{false: "new", true: "older version"}[old], func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, sqlite.FileName)
			if old {
				writeOldDatabase(t, path)
				raw, err := sql.Open("sqlite", "file:"+path)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := raw.Exec(`CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, sale_id TEXT NOT NULL,
					order_id TEXT NOT NULL, event TEXT NOT NULL CHECK (event IN ('reserved','paid','cancelled','expired','refund_due')),
					at TEXT NOT NULL, ref TEXT) STRICT`); err != nil {
					t.Fatal(err)
				}
				raw.Close()
			}
			s := open(t, dir)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			raw, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetMaxOpenConns(1)

			for _, stmt := range []string{
				`PRAGMA quick_check`,
				`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at) VALUES ('o', 's', 'u', 1, 'reserved', 't', 't')`,
				`UPDATE orders SET status = 'paid' WHERE id = 'o'`,
				`INSERT INTO outbox (sale_id, order_id, event, at) VALUES ('s', 'o', 'paid', 't')`,
			} {
				if strings.Contains(opcodes(t, raw, stmt), " OpenEphemeral ") {
					t.Errorf("%s builds a temporary index (OpenEphemeral)", stmt)
				}
			}

			tx, err := raw.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			for _, c := range []struct {
				stmt     string
				accepted []string
				refused  []string
			}{
				{`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at) VALUES (?1, 's', 'u', 1, ?1, 't', 't')`,
					[]string{"reserved", "paid", "cancelled", "expired"}, []string{"refund_due", "Paid", ""}},
				{`INSERT INTO outbox (sale_id, order_id, event, at) VALUES ('s', 'o', ?1, 't')`,
					[]string{"reserved", "paid", "cancelled", "expired", "refund_due"}, []string{"refunded", ""}},
			} {
				for _, v := range c.accepted {
					if _, err := tx.Exec(c.stmt, v); err != nil {
						t.Errorf("%q refused: %v", v, err)
					}
				}
				for _, v := range c.refused {
					if _, err := tx.Exec(c.stmt, v); err == nil || !strings.Contains(err.Error(), "CHECK constraint failed") {
						t.Errorf("%q: err = %v, want a failed CHECK", v, err)
					}
				}
			}
		})
	}
}

// opcodes lists the opcodes of stmt's program, each between spaces.
func opcodes(t *testing.T, db *sql.DB, stmt string) string {
	t.Helper()
	rows, err := db.Query(`EXPLAIN ` + stmt)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", stmt, err)
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteByte(' ')
	for rows.Next() {
		var addr, p1, p2, p3, p5 sql.NullInt64
		var op, p4, comment sql.NullString
		if err := rows.Scan(&addr, &op, &p1, &p2, &p3, &p4, &p5, &comment); err != nil {
			t.Fatal(err)
		}
		b.WriteString(op.String + " ")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
