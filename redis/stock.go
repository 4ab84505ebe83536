// Package redis keeps cluster mode's live state in Redis: each sale's
// remaining stock, the units every buyer holds, idempotency records, and
// the orders still holding units. A node applies a whole batch of
// purchases with one script call, so Redis decides every purchase of every
// node atomically and in order.
//
// The state is a cache of PostgreSQL's truth (package postgres), rebuilt
// from it whenever it is lost (a Redis restarted empty) or in doubt. Each
// copy carries the epoch it was built at; PostgreSQL refuses orders decided
// against an older copy.
//
// The client is go-redis v9: every call Surge makes is already one batch
// per script call, so rueidis's automatic pipelining of many small commands
// would buy little, while go-redis gives one API over a single server,
// Sentinel and Redis Cluster, and runs scripts by EVALSHA with a fallback to
// EVAL when a restarted server has forgotten them.
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
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
		c = goredis.NewClusterClient(opt)
	} else {
		opt, err := goredis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis: parse url: %w", err)
		}
		fast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		opt.MaxRetries = -1
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
// call fails its batch; buyers retry with their Idempotency-Key.
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
// built, or Redis restarted empty): it must be rebuilt from PostgreSQL.
var ErrNoState = errors.New("redis: the sale's live state is missing")

// keys of one sale. The braces are a hash tag: on Redis Cluster every key
// of a sale lives in one slot, so one script can touch them all.
type saleKeys struct{ meta, users, keys, orders, pending string }

func (s *Stock) keys(saleID string) saleKeys {
	b := s.prefix + ":{" + saleID + "}:"
	return saleKeys{b + "m", b + "u", b + "k", b + "o", b + "p"}
}

func (k saleKeys) list() []string { return []string{k.meta, k.users, k.keys, k.orders, k.pending} }

// reserveScript decides a batch. KEYS: meta, users, keys, orders, pending.
// ARGV: now (ms), expiry (ms), the wall clock (ms), then user, key,
// quantity, order id per purchase. It returns the epoch, the remaining stock, then one code per
// purchase: "+" reserved, "R<record>" replay, "S<remaining>" sold out,
// "L" limit reached, "N" not started, "E" ended. The order of the checks
// is the ledger's (package ledger), so both backends answer alike.
//
//go:embed reserve.lua
var reserveSrc string

//go:embed release.lua
var releaseSrc string

//go:embed install.lua
var installSrc string

var (
	reserveScript = goredis.NewScript(reserveSrc)
	releaseScript = goredis.NewScript(releaseSrc)
	installScript = goredis.NewScript(installSrc)
)

// Decision is what Redis decided for one purchase of a batch.
type Decision struct {
	Code      surge.Code
	Remaining int64       // for CodeSoldOut
	Replay    surge.Order // for a replay: the first answer (ID, quantity, times)
}

// Reserve decides batch against the sale's live state. ids[i] names the
// order batch[i] becomes if reserved; expires is when its hold ends.
func (s *Stock) Reserve(ctx context.Context, saleID string, batch []surge.Purchase, ids []string, now, expires time.Time) (epoch, remaining int64, out []Decision, err error) {
	k := s.keys(saleID)
	args := make([]any, 0, 3+4*len(batch))
	args = append(args, now.UnixMilli(), expires.UnixMilli(), time.Now().UnixMilli())
	for i, p := range batch {
		args = append(args, p.UserID, p.IdempotencyKey, p.Quantity, ids[i])
	}
	res, err := reserveScript.Run(ctx, s.c, k.list(), args...).Slice()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: %w", saleID, err)
	}
	if len(res) == 1 {
		return 0, 0, nil, ErrNoState
	}
	if len(res) != 2+len(batch) {
		return 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: %d replies for %d purchases", saleID, len(res)-2, len(batch))
	}
	epoch, _ = res[0].(int64)
	remaining, _ = res[1].(int64)
	out = make([]Decision, len(batch))
	for i := range batch {
		code, _ := res[2+i].(string)
		if code == "" {
			return 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: empty code", saleID)
		}
		switch code[0] {
		case '+':
			out[i].Code = surge.CodeReserved
		case 'S':
			out[i].Code = surge.CodeSoldOut
			out[i].Remaining, _ = strconv.ParseInt(code[1:], 10, 64)
		case 'L':
			out[i].Code = surge.CodeLimitReached
		case 'N':
			out[i].Code = surge.CodeNotStarted
		case 'E':
			out[i].Code = surge.CodeEnded
		case 'R':
			o, err := parseRecord(code[1:])
			if err != nil {
				return 0, 0, nil, fmt.Errorf("redis: replay record in sale %s: %w", saleID, err)
			}
			out[i].Code, out[i].Replay = surge.CodeReserved, o
		default:
			return 0, 0, nil, fmt.Errorf("redis: reserve in sale %s: unknown code %q", saleID, code)
		}
	}
	return epoch, remaining, out, nil
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

// Release returns the units of orders that left the reserved state
// (cancelled, expired). It is idempotent per order: an order the live
// state does not hold (released already, or rebuilt without it) returns
// nothing. ErrNoState if the state is missing; the rebuild will read the
// release from PostgreSQL.
func (s *Stock) Release(ctx context.Context, saleID string, orderIDs []string) (remaining int64, err error) {
	k := s.keys(saleID)
	args := make([]any, len(orderIDs))
	for i, id := range orderIDs {
		args[i] = id
	}
	n, err := releaseScript.Run(ctx, s.c, []string{k.meta, k.users, k.orders}, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis: release in sale %s: %w", saleID, err)
	}
	if n < 0 {
		return 0, ErrNoState
	}
	return n, nil
}

// Remaining is the sale's live remaining stock; ErrNoState if missing.
func (s *Stock) Remaining(ctx context.Context, saleID string) (int64, error) {
	v, err := s.c.HGet(ctx, s.keys(saleID).meta, "rem").Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, ErrNoState
	}
	if err != nil {
		return 0, fmt.Errorf("redis: remaining of sale %s: %w", saleID, err)
	}
	return v, nil
}

// Epoch is the epoch of the sale's live state; ErrNoState if missing.
func (s *Stock) Epoch(ctx context.Context, saleID string) (int64, error) {
	v, err := s.c.HGet(ctx, s.keys(saleID).meta, "epoch").Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, ErrNoState
	}
	if err != nil {
		return 0, fmt.Errorf("redis: epoch of sale %s: %w", saleID, err)
	}
	return v, nil
}

// Unconfirmed returns up to limit orders reserved in the sale's live state
// at or before the cutoff that no one has yet checked against PostgreSQL.
func (s *Stock) Unconfirmed(ctx context.Context, saleID string, cutoff time.Time, limit int64) ([]string, error) {
	ids, err := s.c.ZRangeByScore(ctx, s.keys(saleID).pending, &goredis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(cutoff.UnixMilli(), 10), Count: limit,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: unconfirmed of sale %s: %w", saleID, err)
	}
	return ids, nil
}

// Confirm records that orders are durable in PostgreSQL.
func (s *Stock) Confirm(ctx context.Context, saleID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if err := s.c.ZRem(ctx, s.keys(saleID).pending, args...).Err(); err != nil {
		return fmt.Errorf("redis: confirm in sale %s: %w", saleID, err)
	}
	return nil
}

// State is what a sale's live state is built from.
type State struct {
	Sale  surge.Sale
	Epoch int64
	Live  []surge.Order // reserved and paid
	Keyed []surge.Order // every keyed order as first answered
}

// chunk bounds the fields one staging command writes, so a sale of a
// million orders is installed in many small steps, not one huge one.
const chunk = 1000

// Install replaces the sale's live state with st unless a state of the
// same or a newer epoch is already there (installed reports which). The
// state is written to staging keys first, then swapped in by one script.
func (s *Stock) Install(ctx context.Context, st State) (installed bool, err error) {
	k := s.keys(st.Sale.ID)
	stage := s.prefix + ":{" + st.Sale.ID + "}:s" + strconv.FormatInt(st.Epoch, 10) + ":"
	su, sk, so := stage+"u", stage+"k", stage+"o"
	if err := s.c.Del(ctx, su, sk, so).Err(); err != nil {
		return false, fmt.Errorf("redis: install sale %s: %w", st.Sale.ID, err)
	}
	held := make(map[string]int64)
	live := int64(0)
	var orders []any
	for _, o := range st.Live {
		held[o.UserID] += o.Quantity
		live += o.Quantity
		if o.Status == surge.OrderReserved {
			orders = append(orders, o.ID, o.UserID+"|"+strconv.FormatInt(o.Quantity, 10))
		}
	}
	users := make([]any, 0, 2*len(held))
	for u, n := range held {
		users = append(users, u, n)
	}
	keys := make([]any, 0, 2*len(st.Keyed))
	for _, o := range st.Keyed {
		keys = append(keys, o.UserID+"\n"+o.IdempotencyKey, record(o))
	}
	for _, w := range []struct {
		key    string
		fields []any
	}{{su, users}, {sk, keys}, {so, orders}} {
		for i := 0; i < len(w.fields); i += 2 * chunk {
			j := min(i+2*chunk, len(w.fields))
			if err := s.c.HSet(ctx, w.key, w.fields[i:j]...).Err(); err != nil {
				return false, fmt.Errorf("redis: install sale %s: %w", st.Sale.ID, err)
			}
		}
	}
	ends := int64(0)
	if !st.Sale.EndsAt.IsZero() {
		ends = st.Sale.EndsAt.UnixMilli()
	}
	ok, err := installScript.Run(ctx, s.c, append(k.list(), su, sk, so),
		st.Epoch, st.Sale.Stock-live, st.Sale.PerUserLimit, st.Sale.StartsAt.UnixMilli(), ends).Int64()
	if err != nil {
		return false, fmt.Errorf("redis: install sale %s: %w", st.Sale.ID, err)
	}
	return ok == 1, nil
}

// Forget deletes every key under the prefix (tests).
func (s *Stock) Forget(ctx context.Context) error {
	iter := s.c.Scan(ctx, 0, s.prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for _, key := range batch {
		// One key per DEL: on Redis Cluster a multi-key DEL must stay in a slot.
		if err := s.c.Del(ctx, key).Err(); err != nil {
			return err
		}
	}
	return nil
}
