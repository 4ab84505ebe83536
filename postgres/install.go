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

// ErrInstalling answers a rebuild of a sale whose change (UpdateSale) has
// started a new epoch and is installing it in Redis (the install lock is
// held): the epoch Redis is behind is that change's, which the install
// brings; a rebuild now would fence off the purchases decided against it
// right after the change is answered.
var ErrInstalling = errors.New("postgres: a change of the sale is installing its new epoch")

// installPing is how often an install lock's transaction shows PostgreSQL
// that its node is alive, well within installIdle.
const installPing = time.Second

// installIdle is how long PostgreSQL keeps an install lock whose node
// went silent (stopped, cut off) before it ends the session and frees the
// lock; a node that died frees it at once (its connection closes).
const installIdle = "5s"

// Installing is a sale's install lock, held shared (changes of one sale
// do not wait for each other) in a transaction of its own, from before a
// change commits its new epoch until that epoch's live state is in Redis.
// Rebuild takes it exclusively, without waiting, so the leader never
// starts an epoch over an install under way, and learns at once when the
// installing node died: PostgreSQL frees the lock with the session.
type Installing struct {
	conn *pgxpool.Conn
	tx   pgx.Tx
	stop chan struct{}
	done chan struct{}
}

// LockInstall takes the sale's install lock (see Installing). Release it
// once the install is over, whatever its outcome.
func (d *DB) LockInstall(ctx context.Context, saleID string) (*Installing, error) {
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
	if err == nil {
		_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared(`+installKey+`)`, saleID)
	}
	if err != nil {
		if tx != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
		conn.Release()
		return nil, fmt.Errorf("postgres: install lock of sale %s: %w", saleID, err)
	}
	l := &Installing{conn: conn, tx: tx, stop: make(chan struct{}), done: make(chan struct{})}
	go l.keep()
	return l, nil
}

// keep shows PostgreSQL the node is alive until Release. A ping that
// fails means the session is gone, and with it the lock.
func (l *Installing) keep() {
	defer close(l.done)
	t := time.NewTicker(installPing)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), installPing)
		_, err := l.tx.Exec(ctx, `SELECT 1`)
		cancel()
		if err != nil {
			return
		}
	}
}

// Release frees the install lock. Should its rollback fail, the
// connection is closed, which frees it too.
func (l *Installing) Release(ctx context.Context) {
	close(l.stop)
	<-l.done
	_ = l.tx.Rollback(ctx)
	l.conn.Release()
}
