// Package redis keeps cluster mode's live state in Redis: each sale's
// remaining stock, the units every buyer holds, idempotency records, and
// the orders still holding units. A node applies a whole batch of
// purchases with one script call, so Redis decides every purchase of every
// node atomically and in order.
//
// The state is a cache of PostgreSQL's truth (package postgres), rebuilt
// from it whenever it is lost (a Redis restarted empty, keys evicted) or in
// doubt (it came back older than PostgreSQL: its count of units reserved,
// tot, is below PostgreSQL's count of units ever inserted). Each copy
// carries the epoch it was built at; PostgreSQL refuses orders decided
// against an older copy, and any batch that would break a guarantee.
//
// The client is go-redis v9: every call Surge makes is already one batch
// per script call, so rueidis's automatic pipelining of many small commands
// would buy little, while go-redis gives one API over a single server,
// Sentinel and Redis Cluster, and runs scripts by EVALSHA with a fallback to
// EVAL when a restarted server has forgotten them.
package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
)

// Client is the Redis client Surge uses: a single server or a cluster.
type Client = goredis.UniversalClient

// Dial connects to url: redis://[user:pass@]host:port[/db], or, for Redis
// Cluster, redis://host1:port?addr=host2:port&addr=host3:port.
func Dial(ctx context.Context, url string) (Client, error) {
	var c Client
	if strings.Contains(url, "addr=") {
		opt, err := goredis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis: parse url: %w", err)
		}
		fast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		opt.MaxRetries = -1
		if opt.DialerRetries == 0 {
			opt.DialerRetries = 1
		}
		c = goredis.NewClusterClient(opt)
	} else {
		opt, err := goredis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis: parse url: %w", err)
		}
		fast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		opt.MaxRetries = -1
		if opt.DialerRetries == 0 {
			opt.DialerRetries = 1
		}
		c = goredis.NewClient(opt)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis: ping %s: %w", url, err)
	}
	return c, nil
}

// fast bounds every wait on Redis unless the URL chose otherwise: a dead
// server must fail purchases in about a second, not hold them. Dial also
// turns the client's retries off: a reserve script whose reply was lost
// may have run, and running it again would take its units twice. A failed
// call fails its batch; buyers retry with their Idempotency-Key. It also
// dials once per connection instead of go-redis's five times 100 ms, which
// held every purchase half a second on a dead server instead of failing it.
func fast(dial, read, write *time.Duration) {
	for _, d := range []*time.Duration{dial, read, write} {
		if *d == 0 {
			*d = time.Second
		}
	}
}

// Stock is the live state of every sale under one key prefix.
type Stock struct {
	c      Client
	prefix string
}

// New returns the live state kept in c under prefix (empty: "surge").
// Tests give each dataset its own prefix.
func New(c Client, prefix string) *Stock {
	if prefix == "" {
		prefix = "surge"
	}
	return &Stock{c: c, prefix: prefix}
}

// ErrNoState answers a call on a sale whose live state is missing (never
// built, or Redis restarted empty) or lost part of itself (a key evicted
// or deleted: each hash carries a sentinel field "!" written at install,
// and each sorted set a member "!" scored +inf, which no range the code
// reads reaches): it must be rebuilt from PostgreSQL.
var ErrNoState = errors.New("redis: the sale's live state is missing")

// Layout says where a sale's live state lives: in one hash slot, or split
// into Buckets slots for a sale too hot for one Redis Cluster shard. Each
// bucket holds a share of the stock and the buyers whose id hashes to it,
// with their per-user counts and idempotency records, so a purchase
// touches one bucket only; a bucket that runs dry borrows units from the
// fullest one (Rebalance).
type Layout struct {
	Sale    string
	Buckets int // 1 or more
}

func (l Layout) n() int { return max(l.Buckets, 1) }

// Bucket is the bucket of a buyer (FNV-1a of the user id).
func (l Layout) Bucket(user string) int {
	if l.n() == 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		h ^= uint32(user[i])
		h *= 16777619
	}
	return int(h % uint32(l.n()))
}

// keys of one bucket. The braces are a hash tag: on Redis Cluster every key
// of a bucket lives in one slot, so one script can touch them all.
type saleKeys struct{ meta, users, keys, orders, pending, xout, xin string }

func (s *Stock) keys(l Layout, bucket int) saleKeys {
	tag := l.Sale
	if l.n() > 1 {
		tag += "#" + strconv.Itoa(bucket)
	}
	b := s.prefix + ":{" + tag + "}:"
	return saleKeys{b + "m", b + "u", b + "k", b + "o", b + "p", b + "xo", b + "xi"}
}

func (k saleKeys) list() []string { return []string{k.meta, k.users, k.keys, k.orders, k.pending} }

//go:embed reserve.lua
var reserveSrc string

//go:embed release.lua
var releaseSrc string

//go:embed install.lua
var installSrc string

//go:embed take.lua
var takeSrc string

//go:embed give.lua
var giveSrc string

//go:embed inspect.lua
var inspectSrc string

var (
	reserveScript = goredis.NewScript(reserveSrc)
	releaseScript = goredis.NewScript(releaseSrc)
	installScript = goredis.NewScript(installSrc)
	takeScript    = goredis.NewScript(takeSrc)
	giveScript    = goredis.NewScript(giveSrc)
	inspectScript = goredis.NewScript(inspectSrc)
)

// evalMany runs one script call per element of calls in one pipelined
// round trip (the calls may be on different slots and shards). A call the
// server refused because it had forgotten the script is loaded and run
// again; a call that failed otherwise is not, since it may have run.
func (s *Stock) evalMany(ctx context.Context, sc *goredis.Script, keys [][]string, args [][]any) ([]*goredis.Cmd, error) {
	if len(keys) == 1 {
		cmd := sc.Run(ctx, s.c, keys[0], args[0]...)
		return []*goredis.Cmd{cmd}, cmd.Err()
	}
	return s.evalManyWith(ctx, sc, keys, args, nil)
}

// Decision is what Redis decided for one purchase of a batch.
type Decision struct {
	Code      surge.Code  // CodeIdempotencyMismatch: a key reused with another quantity
	Remaining int64       // for CodeSoldOut
	Replay    surge.Order // for a replay: the first answer (ID, quantity, times)
}

// Reserve decides batch against the sale's live state. ids[i] names the
// order batch[i] becomes if reserved; expires is when its hold ends. Each
// bucket the batch touches runs reserve.lua once, all in one round trip;
// remaining is the whole sale's (the other buckets are read in the same
// round trip), and so is taken: the units this copy of the state has
// reserved since it was built from PostgreSQL's ever count, this batch's
// included. A sold-out answer in a bucket while others hold enough units
// triggers Rebalance and one more try of those purchases.
func (s *Stock) Reserve(ctx context.Context, l Layout, batch []surge.Purchase, ids []string, now, expires time.Time) (epoch, remaining, taken int64, out []Decision, err error) {
	out = make([]Decision, len(batch))
	idx := make([]int, len(batch))
	for i := range idx {
		idx[i] = i
	}
	epoch, remaining, taken, perBucket, err := s.reserve(ctx, l, batch, idx, ids, now, expires, out)
	if err != nil || l.n() == 1 {
		return epoch, remaining, taken, out, err
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
		return epoch, remaining, taken, out, nil
	}
	for b, n := range need {
		if _, err := s.Rebalance(ctx, l, b, n-perBucket[b], perBucket); err != nil {
			return epoch, remaining, taken, out, nil // the first answers stand
		}
	}
	e2, rem2, taken2, _, err := s.reserve(ctx, l, batch, retry, ids, now, expires, out)
	if err != nil || e2 != epoch {
		// The first round's reservations stand and must be committed, so
		// a failed retry keeps its sold-out answers.
		return epoch, remaining, taken, out, nil
	}
	return epoch, rem2, max(taken, taken2), out, nil
}

// reserve runs one round of Reserve over the purchases batch[idx...],
// writing their decisions into out, and returns the sale's remaining stock
// and each bucket's.
func (s *Stock) reserve(ctx context.Context, l Layout, batch []surge.Purchase, idx []int, ids []string, now, expires time.Time, out []Decision) (epoch, remaining, taken int64, perBucket []int64, err error) {
	nb := l.n()
	groups := make([][]int, nb)
	for _, i := range idx {
		b := l.Bucket(batch[i].UserID)
		groups[b] = append(groups[b], i)
	}
	var keys [][]string
	var args [][]any
	var which []int // bucket of each script call
	wall := time.Now().UnixMilli()
	for b, g := range groups {
		if len(g) == 0 {
			continue
		}
		a := make([]any, 0, 3+4*len(g))
		a = append(a, now.UnixMilli(), expires.UnixMilli(), wall)
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
		cmds, err = s.evalMany(ctx, reserveScript, keys, args)
	} else {
		cmds, err = s.evalManyWith(ctx, reserveScript, keys, args, func(p goredis.Pipeliner) {
			for b := range nb {
				if len(groups[b]) == 0 {
					others[b] = p.HMGet(ctx, s.keys(l, b).meta, "rem", "tot")
				}
			}
		})
	}
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: %w", l.Sale, err)
	}
	perBucket = make([]int64, nb)
	epoch = -1
	for c, cmd := range cmds {
		b, g := which[c], groups[which[c]]
		res, err := cmd.Slice()
		if err != nil {
			return 0, 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: %w", l.Sale, err)
		}
		if len(res) == 1 {
			return 0, 0, 0, nil, ErrNoState
		}
		if len(res) != 3+len(g) {
			return 0, 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: %d replies for %d purchases", l.Sale, len(res)-3, len(g))
		}
		e, _ := res[0].(int64)
		if epoch >= 0 && e != epoch {
			return 0, 0, 0, nil, ErrNoState // buckets of different epochs: a rebuild is under way
		}
		epoch = e
		perBucket[b], _ = res[1].(int64)
		tot, _ := res[2].(int64)
		taken += tot
		for j, i := range g {
			code, _ := res[3+j].(string)
			if out[i], err = parseDecision(code); err != nil {
				return 0, 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: %w", l.Sale, err)
			}
		}
	}
	for b, cmd := range others {
		v, err := cmd.Result()
		if err != nil {
			return 0, 0, 0, nil, fmt.Errorf("redis: remaining of sale %s: %w", l.Sale, err)
		}
		rem, err1 := metaInt(v[0])
		tot, err2 := metaInt(v[1])
		if err1 != nil || err2 != nil {
			return 0, 0, 0, nil, ErrNoState
		}
		perBucket[b] = rem
		taken += tot
	}
	for _, r := range perBucket {
		remaining += r
	}
	return epoch, remaining, taken, perBucket, nil
}

// metaInt reads one field of an HMGET of a meta hash; an error if it is
// missing (the state is).
func metaInt(v any) (int64, error) {
	str, ok := v.(string)
	if !ok {
		return 0, ErrNoState
	}
	return strconv.ParseInt(str, 10, 64)
}

// evalManyWith is evalMany, always pipelined, with extra commands (reads
// only: they are not sent again) queued in the first round trip.
func (s *Stock) evalManyWith(ctx context.Context, sc *goredis.Script, keys [][]string, args [][]any, extra func(goredis.Pipeliner)) ([]*goredis.Cmd, error) {
	cmds := make([]*goredis.Cmd, len(keys))
	send := func(which []int, extra func(goredis.Pipeliner)) {
		_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, i := range which {
				cmds[i] = sc.EvalSha(ctx, p, keys[i], args[i]...)
			}
			if extra != nil {
				extra(p)
			}
			return nil
		})
	}
	all := make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	send(all, extra)
	var again []int
	for i, c := range cmds {
		if c.Err() != nil && isNoScript(c.Err()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		if err := sc.Load(ctx, s.c).Err(); err != nil {
			return nil, err
		}
		send(again, nil)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return cmds, err
		}
	}
	return cmds, nil
}

func parseDecision(code string) (Decision, error) {
	var d Decision
	if code == "" {
		return d, errors.New("empty code")
	}
	switch code[0] {
	case '+':
		d.Code = surge.CodeReserved
	case 'S':
		d.Code = surge.CodeSoldOut
		d.Remaining, _ = strconv.ParseInt(code[1:], 10, 64)
	case 'L':
		d.Code = surge.CodeLimitReached
	case 'M':
		d.Code = surge.CodeIdempotencyMismatch
	case 'N':
		d.Code = surge.CodeNotStarted
	case 'E':
		d.Code = surge.CodeEnded
	case 'R':
		o, err := parseRecord(code[1:])
		if err != nil {
			return d, fmt.Errorf("replay record: %w", err)
		}
		d.Code, d.Replay = surge.CodeReserved, o
	default:
		return d, fmt.Errorf("unknown code %q", code)
	}
	return d, nil
}

// record is an idempotency record: order id, quantity, created and expiry
// in Unix milliseconds.
func record(o surge.Order) string {
	return o.ID + "|" + strconv.FormatInt(o.Quantity, 10) + "|" +
		strconv.FormatInt(o.CreatedAt.UnixMilli(), 10) + "|" + strconv.FormatInt(o.ExpiresAt.UnixMilli(), 10)
}

func parseRecord(s string) (surge.Order, error) {
	f := strings.Split(s, "|")
	if len(f) != 4 {
		return surge.Order{}, fmt.Errorf("malformed %q", s)
	}
	q, err1 := strconv.ParseInt(f[1], 10, 64)
	c, err2 := strconv.ParseInt(f[2], 10, 64)
	e, err3 := strconv.ParseInt(f[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return surge.Order{}, fmt.Errorf("malformed %q: %w", s, err)
	}
	return surge.Order{ID: f[0], Quantity: q, Status: surge.OrderReserved,
		CreatedAt: time.UnixMilli(c).UTC(), ExpiresAt: time.UnixMilli(e).UTC()}, nil
}

// Rebalance moves units into bucket to from the other buckets, fullest
// first: at least need (if they hold it), and half the fullest donor's
// stock when that is more, so that a dry bucket does not come back for
// every purchase. Each move is two scripts, one per slot: the donor
// records the transfer as it gives the units, the recipient records it as
// it takes them, and RepairTransfers completes a transfer whose second
// half never ran (a node died between the two).
func (s *Stock) Rebalance(ctx context.Context, l Layout, to int, need int64, perBucket []int64) (int64, error) {
	donors := make([]int, 0, len(perBucket))
	var total int64
	for b, r := range perBucket {
		if b != to && r > 0 {
			donors = append(donors, b)
			total += r
		}
	}
	if total < need {
		return 0, nil
	}
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
	moved, err := takeScript.Run(ctx, s.c, []string{fk.meta, fk.xout}, id, n, time.Now().UnixMilli()).Int64()
	if err != nil || moved <= 0 {
		return 0, err
	}
	if err := giveScript.Run(ctx, s.c, []string{tk.meta, tk.xin}, id, moved, time.Now().UnixMilli()).Err(); err != nil {
		return 0, err
	}
	return moved, nil
}

// RepairTransfers completes every transfer out of the sale's buckets older
// than cutoff whose recipient never took it, then forgets finished ones.
func (s *Stock) RepairTransfers(ctx context.Context, l Layout, cutoff time.Time) (repaired int, err error) {
	if l.n() == 1 {
		return 0, nil
	}
	max := strconv.FormatInt(cutoff.UnixMilli(), 10)
	for b := range l.n() {
		k := s.keys(l, b)
		outs, err := s.c.ZRangeByScore(ctx, k.xout, &goredis.ZRangeBy{Min: "-inf", Max: max}).Result()
		if err != nil {
			return repaired, err
		}
		for _, x := range outs {
			// x is "<to>:<id>|<units>"
			id, units, ok := strings.Cut(x, "|")
			toStr, _, _ := strings.Cut(id, ":")
			to, err1 := strconv.Atoi(toStr)
			n, err2 := strconv.ParseInt(units, 10, 64)
			if !ok || err1 != nil || err2 != nil || to < 0 || to >= l.n() {
				continue
			}
			tk := s.keys(l, to)
			applied, err := giveScript.Run(ctx, s.c, []string{tk.meta, tk.xin}, id, n, time.Now().UnixMilli()).Int64()
			if err != nil {
				return repaired, err
			}
			if applied == 1 {
				repaired++
			}
			if err := s.c.ZRem(ctx, k.xout, x).Err(); err != nil {
				return repaired, err
			}
		}
		// Received ids are kept an hour, far longer than any transfer can
		// take to complete, so a late second half is still recognised.
		old := strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)
		if err := s.c.ZRemRangeByScore(ctx, k.xin, "-inf", old).Err(); err != nil {
			return repaired, err
		}
	}
	return repaired, nil
}

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
	cmds, err := s.evalMany(ctx, releaseScript, keys, args)
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

// Remaining is the sale's live remaining stock; ErrNoState if missing.
func (s *Stock) Remaining(ctx context.Context, l Layout) (int64, error) {
	var total int64
	err := s.eachMeta(ctx, l, "rem", func(_ int, v int64) { total += v })
	if err != nil {
		return 0, fmt.Errorf("redis: remaining of sale %s: %w", l.Sale, err)
	}
	return total, nil
}

// Inspect checks the sale's live state, every bucket in one round trip:
// ErrNoState if a bucket is missing or lost one of its hashes (the
// sentinels), epoch -1 if the buckets disagree (a rebuild did not finish),
// and taken, the units the state has reserved since it was built from
// PostgreSQL's ever count. A state that rolled back (a snapshot or AOF
// reloaded, a replica promoted) has taken below PostgreSQL's ever count.
func (s *Stock) Inspect(ctx context.Context, l Layout) (epoch, taken int64, err error) {
	keys := make([][]string, l.n())
	args := make([][]any, l.n())
	for b := range keys {
		k := s.keys(l, b)
		keys[b] = append(k.list(), k.xout, k.xin)
	}
	cmds, err := s.evalMany(ctx, inspectScript, keys, args)
	if err != nil {
		return 0, 0, fmt.Errorf("redis: inspect sale %s: %w", l.Sale, err)
	}
	epoch = -2
	for _, c := range cmds {
		res, err := c.Int64Slice()
		if err != nil {
			return 0, 0, fmt.Errorf("redis: inspect sale %s: %w", l.Sale, err)
		}
		if len(res) != 2 {
			return 0, 0, ErrNoState
		}
		switch {
		case epoch == -2:
			epoch = res[0]
		case epoch != res[0]:
			epoch = -1
		}
		taken += res[1]
	}
	return epoch, taken, nil
}

// Remove deletes the sale's live state (a creation whose commit failed
// leaves none behind; if the commit did happen, the leader rebuilds it).
func (s *Stock) Remove(ctx context.Context, l Layout) error {
	for b := range l.n() {
		k := s.keys(l, b)
		if err := s.c.Del(ctx, append(k.list(), k.xout, k.xin)...).Err(); err != nil {
			return fmt.Errorf("redis: remove sale %s: %w", l.Sale, err)
		}
	}
	return nil
}

// eachMeta reads one field of every bucket's meta in one round trip.
func (s *Stock) eachMeta(ctx context.Context, l Layout, field string, fn func(bucket int, v int64)) error {
	cmds := make([]*goredis.StringCmd, l.n())
	_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range cmds {
			cmds[b] = p.HGet(ctx, s.keys(l, b).meta, field)
		}
		return nil
	})
	for b, c := range cmds {
		v, err := c.Int64()
		if errors.Is(err, goredis.Nil) {
			return ErrNoState
		}
		if err != nil {
			return err
		}
		fn(b, v)
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

// State is what a sale's live state is built from.
type State struct {
	Sale    surge.Sale
	Buckets int
	Epoch   int64
	Ever    int64 // PostgreSQL's units ever inserted: where taken starts
	// Replace installs st whatever the epoch already there: for a new
	// sale's creator, who alone can hold its uncommitted row, so any state
	// under its id is left over from a creation that failed.
	Replace bool
	Live    []surge.Order // reserved and paid
	Keyed   []surge.Order // every keyed order as first answered
}

// chunk bounds the fields one staging command writes, so a sale of a
// million orders is installed in many small steps, not one huge one.
const chunk = 1000

// Install replaces the sale's live state with st, bucket by bucket,
// unless a bucket already holds a state of the same or a newer epoch
// (installed reports whether every bucket took it). Each bucket's state is
// written to staging keys first, then swapped in by one script; the
// unreserved stock is split evenly over the buckets.
func (s *Stock) Install(ctx context.Context, st State) (installed bool, err error) {
	l := Layout{Sale: st.Sale.ID, Buckets: st.Buckets}
	nb := l.n()
	held := make([]map[string]int64, nb)
	orders := make([][]any, nb)
	keyed := make([][]any, nb)
	for b := range held {
		held[b] = make(map[string]int64)
	}
	live := int64(0)
	for _, o := range st.Live {
		b := l.Bucket(o.UserID)
		held[b][o.UserID] += o.Quantity
		live += o.Quantity
		if o.Status == surge.OrderReserved {
			orders[b] = append(orders[b], o.ID, o.UserID+"|"+strconv.FormatInt(o.Quantity, 10))
		}
	}
	for _, o := range st.Keyed {
		b := l.Bucket(o.UserID)
		keyed[b] = append(keyed[b], o.UserID+"\n"+o.IdempotencyKey, record(o))
	}
	free := st.Sale.Stock - live
	ends := int64(0)
	if !st.Sale.EndsAt.IsZero() {
		ends = st.Sale.EndsAt.UnixMilli()
	}
	installed = true
	for b := range nb {
		share := free / int64(nb)
		if int64(b) < free%int64(nb) {
			share++
		}
		k := s.keys(l, b)
		stage := strings.TrimSuffix(k.meta, "m") + "s" + strconv.FormatInt(st.Epoch, 10) + ":"
		su, sk, so := stage+"u", stage+"k", stage+"o"
		if err := s.c.Del(ctx, su, sk, so).Err(); err != nil {
			return false, fmt.Errorf("redis: install sale %s: %w", l.Sale, err)
		}
		users := make([]any, 0, 2*len(held[b]))
		for u, n := range held[b] {
			users = append(users, u, n)
		}
		for _, w := range []struct {
			key    string
			fields []any
		}{{su, users}, {sk, keyed[b]}, {so, orders[b]}} {
			for i := 0; i < len(w.fields); i += 2 * chunk {
				j := min(i+2*chunk, len(w.fields))
				if err := s.c.HSet(ctx, w.key, w.fields[i:j]...).Err(); err != nil {
					return false, fmt.Errorf("redis: install sale %s: %w", l.Sale, err)
				}
			}
		}
		tot := int64(0)
		if b == 0 {
			tot = st.Ever
		}
		replace := 0
		if st.Replace {
			replace = 1
		}
		ok, err := installScript.Run(ctx, s.c, append(k.list(), su, sk, so, k.xout, k.xin),
			st.Epoch, share, st.Sale.PerUserLimit, st.Sale.StartsAt.UnixMilli(), ends, tot, replace).Int64()
		if err != nil {
			return false, fmt.Errorf("redis: install sale %s: %w", l.Sale, err)
		}
		installed = installed && ok == 1
	}
	return installed, nil
}
