package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
)

// Release returns the units of orders that left the reserved state
// (cancelled, expired). It is idempotent per order: an order the live
// state does not hold (released already, or rebuilt without it) returns
// nothing. ErrNoState if the state is missing; the rebuild will read the
// release from PostgreSQL.
func (s *Stock) Release(ctx context.Context, l Layout, orders []surge.Order) error {
	groups := make(map[int][]any)
	for _, o := range orders {
		b := l.Bucket(o.UserID)
		groups[b] = append(groups[b], o.ID)
	}
	var keys [][]string
	var args [][]any
	for b, ids := range groups {
		k := s.keys(l, b)
		keys, args = append(keys, []string{k.meta, k.users, k.orders}), append(args, ids)
	}
	cmds, err := evalMany(ctx, s.c, releaseScript, keys, args, nil)
	if err != nil {
		return fmt.Errorf("redis: release in sale %s: %w", l.Sale, err)
	}
	for _, c := range cmds {
		if n, _ := c.Int64(); n < 0 {
			return ErrNoState
		}
	}
	return nil
}

// Unconfirmed returns up to limit orders per bucket reserved in the sale's
// live state at or before the cutoff that no one has yet checked against
// PostgreSQL.
func (s *Stock) Unconfirmed(ctx context.Context, l Layout, cutoff time.Time, limit int64) ([]string, error) {
	var ids []string
	for b := range l.n() {
		got, err := s.c.ZRangeByScore(ctx, s.keys(l, b).pending, &goredis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(cutoff.UnixMilli(), 10), Count: limit,
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: unconfirmed of sale %s: %w", l.Sale, err)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// Confirm records that orders are durable in PostgreSQL.
func (s *Stock) Confirm(ctx context.Context, l Layout, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range l.n() {
			p.ZRem(ctx, s.keys(l, b).pending, args...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: confirm in sale %s: %w", l.Sale, err)
	}
	return nil
}
