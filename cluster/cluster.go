// Package cluster is the Store of cluster mode: any number of stateless
// Surge nodes share one Redis, which decides purchases (package redis: one
// script call per batch), and one PostgreSQL, which holds the durable truth
// (package postgres: one fenced insert per batch). A purchase is answered
// reserved only once its order is committed in PostgreSQL.
//
// Redis may lose its state (restart, failover, eviction), come back older
// than PostgreSQL (a snapshot or AOF reloaded, an asynchronous replica
// promoted), or run ahead of PostgreSQL (a node died, or PostgreSQL
// failed, between the two writes). A leader, elected by a PostgreSQL
// lease, repairs every case by rebuilding the sale's live state from
// PostgreSQL under a new epoch; PostgreSQL refuses every order decided
// against an older epoch, and every batch that would oversell, exceed a
// limit or reuse a key, so units taken for purchases that were never
// confirmed come back and none is sold twice. The leader also expires
// holds. See docs/cluster.md.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// Config tunes a node; zero fields take their defaults.
type Config struct {
	// Prefix of every Redis key (default "surge"); Schema of every
	// PostgreSQL table (default: the search_path). Tests isolate datasets
	// with them.
	Prefix, Schema string
	// NodeID names this node in leases and logs (default: random).
	NodeID string
	// LeaseTTL is how long a leader's term lasts without renewal (5s);
	// Interval is how often the leader runs its jobs and renews (1s).
	LeaseTTL, Interval time.Duration
	// ConfirmAfter is how old a reservation in Redis may get before the
	// leader checks it reached PostgreSQL (10s). It only delays the
	// repair; the epoch fence keeps it safe whatever the value.
	ConfirmAfter time.Duration
	// CallTimeout bounds each Redis or PostgreSQL call a purchase waits
	// on (2s): a dependency that hangs fails the purchase, not the node.
	CallTimeout time.Duration
	// KeyCache bounds the idempotency keys kept in memory (262144).
	KeyCache int
	// Buckets splits the live stock of each sale this node creates over
	// that many Redis slots (default 1): for sales too hot for one shard
	// of a Redis Cluster. Fixed per sale at creation.
	Buckets int
	// BreakerOpen is how long a tripped breaker fails calls before it
	// lets one through to probe the dependency (1s).
	BreakerOpen time.Duration
	// NoExpiry stops the leader from expiring holds each round: they then
	// end only when the owner calls Expire (tests that drive their own
	// clock).
	NoExpiry bool
	// Logger receives operational events (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.NodeID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.NodeID = "node-" + hex.EncodeToString(b[:])
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LeaseTTL, 5*time.Second)
	def(&c.Interval, time.Second)
	def(&c.ConfirmAfter, 10*time.Second)
	def(&c.CallTimeout, 2*time.Second)
	def(&c.BreakerOpen, time.Second)
	if c.KeyCache <= 0 {
		c.KeyCache = 1 << 18
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// leaseName is the lease of the once-only jobs.
const leaseName = "jobs"

// Store implements surge.Shared over Redis and PostgreSQL.
type Store struct {
	cfg  Config
	log  *slog.Logger
	rc   redis.Client
	live *redis.Stock
	db   *postgres.DB
	ids  surge.OrderIDs
	keys *keyCache

	rcb, pcb *gobreaker.CircuitBreaker[struct{}]

	mu    sync.RWMutex
	sales map[string]saleInfo
	// ever is, per sale, the largest count of units ever inserted that
	// this node has seen PostgreSQL report (in an insert's answer or a
	// sale row). Redis reserved each of them before PostgreSQL committed
	// it, so a later Redis count below it means Redis lost reservations
	// (see Reserve).
	ever map[string]int64

	lease   atomic.Pointer[postgres.Lease] // held term, nil when not leader
	changed chan string
	kick    chan struct{}

	closed atomic.Bool
	stop   context.CancelFunc
	wg     sync.WaitGroup

	stats struct{ calls, rows, commits atomic.Int64 }
}

// Open connects to Redis at redisURL and PostgreSQL at postgresURL,
// applies the migrations, and starts the node's background work.
func Open(ctx context.Context, redisURL, postgresURL string, cfg Config) (*Store, error) {
	cfg.defaults()
	rc, err := redis.Dial(ctx, redisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	db, err := postgres.Open(ctx, postgresURL, postgres.Options{Schema: cfg.Schema})
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	s := &Store{
		cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), rc: rc, live: redis.New(rc, cfg.Prefix), db: db,
		keys:    newKeyCache(cfg.KeyCache),
		sales:   make(map[string]saleInfo),
		ever:    make(map[string]int64),
		changed: make(chan string, 256),
		kick:    make(chan struct{}, 1),
	}
	s.rcb = s.breaker("redis")
	s.pcb = s.breaker("postgres")
	if _, err := s.Sales(ctx); err != nil {
		s.closeConns()
		return nil, fmt.Errorf("cluster: load sales: %w", err)
	}
	if err := db.RecentKeys(ctx, cfg.KeyCache/2, s.keys.put); err != nil {
		s.closeConns()
		return nil, fmt.Errorf("cluster: load idempotency keys: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.lead(bg) }()
	go func() { defer s.wg.Done(); db.Listen(bg, s.notify) }()
	return s, nil
}

// breaker fails calls to a dependency fast while it is down, so purchases
// answer 503 at once instead of each waiting out a timeout.
func (s *Store) breaker(name string) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     s.cfg.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		IsExcluded:  notOutage,
		OnStateChange: func(name string, from, to gobreaker.State) {
			s.log.Warn("circuit breaker", "dependency", name, "from", from.String(), "to", to.String())
		},
	})
}

// notOutage tells answers (not found, fenced, a caller who left) from
// failures of the dependency itself.
func notOutage(err error) bool {
	return errors.Is(err, context.Canceled) || surge.ErrorCode(err) != "" ||
		errors.Is(err, postgres.ErrNotReserved) || errors.Is(err, postgres.ErrFenced) || errors.Is(err, postgres.ErrRefused) ||
		errors.Is(err, postgres.ErrLeaseLost) || errors.Is(err, redis.ErrNoState)
}

// call runs f through a breaker with the call timeout.
func (s *Store) call(ctx context.Context, cb *gobreaker.CircuitBreaker[struct{}], f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	_, err := cb.Execute(func() (struct{}, error) { return struct{}{}, f(ctx) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &surge.Error{Code: surge.CodeUnavailable, RetryAfter: s.cfg.BreakerOpen,
			Message: cb.Name() + " is unavailable; retry shortly"}
	}
	return err
}

// unavailable wraps a dependency failure for the caller: 503 with a retry.
func unavailable(what string, err error) error {
	if surge.ErrorCode(err) != "" {
		return err
	}
	return fmt.Errorf("%w: %s: %w", &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
		Message: what + " failed; retry shortly"}, what, err)
}

// ---- sales ----

// CreateSale implements surge.Store.
func (s *Store) CreateSale(ctx context.Context, sl surge.Sale) error {
	buckets := max(s.cfg.Buckets, 1)
	layout := redis.Layout{Sale: sl.ID, Buckets: buckets}
	installed := false
	// The live state starts empty at epoch 1, installed before the sale's
	// row commits: a leader that saw the row first would take the state
	// for lost and rebuild it, failing the first purchases. If the install
	// fails the leader builds it; purchases answer 503 until then.
	install := func(ctx context.Context) {
		if _, err := s.live.Install(ctx, surge.LiveState{Sale: sl, Buckets: buckets, Epoch: 1}, true); err != nil {
			s.log.Warn("install live state of a new sale", "sale", sl.ID, "err", err)
			s.wake()
			return
		}
		installed = true
	}
	if err := s.call(ctx, s.pcb, func(ctx context.Context) error { return s.db.CreateSale(ctx, sl, buckets, install) }); err != nil {
		if installed && !surge.HasCode(err, surge.CodeSaleExists) {
			// The commit failed (or its answer was lost): leave no state
			// behind; if the sale does exist, the leader builds it.
			if err := s.live.Remove(ctx, layout); err != nil {
				s.log.Warn("remove live state of a sale not created", "sale", sl.ID, "err", err)
			}
		}
		return unavailable("creating the sale", err)
	}
	s.remember(sl, buckets, 0)
	s.announce(ctx, sl.ID)
	return nil
}

// saleInfo is a sale and where its live state lives.
type saleInfo struct {
	surge.Sale
	layout redis.Layout
}

func (s *Store) remember(sl surge.Sale, buckets int, ever int64) {
	s.mu.Lock()
	s.sales[sl.ID] = saleInfo{Sale: sl, layout: redis.Layout{Sale: sl.ID, Buckets: max(buckets, 1)}}
	s.ever[sl.ID] = max(s.ever[sl.ID], ever)
	s.mu.Unlock()
}

// sawEver records PostgreSQL's count of units ever inserted into a sale.
func (s *Store) sawEver(saleID string, ever int64) {
	s.mu.Lock()
	s.ever[saleID] = max(s.ever[saleID], ever)
	s.mu.Unlock()
}

// everSeen is the largest count of units ever inserted into a sale this
// node has seen PostgreSQL report.
func (s *Store) everSeen(saleID string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ever[saleID]
}

// Sales implements surge.Store.
func (s *Store) Sales(ctx context.Context) ([]surge.Sale, error) {
	var rows []postgres.SaleRow
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		rows, err = s.db.Sales(ctx)
		return err
	})
	if err != nil {
		return nil, unavailable("listing sales", err)
	}
	out := make([]surge.Sale, len(rows))
	for i, r := range rows {
		out[i] = r.Sale
		s.remember(r.Sale, r.Buckets, r.Ever)
	}
	s.keepOnly(rows) // archived sales go (archive.go)
	return out, nil
}

// sale returns a sale from memory, or from PostgreSQL the first time this
// node hears of it.
func (s *Store) sale(ctx context.Context, id string) (saleInfo, error) {
	s.mu.RLock()
	sl, ok := s.sales[id]
	s.mu.RUnlock()
	if ok {
		return sl, nil
	}
	var row postgres.SaleRow
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		row, err = s.db.Sale(ctx, id)
		return err
	})
	if err != nil {
		return saleInfo{}, unavailable("loading the sale", err)
	}
	s.remember(row.Sale, row.Buckets, row.Ever)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sales[id], nil
}

// ---- order life cycle ----

// Cancel implements surge.Store.
func (s *Store) Cancel(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderCancelled, surge.ErrNotCancellable, now)
}

// Pay implements surge.Store.
func (s *Store) Pay(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderPaid, surge.ErrNotPayable, now)
}

func (s *Store) settle(ctx context.Context, id string, status surge.OrderStatus, notReserved error, now time.Time) (surge.Order, error) {
	if s.closed.Load() {
		return surge.Order{}, surge.ErrUnavailable
	}
	var o surge.Order
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		o, err = s.db.Settle(ctx, id, status, now.UTC().Truncate(time.Millisecond))
		return err
	})
	if errors.Is(err, postgres.ErrNotReserved) {
		return surge.Order{}, notReserved
	}
	if err != nil {
		return surge.Order{}, unavailable("updating the order", err)
	}
	if !status.Live() {
		s.release(ctx, o.SaleID, []surge.Order{o})
	}
	return o, nil
}

// release gives units of orders PostgreSQL no longer holds back to the
// live state, and tells the other nodes. If Redis cannot be reached the
// sale is marked for a rebuild, which reads the release from PostgreSQL.
func (s *Store) release(ctx context.Context, saleID string, orders []surge.Order) {
	sl, err := s.sale(ctx, saleID)
	if err == nil {
		err = s.call(ctx, s.rcb, func(ctx context.Context) error { return s.live.Release(ctx, sl.layout, orders) })
	}
	if err != nil && !errors.Is(err, redis.ErrNoState) {
		s.log.Warn("release units in Redis; marking the sale for a rebuild", "sale", saleID, "orders", len(orders), "err", err)
		s.markDirty(ctx, saleID)
	}
	s.announce(ctx, saleID)
}

// markDirty asks the leader, whichever node it is, to rebuild a sale.
func (s *Store) markDirty(ctx context.Context, saleID string) {
	if err := s.db.MarkDirty(ctx, saleID); err != nil {
		s.log.Error("mark sale dirty", "sale", saleID, "err", err)
	}
	s.wake()
}

// expireBatch bounds the orders one expiry statement moves.
const expireBatch = 1000

// Expire moves every reserved order whose hold ended at or before now to
// expired, returns its units to Redis, announces the sales that got units
// back (Changed, on every node), and returns the orders it expired. It is
// one of the leader's jobs: the leader runs it each round on the wall
// clock; on a node that cannot lead it does nothing. Tests that disabled
// the job (Config.NoExpiry) call it with their clock.
func (s *Store) Expire(ctx context.Context, now time.Time) ([]surge.Order, error) {
	if s.closed.Load() {
		return nil, surge.ErrUnavailable
	}
	l := s.lease.Load()
	if l == nil {
		var err error
		if l, err = s.acquire(ctx); err != nil || l == nil {
			return nil, err
		}
	}
	return s.expire(ctx, *l, now)
}

// expire expires holds under the lease l.
func (s *Store) expire(ctx context.Context, l postgres.Lease, now time.Time) ([]surge.Order, error) {
	now = now.UTC().Truncate(time.Millisecond)
	var all []surge.Order
	for {
		var batch []surge.Order
		err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
			batch, err = s.db.Expire(ctx, now, l, expireBatch)
			return err
		})
		if err != nil {
			return all, unavailable("expiring holds", err)
		}
		bySale := make(map[string][]surge.Order)
		for _, o := range batch {
			bySale[o.SaleID] = append(bySale[o.SaleID], o)
		}
		for sale, orders := range bySale {
			s.release(ctx, sale, orders)
			s.log.Info("holds expired", "sale", sale, "orders", len(orders))
		}
		all = append(all, batch...)
		if len(batch) < expireBatch {
			return all, nil
		}
	}
}

// Order implements surge.Store.
func (s *Store) Order(ctx context.Context, id string) (surge.Order, error) {
	var o surge.Order
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		o, err = s.db.Order(ctx, id)
		return err
	})
	if err != nil {
		return surge.Order{}, unavailable("reading the order", err)
	}
	return o, nil
}

// Orders implements surge.Store. It streams from PostgreSQL without the
// call timeout: an export of a large sale takes as long as it takes.
func (s *Store) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	if err := s.knownSale(ctx, saleID); err != nil { // archived ones too
		return err
	}
	if err := s.db.Orders(ctx, saleID, fn); err != nil {
		return unavailable("reading the orders", err)
	}
	return nil
}

// ---- the leader's jobs ----

func (s *Store) acquire(ctx context.Context) (*postgres.Lease, error) {
	var (
		l  postgres.Lease
		ok bool
	)
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		l, ok, err = s.db.Acquire(ctx, leaseName, s.cfg.NodeID, s.cfg.LeaseTTL)
		return err
	})
	if err != nil || !ok {
		if old := s.lease.Swap(nil); old != nil {
			s.log.Warn("lost the lead", "err", err)
		}
		return nil, err
	}
	if old := s.lease.Swap(&l); old == nil || old.Token != l.Token {
		s.log.Info("leading the once-only jobs", "token", l.Token)
	}
	return &l, nil
}

// wake asks the leader loop for an early round.
func (s *Store) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// lead renews the lease and, while it holds it, expires holds that ran
// out and repairs every sale's live state when it is missing, dirty, of
// another epoch, or holds reservations that never reached PostgreSQL.
func (s *Store) lead(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if l, _ := s.acquire(ctx); l != nil {
			if !s.cfg.NoExpiry {
				if _, err := s.expire(ctx, *l, time.Now()); err != nil && ctx.Err() == nil {
					s.log.Error("expire holds", "err", err)
				}
			}
			s.repair(ctx, *l)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

func (s *Store) repair(ctx context.Context, l postgres.Lease) {
	var rows []postgres.SaleRow
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		rows, err = s.db.Sales(ctx)
		return err
	})
	if err != nil {
		return
	}
	for _, row := range rows {
		s.remember(row.Sale, row.Buckets, row.Ever)
		why, err := s.diagnose(ctx, row)
		if err != nil || why == "" {
			continue
		}
		if err := s.Rebuild(ctx, l, row.ID, why); err != nil {
			s.log.Error("rebuild live state", "sale", row.ID, "why", why, "err", err)
		}
	}
}

// diagnose says why a sale's live state needs a rebuild, or "".
func (s *Store) diagnose(ctx context.Context, row postgres.SaleRow) (string, error) {
	if row.Dirty {
		return "a release did not reach Redis", nil
	}
	layout := redis.Layout{Sale: row.ID, Buckets: row.Buckets}
	var epoch, taken int64
	err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		epoch, taken, err = s.live.Inspect(ctx, layout)
		return err
	})
	if errors.Is(err, redis.ErrNoState) {
		return "the live state is missing or lost keys (Redis restarted empty? keys evicted?)", nil
	}
	if err != nil {
		return "", err
	}
	if epoch != row.Epoch {
		return fmt.Sprintf("Redis holds epoch %d, PostgreSQL %d (-1: buckets disagree)", epoch, row.Epoch), nil
	}
	// row was read before Redis was: every unit it counts, Redis had
	// reserved by then, unless Redis came back older than PostgreSQL.
	if taken < row.Ever {
		return fmt.Sprintf("Redis reserved %d units, PostgreSQL holds %d (Redis rolled back: a snapshot, an AOF or a replica behind)", taken, row.Ever), nil
	}
	// Transfers between buckets whose second half never ran (a node died
	// between the two scripts) are completed.
	err = s.call(ctx, s.rcb, func(ctx context.Context) error {
		n, err := s.live.RepairTransfers(ctx, layout, time.Now().Add(-s.cfg.ConfirmAfter))
		if n > 0 {
			s.log.Warn("completed interrupted stock transfers between buckets", "sale", row.ID, "transfers", n)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	var ids []string
	err = s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		ids, err = s.live.Unconfirmed(ctx, layout, time.Now().Add(-s.cfg.ConfirmAfter), 1000)
		return err
	})
	if err != nil || len(ids) == 0 {
		return "", err
	}
	var have map[string]bool
	err = s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		have, err = s.db.Existing(ctx, ids)
		return err
	})
	if err != nil {
		return "", err
	}
	var ok []string
	for _, id := range ids {
		if have[id] {
			ok = append(ok, id)
		}
	}
	if err := s.call(ctx, s.rcb, func(ctx context.Context) error { return s.live.Confirm(ctx, layout, ok) }); err != nil {
		return "", err
	}
	if n := len(ids) - len(ok); n > 0 {
		return fmt.Sprintf("%d reservations never reached PostgreSQL", n), nil
	}
	return "", nil
}

// Rebuild replaces a sale's live state in Redis with one built from
// PostgreSQL under a new epoch. It needs the lease l.
func (s *Store) Rebuild(ctx context.Context, l postgres.Lease, saleID, why string) error {
	start := time.Now()
	snap, err := s.db.Rebuild(ctx, saleID, l)
	if err != nil {
		return err
	}
	ok, err := s.live.Install(ctx, surge.LiveState(snap), false)
	if err != nil {
		return err
	}
	s.log.Warn("rebuilt live state from PostgreSQL", "sale", saleID, "why", why, "epoch", snap.Epoch,
		"installed", ok, "live_orders", len(snap.Live), "took", time.Since(start))
	s.announce(ctx, saleID)
	return nil
}

// Leader reports whether this node holds the jobs lease.
func (s *Store) Leader() bool { return s.lease.Load() != nil }

// ---- change notifications ----

// Changed implements surge.Shared.
func (s *Store) Changed() <-chan string { return s.changed }

func (s *Store) notify(saleID string) {
	select {
	case s.changed <- saleID:
	default: // the engine's periodic sync catches up
	}
}

// announce tells every node (this one included) that a sale changed.
func (s *Store) announce(ctx context.Context, saleID string) {
	if err := s.db.Notify(ctx, saleID); err != nil {
		s.log.Warn("notify sale change", "sale", saleID, "err", err)
	}
}

// ---- counters and shutdown ----

// Stats are the batching figures of this node.
type Stats struct {
	Calls   int64 // batches that reached PostgreSQL (one Redis script call each)
	Commits int64 // of them, batches that inserted orders
	Rows    int64 // orders inserted
}

// Stats returns this node's counters.
func (s *Store) Stats() Stats {
	return Stats{Calls: s.stats.calls.Load(), Commits: s.stats.commits.Load(), Rows: s.stats.rows.Load()}
}

// Close implements surge.Store: it stops the background work, gives up
// the lease so another node takes over at once, and disconnects.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stop()
	s.wg.Wait()
	// By name, not by the term this node last saw: a renewal cut short by
	// the shutdown may have left the lease held without our knowing.
	s.lease.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	_ = s.db.Resign(ctx, leaseName, s.cfg.NodeID)
	cancel()
	s.closeConns()
	return nil
}

func (s *Store) closeConns() {
	s.db.Close()
	_ = s.rc.Close()
}

var _ surge.Shared = (*Store)(nil)

// SharedLimit returns a rate limit of perSecond with burst that every node
// shares, kept in this store's Redis (for admission.Distributed).
func (s *Store) SharedLimit(name string, perSecond float64, burst int) *redis.Limit {
	return redis.NewLimit(s.rc, s.cfg.Prefix, name, perSecond, burst)
}

// Queues returns the waiting rooms' backend shared by every node, kept in
// this store's Redis, at most maxEntries buyers per sale.
func (s *Store) Queues(maxEntries int) *redis.Queues {
	return redis.NewQueues(s.rc, s.cfg.Prefix, maxEntries)
}
