package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
)

// Decision is what Redis decided for one purchase of a batch.
type Decision struct {
	Code      surge.Code  // CodeIdempotencyMismatch: a key reused with another quantity
	Remaining int64       // for CodeSoldOut
	Replay    surge.Order // for a replay: the first answer (ID, quantity, times)
}

// Batch is a batch of purchases to decide: IDs[i] names the order
// Purchases[i] becomes if reserved, Now is the decision's instant and
// Expires when the holds it makes end.
type Batch struct {
	Purchases    []surge.Purchase
	IDs          []string
	Now, Expires time.Time
}

// Decided is Redis's answer to a Batch.
type Decided struct {
	Epoch     int64 // the epoch of the state that decided
	Remaining int64 // the whole sale's remaining stock after the batch
	// Taken is the units this copy of the state has reserved since it was
	// built from PostgreSQL's ever count, this batch's included.
	Taken     int64
	Decisions []Decision // one per purchase, in order
}

// Reserve decides b against the sale's live state. Each bucket the batch
// touches runs reserve.lua once, all in one round trip; the remaining and
// taken figures are the whole sale's (the other buckets are read in the
// same round trip). A sold-out answer in a bucket while others hold enough
// units triggers Rebalance and one more try of those purchases.
func (s *Stock) Reserve(ctx context.Context, l Layout, b Batch) (Decided, error) {
	batch := b.Purchases
	out := make([]Decision, len(batch))
	idx := make([]int, len(batch))
	for i := range idx {
		idx[i] = i
	}
	epoch, remaining, taken, perBucket, err := s.reserve(ctx, l, b, idx, out, -1)
	first := Decided{Epoch: epoch, Remaining: remaining, Taken: taken, Decisions: out}
	if err != nil || l.n() == 1 {
		return first, err
	}
	// A dry bucket borrows from the fullest, then its sold-out purchases
	// are decided again.
	var retry []int
	need := make(map[int]int64)
	for i, d := range out {
		if d.Code == surge.CodeSoldOut && remaining >= batch[i].Quantity {
			retry = append(retry, i)
			need[l.Bucket(batch[i].UserID)] += batch[i].Quantity
		}
	}
	if len(retry) == 0 {
		return first, nil
	}
	for bucket, n := range need {
		if _, err := s.Rebalance(ctx, l, bucket, n-perBucket[bucket], perBucket); err != nil {
			return first, nil // the first answers stand
		}
	}
	// The retry decides into a copy: a retry that fails took back what it
	// reserved (reserve), and its purchases keep their first answers.
	again := slices.Clone(out)
	_, rem2, taken2, _, err := s.reserve(ctx, l, b, retry, again, epoch)
	if err != nil {
		// The first round's reservations stand and must be committed, so
		// a failed retry keeps its sold-out answers.
		return first, nil
	}
	return Decided{Epoch: epoch, Remaining: rem2, Taken: max(taken, taken2), Decisions: again}, nil
}

// reserve runs one round of Reserve over the purchases bt.Purchases[idx...],
// writing their decisions into out, and returns the sale's remaining stock
// and each bucket's. want, unless -1, is the epoch the round must be
// decided in (a retry's: the first round's orders are committed under
// it). A round that fails once its scripts ran (a bucket's call failed, a
// bucket refused the batch or had no state, the buckets disagree on the
// epoch) has first taken
// back what the other buckets reserved for it: none of its orders will
// be committed, and left in Redis their units stayed off sale, their keys
// answering 503, until the leader found them never committed
// (--cluster-confirm-after) and rebuilt the sale.
func (s *Stock) reserve(ctx context.Context, l Layout, bt Batch, idx []int, out []Decision, want int64) (epoch, remaining, taken int64, perBucket []int64, err error) {
	batch, ids, now, expires := bt.Purchases, bt.IDs, bt.Now, bt.Expires
	nb := l.n()
	groups := make([][]int, nb)
	for _, i := range idx {
		b := l.Bucket(batch[i].UserID)
		groups[b] = append(groups[b], i)
	}
	var keys [][]string
	var args [][]any
	var which []int // bucket of each script call
	for b, g := range groups {
		if len(g) == 0 {
			continue
		}
		a := make([]any, 0, 2+4*len(g))
		a = append(a, now.UnixMilli(), expires.UnixMilli())
		for _, i := range g {
			p := batch[i]
			a = append(a, p.UserID, p.IdempotencyKey, p.Quantity, ids[i])
		}
		keys, args, which = append(keys, s.keys(l, b).list()), append(args, a), append(which, b)
	}
	// The other buckets' remaining stock and units taken, read in the
	// same round trip.
	var others map[int]*goredis.SliceCmd
	if nb > 1 {
		others = make(map[int]*goredis.SliceCmd)
	}
	var cmds []*goredis.Cmd
	if nb == 1 {
		cmds, err = evalMany(ctx, s.c, reserveScript, keys, args, nil)
	} else {
		cmds, err = evalMany(ctx, s.c, reserveScript, keys, args, func(p goredis.Pipeliner) {
			for b := range nb {
				if len(groups[b]) == 0 {
					others[b] = p.HMGet(ctx, s.keys(l, b).meta, "rem", "tot")
				}
			}
		})
	}
	fail := func(err error) (int64, int64, int64, []int64, error) {
		s.takeBack(ctx, l, bt, cmds, which, groups)
		return 0, 0, 0, nil, err
	}
	if err != nil {
		// The calls that answered ran (a bucket's master down, or timing
		// out, fails its own call only): what they reserved is taken back.
		return fail(fmt.Errorf("redis: reserve in sale %s: %w", l.Sale, err))
	}
	if staleHold(cmds) {
		return fail(ErrStaleHold)
	}
	perBucket = make([]int64, nb)
	epoch = want
	for c, cmd := range cmds {
		b, g := which[c], groups[which[c]]
		res, err := cmd.Slice()
		if err != nil {
			return fail(fmt.Errorf("redis: reserve in sale %s: %w", l.Sale, err))
		}
		if len(res) == 1 {
			return fail(ErrNoState)
		}
		if len(res) != 4 {
			return fail(fmt.Errorf("redis: reserve in sale %s: %d replies, want 4", l.Sale, len(res)))
		}
		codes, _ := res[3].(string)
		e, _ := res[0].(int64)
		if epoch >= 0 && e != epoch {
			return fail(ErrNoState) // buckets of different epochs: a rebuild is under way
		}
		epoch = e
		perBucket[b], _ = res[1].(int64)
		tot, _ := res[2].(int64)
		taken += tot
		for j, i := range g {
			code, rest, more := strings.Cut(codes, "\n")
			if more != (j < len(g)-1) {
				return 0, 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: %d codes for %d purchases", l.Sale, strings.Count(codes, "\n")+1, len(g))
			}
			codes = rest
			if out[i], err = parseDecision(code); err != nil {
				return fail(fmt.Errorf("redis: reserve in sale %s: %w", l.Sale, err))
			}
		}
	}
	for b, cmd := range others {
		v, err := cmd.Result()
		if err != nil {
			return fail(fmt.Errorf("redis: remaining of sale %s: %w", l.Sale, err))
		}
		rem, err1 := metaInt(v[0])
		tot, err2 := metaInt(v[1])
		if err1 != nil || err2 != nil {
			return fail(ErrNoState)
		}
		perBucket[b] = rem
		taken += tot
	}
	for _, r := range perBucket {
		remaining += r
	}
	return epoch, remaining, taken, perBucket, nil
}

// staleHold reports whether a bucket refused the batch for its hold
// ({-2}): nothing is to be reserved, and the batch is decided again under
// new ids.
func staleHold(cmds []*goredis.Cmd) bool {
	for _, cmd := range cmds {
		if res, err := cmd.Slice(); err == nil && len(res) == 1 {
			if code, _ := res[0].(int64); code == -2 {
				return true
			}
		}
	}
	return false
}

// takeBack takes back what the buckets of a failed round reserved
// (unreserve.lua), whose orders will never be committed.
func (s *Stock) takeBack(ctx context.Context, l Layout, bt Batch, cmds []*goredis.Cmd, which []int, groups [][]int) {
	var keys [][]string
	var args [][]any
	for c, cmd := range cmds {
		if cmd == nil {
			continue
		}
		res, err := cmd.Slice()
		if err != nil || len(res) != 4 {
			continue
		}
		codes, _ := res[3].(string)
		var ids []string
		a := []any{""}
		for _, i := range groups[which[c]] {
			code, rest, _ := strings.Cut(codes, "\n")
			codes = rest
			if !strings.HasPrefix(code, "+") {
				continue
			}
			p := bt.Purchases[i]
			uk := ""
			if p.IdempotencyKey != "" {
				uk = p.UserID + "\n" + p.IdempotencyKey
			}
			ids = append(ids, bt.IDs[i])
			a = append(a, bt.IDs[i], p.UserID, p.Quantity, uk)
		}
		if len(ids) == 0 {
			continue
		}
		a[0] = strings.Join(ids, ",")
		k := s.keys(l, which[c])
		keys, args = append(keys, []string{k.meta, k.users, k.keys, k.orders, k.pending}), append(args, a)
	}
	if len(keys) > 0 {
		// A failure leaves them to the leader's sweep of reservations
		// that never reached PostgreSQL (--cluster-confirm-after).
		_, _ = evalMany(ctx, s.c, unreserveScript, keys, args, nil)
	}
}

// GiveBack takes back what Reserve reserved for orders, the new orders of
// one batch in its order, whose commit provably never reached PostgreSQL
// (postgres.ErrNotSent): their units, their buyers' counts toward the
// limit and their keys, at once, instead of after the leader found them
// never committed (--cluster-confirm-after). Only for a sale of one
// bucket, whose batch is one member of the pending set: ok is false, and
// nothing done, for more (a batch retried after a rebalance is two).
// Orders a new epoch no longer holds are skipped (unreserve.lua).
func (s *Stock) GiveBack(ctx context.Context, l Layout, orders []surge.Order) (ok bool, err error) {
	if l.n() != 1 || len(orders) == 0 {
		return false, nil
	}
	ids := make([]string, len(orders))
	a := make([]any, 1, 1+4*len(orders))
	for i, o := range orders {
		ids[i] = o.ID
		uk := ""
		if o.IdempotencyKey != "" {
			uk = o.UserID + "\n" + o.IdempotencyKey
		}
		a = append(a, o.ID, o.UserID, o.Quantity, uk)
	}
	a[0] = strings.Join(ids, ",")
	k := s.keys(l, 0)
	cmds, err := evalMany(ctx, s.c, unreserveScript, [][]string{{k.meta, k.users, k.keys, k.orders, k.pending}}, [][]any{a}, nil)
	if err == nil {
		err = cmds[0].Err()
	}
	if err != nil {
		return false, fmt.Errorf("redis: give back %d orders of sale %s: %w", len(orders), l.Sale, err)
	}
	return true, nil
}
