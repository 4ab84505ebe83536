package postgres

import (
	"context"
	"errors"
	neturl "net/url"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestInstallLockOutlivesShortStall: PostgreSQL, or the path to it,
// stalls for a little over a second while a change holds a sale's install
// lock, well within the 5 s PostgreSQL keeps a silent session. The lock
// must hold: its keepalive gave up after one second, closing the
// connection and with it the lock, without a word, and the leader could
// start a rebuild over the install under way.
func TestInstallLockOutlivesShortStall(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	direct, err := neturl.Parse(servicetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	pgp := servicetest.NewProxy(t, direct.Host)
	via := *direct
	via.Host = pgp.Addr
	db, err := Open(ctx, via.String(), Options{Schema: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	other, err := Open(ctx, servicetest.PostgresURL(), Options{Schema: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	lock, err := db.LockInstall(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	// A stall of 2.5 s: the keepalive sent during it waits the stall out.
	pgp.Pause()
	time.Sleep(2500 * time.Millisecond) // the stall itself, not a wait for state
	pgp.Resume()

	// The keepalive still runs: it did not give the lock up.
	gaveUp := false
	select {
	case <-lock.done:
		gaveUp = true
	default:
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := other.TryLockInstall(sctx, "s")
	if err == nil {
		_ = l.Release(sctx)
	}
	if err := lock.Release(sctx); err != nil {
		t.Errorf("Release of a lock that held: %v", err)
	}
	if gaveUp {
		t.Error("the install lock's keepalive gave the lock up during a 2.5 s stall (its connection closed, and the lock with it)")
	}
	if !errors.Is(err, ErrInstalling) {
		t.Errorf("a rebuild's try for the install lock after a 2.5 s stall: %v, want ErrInstalling (the lock was dropped)", err)
	}
}
