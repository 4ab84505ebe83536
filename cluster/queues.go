package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/waitroom"
)

// Queues is the waiting rooms' backend of cluster mode (redis.Queues),
// its calls made as every other Redis call of the store: through the
// Redis breaker, within the call timeout. Without it, a stalled or dead
// Redis made each waiting-room request (a join, a status, the ticket check
// of a purchase) wait out Redis's timeout even while the breaker failed
// purchases at once.
type Queues struct {
	s *Store
	q *redis.Queues
}

// Queues returns the waiting rooms' backend shared by every node, kept in
// this store's Redis, at most maxEntries buyers per sale.
func (s *Store) Queues(maxEntries int) *Queues {
	return &Queues{s: s, q: redis.NewQueues(s.rc, s.cfg.Prefix, maxEntries)}
}

// SetMaxEntries is redis.Queues.SetMaxEntries (a reload changes it).
func (qs *Queues) SetMaxEntries(maxEntries int) { qs.q.SetMaxEntries(maxEntries) }

// call runs f through the Redis breaker. The queue's answers (full, not
// queued, dropped) are no failures of Redis: they reach the caller, and the breaker
// sees a success.
func (qs *Queues) call(ctx context.Context, f func(ctx context.Context) error) error {
	var answer error
	err := qs.s.call(ctx, qs.s.rcb, func(ctx context.Context) error {
		err := f(ctx)
		if errors.Is(err, waitroom.ErrNotQueued) || errors.Is(err, waitroom.ErrFull) || errors.Is(err, waitroom.ErrDropped) {
			answer = err
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return answer
}

// Join implements waitroom.Backend.
func (qs *Queues) Join(ctx context.Context, q waitroom.Queue, userID string, now time.Time) (e waitroom.Entry, created bool, err error) {
	err = qs.call(ctx, func(ctx context.Context) (err error) {
		e, created, err = qs.q.Join(ctx, q, userID, now)
		return err
	})
	return e, created, err
}

// Lookup implements waitroom.Backend.
func (qs *Queues) Lookup(ctx context.Context, q waitroom.Queue, userID string, now time.Time) (e waitroom.Entry, err error) {
	err = qs.call(ctx, func(ctx context.Context) (err error) {
		e, err = qs.q.Lookup(ctx, q, userID, now)
		return err
	})
	return e, err
}

// Between implements waitroom.Backend.
func (qs *Queues) Between(ctx context.Context, q waitroom.Queue, from, to int64) (n int64, err error) {
	err = qs.call(ctx, func(ctx context.Context) (err error) {
		n, err = qs.q.Between(ctx, q, from, to)
		return err
	})
	return n, err
}

// Epoch implements waitroom.Backend.
func (qs *Queues) Epoch(ctx context.Context, q waitroom.Queue) (epoch uint64, err error) {
	err = qs.call(ctx, func(ctx context.Context) (err error) {
		epoch, err = qs.q.Epoch(ctx, q)
		return err
	})
	return epoch, err
}

// Place implements waitroom.Backend.
func (qs *Queues) Place(ctx context.Context, q waitroom.Queue, userID string) (epoch uint64, e waitroom.Entry, err error) {
	err = qs.call(ctx, func(ctx context.Context) (err error) {
		epoch, e, err = qs.q.Place(ctx, q, userID)
		return err
	})
	return epoch, e, err
}

// Drop implements waitroom.Backend.
func (qs *Queues) Drop(ctx context.Context, saleID string) error {
	return qs.call(ctx, func(ctx context.Context) error { return qs.q.Drop(ctx, saleID) })
}

var _ waitroom.Backend = (*Queues)(nil)
