package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SynchronousCommit returns the synchronous_commit a session opened with
// url runs with: the server's, database's or role's setting, or the URL's
// own options. "off" (or "local" with replicas) lets PostgreSQL answer a
// COMMIT before the WAL is flushed, so an order confirmed with 201 can
// vanish in a crash of the server: the caller should warn.
func SynchronousCommit(ctx context.Context, url string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", fmt.Errorf("postgres: parse url: %w", err)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 2 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
		return "", fmt.Errorf("postgres: show synchronous_commit: %w", err)
	}
	return v, nil
}
