package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/surgehq/surge/redis"
)

// clusterCommit is the cluster floor's commit: one DECRBY in Redis (the
// least a live stock costs) and one PostgreSQL transaction inserting the
// keys into a table with a primary key and a unique key (the least an
// order row costs), in that order, as a cluster node commits a batch.
func clusterCommit(ctx context.Context, redisURL, postgresURL, prefix string) (func(keys []string) error, error) {
	// Surge's own dial: the same URLs (a Redis Cluster's too) and timeouts.
	rdb, err := redis.Dial(ctx, redisURL)
	if err != nil {
		return nil, err
	}
	stock := prefix + ":stock"
	if err := rdb.Set(ctx, stock, 1_000_000_000, 0).Err(); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	pool, err := pgxpool.New(ctx, postgresURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS ceiling_orders (seq bigserial PRIMARY KEY, k text NOT NULL UNIQUE)`); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return func(keys []string) error {
		if err := rdb.DecrBy(ctx, stock, int64(len(keys))).Err(); err != nil {
			return err
		}
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO ceiling_orders (k) SELECT unnest($1::text[])`, keys)
			return err
		})
	}, nil
}
