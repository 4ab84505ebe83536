package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge/servicetest"
)

// TestEventsSwitchUpgrade: migration 010 keeps order events on in a
// cluster where a relay ever held the outbox lease, and off in one where
// none did.
func TestEventsSwitchUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lease bool
		want  bool
	}{
		{"a relay held the outbox lease", true, true},
		{"no relay ever", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ns := servicetest.Namespace(t)
			// The schema as a connection parameter, as Open sets it: tern
			// runs "reset all" after each migration.
			conn := servicetest.Conn(t, ns)
			if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{ns}.Sanitize()); err != nil {
				t.Fatal(err)
			}
			m, err := newMigrator(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.MigrateTo(ctx, 9); err != nil {
				t.Fatal(err)
			}
			if tc.lease {
				if _, err := conn.Exec(ctx, `INSERT INTO leases (name, holder, token, expires_at) VALUES ('outbox', 'old', 1, now())`); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.MigrateTo(ctx, 10); err != nil {
				t.Fatal(err)
			}
			var on bool
			if err := conn.QueryRow(ctx, `SELECT surge_events()`).Scan(&on); err != nil {
				t.Fatal(err)
			}
			if on != tc.want {
				t.Errorf("events on after the upgrade: %v, want %v", on, tc.want)
			}
		})
	}
}
