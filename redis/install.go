package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
)

// ErrStagingLost fails an install whose staged state Redis lost before
// its swap (restarted empty, keys evicted): nothing was swapped in, and
// the install is to be made again.
var ErrStagingLost = errors.New("the staged state was lost before its swap (Redis restarted or evicted keys)")

// chunk bounds the fields one staging command writes, so a sale of a
// million orders is installed in many small steps, not one huge one.
const chunk = 1000

// endedForAll is the end a sale its own change ended is installed with
// (surge.LiveState.Ended): earlier than any end a sale can have (year
// 0001 is about -6.2e13 ms), and exact as a Lua number.
const endedForAll = -1 << 52

// Install replaces the sale's live state with st, bucket by bucket,
// unless a bucket already holds a state of the same or a newer epoch
// (installed reports whether every bucket took it). Each bucket's state is
// written to staging keys first, then swapped in by one script; the
// unreserved stock is split evenly over the buckets. With replace, st is
// installed whatever the epoch already there: for a new sale's creator,
// who alone can hold its uncommitted row, so any state under its id is
// left over from a creation that failed. progress, if set, is called
// after each of its calls, and every thousand orders it prepares: a large
// sale's install takes many of both.
func (s *Stock) Install(ctx context.Context, st surge.LiveState, replace bool, progress func()) (installed bool, err error) {
	if progress == nil {
		progress = func() {}
	}
	l := Layout{Sale: st.Sale.ID, Buckets: st.Buckets}
	nb := l.n()
	held := make([]map[string]int64, nb)
	orders := make([][]any, nb)
	keyed := make([][]any, nb)
	for b := range held {
		held[b] = make(map[string]int64)
	}
	live := int64(0)
	for i, o := range st.Live {
		if i%chunk == chunk-1 {
			progress()
		}
		b := l.Bucket(o.UserID)
		held[b][o.UserID] += o.Quantity
		live += o.Quantity
		if o.Status == surge.OrderReserved {
			orders[b] = append(orders[b], o.ID, o.UserID+"|"+strconv.FormatInt(o.Quantity, 10))
		}
	}
	for i, o := range st.Keyed {
		if i%chunk == chunk-1 {
			progress()
		}
		b := l.Bucket(o.UserID)
		keyed[b] = append(keyed[b], o.UserID+"\n"+o.IdempotencyKey, record(o))
	}
	free := st.Sale.Stock - live
	// 0 is "no end" to reserve.lua; an end at or before 1970 is an end
	// too (years 0001-9999 are allowed), so it is stored negative: an end
	// at the Unix epoch itself as -1 ms, the same for every clock past it.
	ends := int64(0)
	if !st.Sale.EndsAt.IsZero() {
		if ends = st.Sale.EndsAt.UnixMilli(); ends == 0 {
			ends = -1
		}
	}
	// A sale its own change ended (surge.LiveState.Ended) is ended for
	// every batch, whatever the clock of the node deciding it reads: its
	// end goes as one earlier than any a sale can have, which every
	// clock is past. reserve.lua of every version reads it so.
	if st.Ended {
		ends = endedForAll
	}
	installed = true
	for b := range nb {
		share := free / int64(nb)
		if int64(b) < free%int64(nb) {
			share++
		}
		k := s.keys(l, b)
		su, sk, so := stageKeys(k, st.Epoch)
		// The epoch is recorded before anything is staged, so that a later
		// install can find and drop what this one left should it never
		// reach its swap (its node died, Redis failed it part-way). Each
		// staging key starts with the sentinel field, and the swap refuses
		// one that does not hold every field written to it (counted as
		// Redis added them): Redis lost it since, whole (restarted empty,
		// evicted) or in part (a replica behind promoted), and a later
		// write may have begun it again. Without the check the swap put in
		// place hashes missing buyers, keys and held orders, its sentinels
		// vouching for them: a confirmed key's retry was sold_out.
		if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.SAdd(ctx, k.stages, st.Epoch)
			p.Unlink(ctx, su, sk, so)
			for _, key := range []string{su, sk, so} {
				p.HSet(ctx, key, "!", "1")
			}
			return nil
		}); err != nil {
			return false, fmt.Errorf("redis: install sale %s: %w", l.Sale, err)
		}
		progress()
		staged := []int64{1, 1, 1} // fields of su, sk, so: the sentinel so far
		users := make([]any, 0, 2*len(held[b]))
		for u, n := range held[b] {
			if users = append(users, u, n); len(users)%(2*chunk) == 0 {
				progress()
			}
		}
		for n, w := range []struct {
			key    string
			fields []any
		}{{su, users}, {sk, keyed[b]}, {so, orders[b]}} {
			for i := 0; i < len(w.fields); i += 2 * chunk {
				j := min(i+2*chunk, len(w.fields))
				// The epoch again with each write: a newer install may have
				// dropped this one's keys and record meanwhile (this one
				// loses to its epoch anyway), and a crash here must still
				// leave them findable.
				var added *goredis.IntCmd
				if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
					p.SAdd(ctx, k.stages, st.Epoch)
					added = p.HSet(ctx, w.key, w.fields[i:j]...)
					return nil
				}); err != nil {
					return false, fmt.Errorf("redis: install sale %s: %w", l.Sale, err)
				}
				staged[n] += added.Val()
				progress()
			}
		}
		tot := int64(0)
		if b == 0 {
			tot = st.Ever
		}
		force, paused := 0, 0
		if replace {
			force = 1
		}
		if st.Sale.Paused {
			paused = 1
		}
		ok, err := installScript.Run(ctx, s.c, append(k.list(), su, sk, so, k.xout, k.xin),
			st.Epoch, share, st.Sale.PerUserLimit, st.Sale.StartsAt.UnixMilli(), ends, tot, force, paused,
			st.Sale.Hold().Milliseconds(), staged[0], staged[1], staged[2]).Int64()
		if err != nil {
			return false, fmt.Errorf("redis: install sale %s: %w", l.Sale, err)
		}
		if ok == -1 {
			return false, fmt.Errorf("redis: install sale %s: %w", l.Sale, ErrStagingLost)
		}
		installed = installed && ok == 1
		progress()
		// The script consumed this install's staging keys either way. Those
		// of older epochs are of installs that crashed, or that this
		// bucket's epoch, now at least st.Epoch, refuses whatever they do.
		// Newer ones may be an install under way: they stay. A failure
		// here costs nothing but keys the next install drops.
		_ = s.dropStages(ctx, k, st.Epoch)
	}
	if installed && nb > 1 {
		// A transfer from a bucket already swapped in to one not yet was
		// refused by its recipient (give.lua: units of the new epoch),
		// its record left with the donor: complete it now that every
		// bucket holds the epoch, rather than leave the units off sale
		// until the leader repairs transfers ConfirmAfter old. Every
		// record, whatever the clock of the node that wrote it; one
		// still in flight is completed once (give.lua). Should it fail,
		// the leader's repair still completes them.
		_, _ = s.repairTransfers(ctx, l, "+inf", time.Now())
	}
	return installed, nil
}

// MarkEnded marks the sale's live state of epoch ended for every batch,
// as Install does a state whose sale its own change ended
// (surge.LiveState.Ended): for a change that starts no epoch (a rename)
// made once the sale had ended. False if a bucket holds no state or an
// older epoch than epoch: an install under way puts in place a state that
// does not know of the change, and the sale is to be rebuilt. A bucket at a
// newer epoch was built from a newer row, which knows of it.
func (s *Stock) MarkEnded(ctx context.Context, l Layout, epoch int64) (bool, error) {
	keys := make([][]string, l.n())
	args := make([][]any, l.n())
	for b := range keys {
		keys[b], args[b] = []string{s.keys(l, b).meta}, []any{epoch, endedForAll}
	}
	cmds, err := evalMany(ctx, s.c, endedScript, keys, args, nil)
	if err != nil {
		return false, fmt.Errorf("redis: mark sale %s ended: %w", l.Sale, err)
	}
	for _, cmd := range cmds {
		if n, err := cmd.Int64(); err != nil || n != 1 {
			return false, err
		}
	}
	return true, nil
}

// stageKeys are the staging keys of an install of one bucket at epoch.
func stageKeys(k saleKeys, epoch int64) (users, keys, orders string) {
	stage := strings.TrimSuffix(k.meta, "m") + "s" + strconv.FormatInt(epoch, 10) + ":"
	return stage + "u", stage + "k", stage + "o"
}

// dropStages deletes the staging keys of a bucket's installs of an epoch
// up to upTo (all of them: -1) and forgets them.
func (s *Stock) dropStages(ctx context.Context, k saleKeys, upTo int64) error {
	epochs, err := s.c.SMembers(ctx, k.stages).Result()
	if err != nil {
		return err
	}
	var keys []string
	var done []any
	for _, e := range epochs {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil || (upTo >= 0 && n > upTo) {
			continue
		}
		u, kk, o := stageKeys(k, n)
		keys = append(keys, u, kk, o)
		done = append(done, e)
	}
	if len(done) == 0 && upTo >= 0 {
		return nil
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if len(keys) > 0 {
			p.Unlink(ctx, keys...)
		}
		if upTo < 0 {
			p.Del(ctx, k.stages)
		} else {
			p.SRem(ctx, k.stages, done...)
		}
		return nil
	})
	return err
}
