package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Rebalance moves units into bucket to from the other buckets, fullest
// first: at least need (all they hold if less: the sold-out purchases of
// a batch may together ask for more than the sale has left, yet each one
// fit), and half the fullest donor's stock when that is more, so that a
// dry bucket does not come back for every purchase. Each move is two
// scripts, one per slot: the donor records the transfer as it gives the
// units, the recipient records it as it takes them, and RepairTransfers
// completes a transfer whose second half never ran (a node died between
// the two).
func (s *Stock) Rebalance(ctx context.Context, l Layout, to int, need int64, perBucket []int64) (int64, error) {
	donors := make([]int, 0, len(perBucket))
	var total int64
	for b, r := range perBucket {
		if b != to && r > 0 {
			donors = append(donors, b)
			total += r
		}
	}
	if total == 0 {
		return 0, nil
	}
	need = min(need, total)
	slices.SortFunc(donors, func(a, b int) int { return cmp.Compare(perBucket[b], perBucket[a]) })
	want := max(need, perBucket[donors[0]]/2)
	var moved int64
	for _, from := range donors {
		if moved >= want {
			break
		}
		n, err := s.transfer(ctx, l, from, to, min(want-moved, perBucket[from]))
		if err != nil {
			return moved, err
		}
		moved += n
	}
	return moved, nil
}

// transfer moves up to n units from one bucket to another.
func (s *Stock) transfer(ctx context.Context, l Layout, from, to int, n int64) (int64, error) {
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	id := strconv.Itoa(to) + ":" + hex.EncodeToString(rb[:])
	fk, tk := s.keys(l, from), s.keys(l, to)
	cmds, err := evalMany(ctx, s.c, takeScript, [][]string{{fk.meta, fk.xout}}, [][]any{{id, n, time.Now().UnixMilli()}}, nil)
	if err != nil {
		return 0, err
	}
	res, err := cmds[0].Int64Slice()
	if err != nil || len(res) != 2 || res[0] <= 0 {
		return 0, err
	}
	moved, epoch := res[0], res[1]
	// The units are the donor's epoch's: the recipient takes them only in
	// that epoch (give.lua), under the id the donor recorded (take.lua).
	id += "@" + strconv.FormatInt(epoch, 10)
	if _, err := evalMany(ctx, s.c, giveScript, [][]string{{tk.meta, tk.xin}}, [][]any{{id, moved, time.Now().UnixMilli(), epoch}}, nil); err != nil {
		return 0, err
	}
	return moved, nil
}

// RepairTransfers completes every transfer out of the sale's buckets older
// than cutoff whose recipient never took it, then forgets finished ones;
// one whose recipient is still of an older epoch than the units (an
// install under way) is kept for a later repair.
func (s *Stock) RepairTransfers(ctx context.Context, l Layout, cutoff time.Time) (repaired int, err error) {
	return s.repairTransfers(ctx, l, strconv.FormatInt(cutoff.UnixMilli(), 10), cutoff)
}

// repairTransfers completes the transfers recorded at scores up to max
// (milliseconds, or "+inf"), and forgets received ids older than cutoff
// or an hour.
func (s *Stock) repairTransfers(ctx context.Context, l Layout, max string, cutoff time.Time) (repaired int, err error) {
	if l.n() == 1 {
		return 0, nil
	}
	for b := range l.n() {
		k := s.keys(l, b)
		outs, err := s.c.ZRangeByScore(ctx, k.xout, &goredis.ZRangeBy{Min: "-inf", Max: max}).Result()
		if err != nil {
			return repaired, err
		}
		for _, x := range outs {
			// x is "<to>:<id>@<epoch>|<units>" (take.lua), or without
			// "@<epoch>" if an older version started the transfer.
			id, units, ok := strings.Cut(x, "|")
			epoch := ""
			if i := strings.LastIndexByte(id, '@'); i >= 0 {
				epoch = id[i+1:]
			}
			toStr, _, _ := strings.Cut(id, ":")
			to, err1 := strconv.Atoi(toStr)
			n, err2 := strconv.ParseInt(units, 10, 64)
			if !ok || err1 != nil || err2 != nil || to < 0 || to >= l.n() {
				continue
			}
			tk := s.keys(l, to)
			applied, err := giveScript.Run(ctx, s.c, []string{tk.meta, tk.xin}, id, n, time.Now().UnixMilli(), epoch).Int64()
			if err != nil {
				return repaired, err
			}
			if applied == 1 {
				repaired++
			}
			if applied == 2 {
				continue // the recipient is not yet of the units' epoch: kept for later
			}
			if err := s.c.ZRem(ctx, k.xout, x).Err(); err != nil {
				return repaired, err
			}
		}
	}
	// Received ids are kept an hour, far longer than any transfer can take
	// to complete, so a late second half is still recognised; and only
	// once every bucket's outgoing records up to the cutoff were read
	// above: a donor's record of a transfer that did complete is told done
	// by the recipient's, which must not go first. Each is scored by the
	// clock of the node that wrote it, the received one after the given.
	keep := time.Now().Add(-time.Hour)
	if cutoff.Before(keep) {
		keep = cutoff
	}
	old := strconv.FormatInt(keep.UnixMilli(), 10)
	for b := range l.n() {
		if err := s.c.ZRemRangeByScore(ctx, s.keys(l, b).xin, "-inf", old).Err(); err != nil {
			return repaired, err
		}
	}
	return repaired, nil
}

// Unbalanced returns the units the sale's buckets took in transfers beyond
// what they gave: 0 in a healthy state, where a transfer gives before it
// takes (one in flight has given more than taken). Above 0, a donor lost
// the first half of a transfer whose second half its recipient kept (its
// master failed over to a replica that had not received the donor's
// script), and the buckets offer units PostgreSQL does not have; Inspect
// does not show it, as nothing reserved was lost. The units taken are read
// before the units given, each in one round trip, so a transfer between
// the two reads counts as given, never as taken only. A state whose epochs
// differ among the buckets or between the reads (a rebuild under way), or
// that lacks a bucket, answers 0: Inspect sees those.
func (s *Stock) Unbalanced(ctx context.Context, l Layout) (int64, error) {
	if l.n() == 1 {
		return 0, nil
	}
	got, e1, err := s.sumMeta(ctx, l, "got")
	if err != nil || e1 < 0 {
		return 0, err
	}
	gave, e2, err := s.sumMeta(ctx, l, "gave")
	if err != nil || e2 != e1 {
		return 0, err
	}
	return max(got-gave, 0), nil
}

// sumMeta sums one counter of every bucket's meta hash (absent: 0), read
// in one round trip, and returns the buckets' epoch: -1 if they differ or
// a bucket is missing.
func (s *Stock) sumMeta(ctx context.Context, l Layout, field string) (sum, epoch int64, err error) {
	cmds := make([]*goredis.SliceCmd, l.n())
	_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range cmds {
			cmds[b] = p.HMGet(ctx, s.keys(l, b).meta, "epoch", field)
		}
		return nil
	})
	epoch = -2
	for _, c := range cmds {
		v, err := c.Result()
		if err != nil {
			return 0, 0, fmt.Errorf("redis: transfers of sale %s: %w", l.Sale, err)
		}
		e, err := metaInt(v[0])
		if err != nil || (epoch != -2 && e != epoch) {
			return 0, -1, nil
		}
		epoch = e
		// Absent: the bucket moved nothing since it was built.
		n, _ := metaInt(v[1])
		sum += n
	}
	return sum, epoch, nil
}
