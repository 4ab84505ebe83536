package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// Held returns ids of orders whose units one bucket of the sale's live
// state holds, about count of them from cursor (0: the start), and the
// cursor to go on from (0: the bucket was read through).
func (s *Stock) Held(ctx context.Context, l Layout, bucket int, cursor uint64, count int64) (ids []string, next uint64, err error) {
	kv, next, err := s.c.HScan(ctx, s.keys(l, bucket).orders, cursor, "", count).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redis: held orders of sale %s: %w", l.Sale, err)
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i] != "!" { // the sentinel
			ids = append(ids, kv[i])
		}
	}
	return ids, next, nil
}

// Unconfirmed returns up to limit batches per bucket reserved in the
// sale's live state at least age ago (AnyAge: whatever their age) that no
// one has yet checked against PostgreSQL, each the ids of one batch's new
// orders (one Redis call decided them and one PostgreSQL statement
// commits them, all or none). Age is measured on Redis's clock, which
// scored them (reserve.lua): a node's clock behind the leader's made its
// batches in flight look abandoned. A member of the pending set is a
// batch's ids joined by ','; a single id, as older nodes wrote, is a
// batch of one.
func (s *Stock) Unconfirmed(ctx context.Context, l Layout, age time.Duration, limit int64) ([][]string, error) {
	ageArg := ""
	if age != AnyAge {
		ageArg = strconv.FormatInt(age.Milliseconds(), 10)
	}
	var batches [][]string
	for b := range l.n() {
		got, err := unconfirmedScript.Run(ctx, s.c, []string{s.keys(l, b).pending}, ageArg, limit).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("redis: unconfirmed of sale %s: %w", l.Sale, err)
		}
		for _, m := range got {
			batches = append(batches, strings.Split(m, ","))
		}
	}
	return batches, nil
}

// AnyAge asks Unconfirmed for every batch waiting, however recent.
const AnyAge time.Duration = -1

// Confirm records that batches Unconfirmed returned are durable in
// PostgreSQL.
func (s *Stock) Confirm(ctx context.Context, l Layout, batches [][]string) error {
	if len(batches) == 0 {
		return nil
	}
	members := make([]any, len(batches))
	for i, ids := range batches {
		members[i] = strings.Join(ids, ",")
	}
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range l.n() {
			p.ZRem(ctx, s.keys(l, b).pending, members...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: confirm in sale %s: %w", l.Sale, err)
	}
	return nil
}
