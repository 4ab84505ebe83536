package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/surgehq/surge/servicetest"
)

// migratedTo makes a schema of its own at migration version and returns a
// connection to it and the migrator, to take it further.
func migratedTo(t *testing.T, version int32) (*pgx.Conn, *migrate.Migrator) {
	t.Helper()
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	// The schema as a connection parameter, as Open sets it: tern runs
	// "reset all" after each migration.
	conn := servicetest.Conn(t, ns)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{ns}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	m, err := newMigrator(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return conn, m
}

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
			conn, m := migratedTo(t, 9)
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

// TestPauseStartUpgrade: migration 014 gives a sale paused before it a
// pause start, the operator's last change (at or after the pause), so its
// waiting room's clock stops from there rather than not at all; a live
// sale gets none.
func TestPauseStartUpgrade(t *testing.T) {
	ctx := context.Background()
	conn, m := migratedTo(t, 13)
	changed := time.Date(2026, 1, 1, 10, 5, 0, 0, time.UTC)
	for _, s := range []struct {
		id     string
		paused bool
	}{{"paused", true}, {"live", false}} {
		if _, err := conn.Exec(ctx, `INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency,
			starts_at, hold_seconds, created_at, paused, updated_at) VALUES ($1, 'x', 10, 1, 0, 'USD', $2, 900, $2, $3, $4)`,
			s.id, changed.Add(-time.Hour), s.paused, changed); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.MigrateTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]*time.Time{"paused": &changed, "live": nil} {
		var at *time.Time
		var stopped int64
		if err := conn.QueryRow(ctx, `SELECT paused_at, paused_for_ns FROM sales WHERE id = $1`, id).Scan(&at, &stopped); err != nil {
			t.Fatal(err)
		}
		if (at == nil) != (want == nil) || at != nil && !at.Equal(*want) || stopped != 0 {
			t.Errorf("sale %s after the upgrade: paused_at %v, paused_for_ns %d; want %v, 0", id, at, stopped, want)
		}
	}
}
