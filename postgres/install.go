package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// installKey is the key of a sale's ($1) install lock, an advisory lock:
// those are the database's, so the schema is part of it.
const installKey = `hashtextextended('surge.install/' || current_schema() || '/' || $1, 0)`

// ErrInstalling answers TryLockInstall while someone holds the
// sale's install lock: a change (UpdateSale) or a rebuild has started a
// new epoch and is installing it in Redis. That install brings what Redis
// lacks; starting another epoch over it would only fence off the
// purchases decided against it, or start the rebuild over.
var ErrInstalling = errors.New("postgres: the sale's new epoch is being installed")

// installPing is how often an install lock's transaction shows PostgreSQL
// that its node is alive, well within installIdle.
const installPing = time.Second

// installPingWait is how long a ping may take before the lock is given up
// for lost. A ping cut short closes the connection, which frees the lock:
// at a second, as long as the interval, a PostgreSQL or a network that
// stalled for a little over that dropped the lock of an install under way
// (the leader could then start another epoch over it) though PostgreSQL
// would have kept it. A ping that never arrived leaves the session idle
// since the previous one ended (installPing earlier), so PostgreSQL ends
// it at installIdle from then: waiting longer would hold on to nothing.
const installPingWait = 4 * time.Second

// installIdle is how long PostgreSQL keeps an install lock whose node
// went silent (stopped, cut off) before it ends the session and frees the
// lock; a node that died frees it at once (its connection closes).
const installIdle = "5s"

// Installing is a sale's install lock, held shared in a transaction of
// its own from before a new epoch of the sale commits until that epoch's
// live state is in Redis: by a change (LockInstall; changes of one sale do
// not wait for each other) and by the leader's rebuild (TryLockInstall),
// which takes it only if no one holds it, so the leader never starts an
// epoch over an install under way, and learns at once when the installing
// node died: PostgreSQL frees the lock with the session.
type Installing struct {
	sale string
	conn *pgxpool.Conn
	tx   pgx.Tx
	stop context.CancelFunc // ends keep, and a ping it waits on
	ctx  context.Context    // keep's, ended by stop
	done chan struct{}
	lost error         // why keep gave the lock up; set before done closes
	slot chan struct{} // DB.installs, freed by Release
	kept chan struct{} // DB.kept, freed by Release
}

// LockInstall takes the sale's install lock for a change (see
// Installing), waiting while a rebuild checks it. Release it once the
// install is over, whatever its outcome.
func (d *DB) LockInstall(ctx context.Context, saleID string) (*Installing, error) {
	return d.lockInstall(ctx, saleID, false)
}

// TryLockInstall takes the sale's install lock for a rebuild, if no one
// holds it (ErrInstalling otherwise). Release it once the install is over.
func (d *DB) TryLockInstall(ctx context.Context, saleID string) (*Installing, error) {
	return d.lockInstall(ctx, saleID, true)
}

func (d *DB) lockInstall(ctx context.Context, saleID string, try bool) (_ *Installing, err error) {
	// A lock keeps its connection while its holder needs a second one:
	// as many holders as the pool has connections would each wait for a
	// second one for good (until their bound). At most half the pool
	// holds locks; the other holders wait here.
	select {
	case d.installs <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("postgres: install lock of sale %s: wait for the other installs: %w", saleID, ctx.Err())
	}
	defer func() {
		if err != nil {
			<-d.installs
		}
	}()
	// Nor, with the exports, all of it (DB.kept).
	select {
	case d.kept <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("postgres: install lock of sale %s: wait for the exports and other installs: %w", saleID, ctx.Err())
	}
	defer func() {
		if err != nil {
			<-d.kept
		}
	}()
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: install lock of sale %s: %w", saleID, err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		// Its own bound, whatever the URL says: the lock must not outlive
		// a node that went silent for long.
		_, err = tx.Exec(ctx, `SET LOCAL idle_in_transaction_session_timeout = '`+installIdle+`'`)
	}
	if err == nil && try {
		// Alone, for a moment: no one holds it, shared or not, and no
		// change takes it before this one holds it shared.
		var free bool
		if err = tx.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+installKey+`)`, saleID).Scan(&free); err == nil && !free {
			_ = tx.Rollback(ctx)
			conn.Release()
			return nil, ErrInstalling
		}
	}
	if err == nil {
		_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared(`+installKey+`)`, saleID)
	}
	if err == nil && try {
		_, err = tx.Exec(ctx, `SELECT pg_advisory_unlock(`+installKey+`)`, saleID)
	}
	if err != nil {
		// A lock of the session must not go back to the pool with it.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
		return nil, fmt.Errorf("postgres: install lock of sale %s: %w", saleID, err)
	}
	kctx, stop := context.WithCancel(context.Background())
	l := &Installing{sale: saleID, conn: conn, tx: tx, ctx: kctx, stop: stop, done: make(chan struct{}), slot: d.installs, kept: d.kept}
	go l.keep()
	return l, nil
}

// keep shows PostgreSQL the node is alive until Release. A ping that
// fails means the session is gone, and with it the lock (l.lost).
func (l *Installing) keep() {
	defer close(l.done)
	t := time.NewTicker(installPing)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(l.ctx, installPingWait)
		_, err := l.tx.Exec(ctx, `SELECT 1`)
		cancel()
		if err != nil {
			if l.ctx.Err() == nil {
				l.lost = fmt.Errorf("postgres: install lock of sale %s lost: its keepalive failed: %w", l.sale, err)
			}
			return
		}
	}
}

// Release frees the install lock. Should its rollback fail, the
// connection is closed, which frees it too. It returns why the lock was
// lost before, if it was: the install then went on without it, and
// another one (the leader's rebuild) may have started over it.
func (l *Installing) Release(ctx context.Context) error {
	l.stop()
	<-l.done
	_ = l.tx.Rollback(ctx)
	l.conn.Release()
	<-l.slot
	<-l.kept
	return l.lost
}
