package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notify tells every node that a sale was created or got units back.
func (d *DB) Notify(ctx context.Context, saleID string) error {
	_, err := d.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, d.channel, saleID)
	return err
}

// Listen calls fn with the sale id of every notification until ctx ends,
// reconnecting after failures; after each (re)connect it calls fn("")
// because notifications sent while disconnected are lost.
func (d *DB) Listen(ctx context.Context, fn func(saleID string)) {
	for ctx.Err() == nil {
		err := d.listen(ctx, fn)
		if ctx.Err() != nil {
			return
		}
		_ = err // the caller's periodic sync covers the gap
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (d *DB) listen(ctx context.Context, fn func(string)) error {
	pc, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection ends in LISTEN state; it must not go back to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		return err
	}
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
