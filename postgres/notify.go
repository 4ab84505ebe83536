package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// The listening connection only reads, so a path to PostgreSQL that went
// half-open (a NAT or firewall that forgot the connection, a balancer or
// pooler whose server vanished, a host gone without a FIN or RST) gives
// it no error: it waited for ever, and the node heard of no change again
// until it restarted. After listenIdle without a notification it pings
// PostgreSQL, and a ping without an answer within listenPingWait drops
// the connection for a new one, whose fn("") re-reads what was missed.
const (
	listenIdle     = 5 * time.Second
	listenPingWait = 5 * time.Second
	// listenConnectWait bounds connecting and LISTEN: a new connection
	// may meet the same dead path.
	listenConnectWait = 10 * time.Second
)

// Notify tells every node that a sale was created or got units back.
func (d *DB) Notify(ctx context.Context, saleID string) error {
	_, err := d.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, d.channel, saleID)
	return err
}

// Listen calls fn with the sale id of every notification until ctx ends,
// reconnecting after failures; after each (re)connect it calls fn("")
// because notifications sent while disconnected are lost. The loss of the
// feed and its return are logged to log, once each per outage: until it is
// back, the node hears of other nodes' changes only at its periodic sync,
// and an operator must be able to see that (the reconnects themselves,
// one a second while PostgreSQL is away, would flood the log).
func (d *DB) Listen(ctx context.Context, log *slog.Logger, fn func(saleID string)) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lostAt time.Time // zero while the feed is up (or not yet tried)
	back := func() {
		if !lostAt.IsZero() {
			log.Info("postgres: the change feed (LISTEN) is back; re-reading every sale",
				"down_for", time.Since(lostAt).Round(time.Millisecond))
			lostAt = time.Time{}
		}
	}
	for ctx.Err() == nil {
		err := d.listen(ctx, back, fn)
		if ctx.Err() != nil {
			return
		}
		if lostAt.IsZero() {
			lostAt = time.Now()
			log.Warn("postgres: the change feed (LISTEN) is lost: until it is back, this node hears of changes made on other nodes only at its periodic sync; reconnecting every second",
				"err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// listen listens on one connection until it fails; connected is called
// once it listens, before fn("").
func (d *DB) listen(ctx context.Context, connected func(), fn func(string)) error {
	conn, err := d.listenConn(ctx)
	if err != nil {
		return err
	}
	defer closeListening(ctx, conn)
	connected()
	// Listening from here on: what changed before is re-read.
	fn("")
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			fn(n.Payload)
			continue
		case ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed():
			return err
		}
		// Silent for listenIdle: is PostgreSQL still there? A notification
		// that arrives during the ping is kept for the next wait.
		pctx, cancel := context.WithTimeout(ctx, listenPingWait)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("postgres: the listening connection's ping: %w", err)
		}
	}
}

// listenConn opens a connection of its own (it ends in LISTEN state, no
// use to the pool) and listens on the channel.
func (d *DB) listenConn(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, listenConnectWait)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		closeListening(ctx, conn)
		return nil, err
	}
	return conn, nil
}

// closeListening closes conn within a second: on a dead path its goodbye
// may not get through.
func closeListening(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
