package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// Expect is what PostgreSQL says a sale's live state should be: its
// layout, epoch and count of units ever inserted.
type Expect struct {
	Layout
	Epoch, Ever int64
}

// quietChunk bounds the script calls one pipelined round trip of Quiet
// sends.
const quietChunk = 1000

// Survey is what Quiet found of one sale.
type Survey struct {
	// Quiet: the live state is exactly what PostgreSQL expects and holds
	// nothing waiting.
	Quiet bool
	// Read: every bucket answered, with its sentinels, at one epoch
	// (Epoch); the figures below are meaningful only then.
	Read  bool
	Epoch int64
	// Remaining is the units its buckets hold for sale, read with the rest:
	// a quiet sale has every reservation in PostgreSQL, so fewer than
	// PostgreSQL's stock minus units sold means Redis lost releases (rolled
	// back), or one is in flight. A sale that is not quiet also holds the
	// units of reservations PostgreSQL may not have yet (Taken beyond
	// PostgreSQL's ever count), and those of a transfer between buckets
	// under way while a transfer's record is kept (Transfers).
	Remaining int64
	// Taken is the units its state has reserved since it was built from
	// PostgreSQL's ever count (as Inspect's).
	Taken     int64
	Transfers bool
}

// Quiet reports, for each sale, whether its live state is exactly what
// PostgreSQL expects and holds nothing waiting: every bucket present with
// its sentinels and at the expected epoch, its units reserved equal to
// PostgreSQL's ever count (none waiting to be confirmed), no pending
// batch, no transfer record kept and no units taken in transfers beyond
// those given; and how many units it holds for sale. The leader diagnoses
// only the other sales, so the cost of its round follows the sales that
// need work, not every sale ever created (a few round trips for thousands
// of sales). Each bucket is read by one script, atomically; false only
// ever costs a full diagnosis.
func (s *Stock) Quiet(ctx context.Context, sales []Expect) ([]Survey, error) {
	quiet := make([]Survey, len(sales))
	var (
		keys  [][]string
		args  [][]any
		owner []int
	)
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		cmds, err := evalMany(ctx, s.c, quietScript, keys, args, nil)
		if err != nil {
			return fmt.Errorf("redis: survey sales: %w", err)
		}
		sum := map[int]*[8]int64{} // per sale: epoch (-1 differs), tot, got, gave, busy, rem, transfers, missing
		for i, c := range cmds {
			res, err := c.Int64Slice()
			if err != nil {
				return fmt.Errorf("redis: survey sales: %w", err)
			}
			a := sum[owner[i]]
			if a == nil {
				a = &[8]int64{-2}
				sum[owner[i]] = a
			}
			if len(res) != 7 {
				a[4], a[7] = 1, 1 // missing or damaged: the diagnosis says which
				continue
			}
			switch {
			case a[0] == -2:
				a[0] = res[0]
			case a[0] != res[0]:
				a[0] = -1
			}
			for j := 1; j < 7; j++ {
				a[j] += res[j]
			}
		}
		for i, a := range sum {
			e := sales[i]
			quiet[i] = Survey{Quiet: a[4] == 0 && a[0] == e.Epoch && a[1] == e.Ever && a[2] <= a[3],
				Read: a[7] == 0 && a[0] >= 0, Epoch: a[0], Remaining: a[5], Taken: a[1], Transfers: a[6] > 0}
		}
		keys, args, owner = keys[:0], args[:0], owner[:0]
		return nil
	}
	for i, e := range sales {
		for b := range e.n() {
			k := s.keys(e.Layout, b)
			keys = append(keys, append(k.list(), k.xout, k.xin))
			args = append(args, nil)
			owner = append(owner, i)
		}
		if len(keys) >= quietChunk {
			if err := flush(); err != nil {
				return quiet, err
			}
		}
	}
	return quiet, flush()
}

// Scan is one bucket's part of a sweep of held orders (Held).
type Scan struct {
	Layout
	Bucket int
	Cursor uint64
	Count  int64 // about how many orders to read (HSCAN's COUNT)
}

// HeldMany is Held for many buckets, of many sales, in one round trip:
// ids[i] and next[i] answer scans[i].
func (s *Stock) HeldMany(ctx context.Context, scans []Scan) (ids [][]string, next []uint64, err error) {
	cmds := make([]*goredis.ScanCmd, len(scans))
	_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, sc := range scans {
			cmds[i] = p.HScan(ctx, s.keys(sc.Layout, sc.Bucket).orders, sc.Cursor, "", sc.Count)
		}
		return nil
	})
	ids, next = make([][]string, len(scans)), make([]uint64, len(scans))
	for i, c := range cmds {
		kv, cur, err := c.Result()
		if err != nil {
			return nil, nil, fmt.Errorf("redis: held orders of sale %s: %w", scans[i].Sale, err)
		}
		for j := 0; j < len(kv); j += 2 {
			if kv[j] != "!" { // the sentinel
				ids[i] = append(ids[i], kv[j])
			}
		}
		next[i] = cur
	}
	return ids, next, nil
}
