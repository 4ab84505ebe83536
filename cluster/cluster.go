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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/logrepeat"
	"github.com/surgehq/surge/metrics"
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
	// KeyCopy bounds the keys of one sale's copy (keycopy.go) that
	// answers keyed purchases of a sold-out sale without Redis (1048576);
	// a sale with more keys has them answered by Redis.
	KeyCopy int
	// KeyCopyFresh is how long after this node last read a sale's figures
	// in Redis (every batch does, and the engine's poll every
	// SyncInterval, 500 ms) its copy may still answer a keyed purchase
	// sold out without Redis (2s): a node cut off or stopped hears of no
	// units coming back.
	KeyCopyFresh time.Duration
	// Buckets splits the live stock of each sale this node creates over
	// that many Redis slots (default 1): for sales too hot for one shard
	// of a Redis Cluster. Fixed per sale at creation.
	Buckets int
	// BreakerOpen is how long a tripped breaker fails calls before it
	// lets one through to probe the dependency (1s).
	BreakerOpen time.Duration
	// NoExpiry stops the leader from expiring holds each round: they then
	// end only when the owner calls Expire (tests that drive their own
	// clock), and a pay or cancel judges a hold on the caller's clock, not
	// on PostgreSQL's, as the pipeline reads every instant (Clock).
	NoExpiry bool
	// Now is the node's wall clock (default time.Now): tests put one
	// node's ahead of the others'. Its offset to PostgreSQL's is learned
	// against it (clock.go).
	Now func() time.Time
	// Events: this node relays order events (--nats-url), so Open turns
	// them on for the whole cluster before the node serves; they stay on.
	// A cluster no node of which ever relayed writes none (migration 010).
	Events bool
	// Logger receives operational events (default slog.Default()).
	Logger *slog.Logger
	// Tracing, when set, makes a span of each Redis and PostgreSQL call,
	// under the caller's span (the engine's store call).
	Tracing trace.TracerProvider
	// Metrics, when set, receives the cluster collectors (telemetry.go):
	// surge_breaker_state, surge_cluster_leader and
	// surge_dependency_duration_seconds.
	Metrics prometheus.Registerer
}

// leaseHolder is the name a store holds leases under: the node's id and
// a random suffix, unique to the store.
func leaseHolder(nodeID string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return nodeID + "/" + hex.EncodeToString(b[:])
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
	def(&c.KeyCopyFresh, 2*time.Second)
	if c.KeyCache <= 0 {
		c.KeyCache = 1 << 18
	}
	if c.KeyCopy <= 0 {
		c.KeyCopy = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
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
	// copies answer keyed purchases of sold-out sales (keycopy.go).
	copies *keyCopies

	rcb, pcb *gobreaker.CircuitBreaker[struct{}]
	// probes limits the breakers' lines while a dependency stays down
	// (a failed probe each BreakerOpen).
	probes *logrepeat.Limiter

	mu    sync.RWMutex
	sales map[string]saleInfo
	// ever is, per sale, the largest count of units ever inserted that
	// this node has seen PostgreSQL report (in an insert's answer or a
	// sale row). Redis reserved each of them before PostgreSQL committed
	// it, so a later Redis count below it means Redis lost reservations
	// (see Reserve).
	ever map[string]int64
	// missing is, per sale, when this node first found its live state
	// missing from Redis since it last found it there (health.go).
	missing map[string]missingState

	// holder names this store in the leases: its node id and a random
	// suffix of its own, so that two nodes given one --node-id (an
	// operator's slip) never renew each other's term.
	holder string
	lease  atomic.Pointer[postgres.Lease] // held term, nil when not leader
	relay  atomic.Pointer[relayLease]     // the outbox lease (outbox.go), nil when not held
	// leasing orders the lease tries (takeLease, read-locked) before the
	// resign at Shutdown (write-locked), which sets resigned: a try still
	// running could commit after the resign, and none starts after it.
	leasing  sync.RWMutex
	resigned bool
	// offset is what this node adds to its clock to read PostgreSQL's
	// (clock.go), offsetWarned the offset it last warned of.
	offset, offsetWarned atomic.Int64
	// relayWait is when (UnixNano) this node may next try for the outbox
	// lease after finding another node holding it (outbox.go).
	relayWait atomic.Int64
	horizon   postgres.OutboxHorizon // how far the outbox is final (outbox.go)
	changed   chan string
	kick      chan struct{}
	// sweeps is, per sale, where the leader's sweep of each bucket's held
	// orders goes on from (leader.go); the leader loop's alone.
	sweeps map[string][]uint64
	// sweepNext is where, in the list of sales not selling, the next
	// sweep starts.
	sweepNext int
	// sold is, per sale, its count of units ever sold when the leader
	// last saw it change, and when the holds sold then end (first seen:
	// its latest order's; leader.go, selling and seeSold).
	sold map[string]soldSeen
	// short holds the sales whose live state the last round found
	// with fewer units remaining than PostgreSQL's count leaves (leader.go,
	// repair); the leader loop's alone.
	short map[string]bool
	// stagePass is the leader's pass over Redis for staging keys that
	// crashed installs left (leader.go, dropStages), stagesDropped what it
	// dropped, stagesDone whether it read every key; the leader loop's
	// alone.
	stagePass     redis.StagePass
	stagesDropped int
	stagesDone    bool
	// salePass is the leader's pass over Redis for the keys of archived
	// sales (leader.go, removeArchivedFound); the leader loop's alone.
	salePass redis.SalePass
	// round is held through each of the leader's rounds (lead), which
	// own sweeps and sweepNext: tests run rounds of their own beside it.
	round sync.Mutex
	// listed, when set (tests only: export_test.go), runs in each of the
	// leader's rounds right after it listed the sales; under round.
	listed func()
	// installing, when set (tests only: export_test.go), runs in a change
	// of a sale (UpdateSale) or a rebuild once its new epoch is committed,
	// before the epoch's live state is installed in Redis.
	installing atomic.Pointer[func()]

	// rel hears of the orders the leader's expiry moved (OnRelease).
	rel surge.Releases
	// expireLimits is, per sale, how many of its orders the next expiry
	// statement may move (leader.go, expireSale) when less than
	// expireBatch, after batches that failed; under expireMu.
	expireMu     sync.Mutex
	expireLimits map[string]int

	closed atomic.Bool
	bg     context.Context // the background work's; ends at Close
	stop   context.CancelFunc
	wg     sync.WaitGroup

	commits  *metrics.Commits   // nil without Config.Metrics
	swept    prometheus.Counter // the sweep's orders (leader.go); nil without Config.Metrics
	rebuilds prometheus.Counter // Rebuild's; nil without Config.Metrics
}

// Open connects to Redis at redisURL and PostgreSQL at postgresURL,
// applies the migrations, and starts the node's background work.
func Open(ctx context.Context, redisURL, postgresURL string, cfg Config) (*Store, error) {
	cfg.defaults()
	var durations *prometheus.HistogramVec
	if cfg.Metrics != nil {
		durations = newDependencyDurations()
	}
	rc, err := redis.Dial(ctx, redisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := instrument(cfg, rc, durations); err != nil {
		rc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	db, err := postgres.Open(ctx, postgresURL, postgresOptions(cfg, durations))
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	s := &Store{
		cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), rc: rc, live: redis.New(rc, cfg.Prefix), db: db,
		holder:  leaseHolder(cfg.NodeID),
		keys:    newKeyCache(cfg.KeyCache),
		copies:  newKeyCopies(cfg.KeyCopy, cfg.KeyCopyFresh),
		sales:   make(map[string]saleInfo),
		ever:    make(map[string]int64),
		missing: make(map[string]missingState),
		changed: make(chan string, 256),
		kick:    make(chan struct{}, 1),
		sweeps:  map[string][]uint64{},
		sold:    map[string]soldSeen{},
		short:   map[string]bool{},
		probes:  logrepeat.New(logrepeat.Every),
	}
	s.rcb = s.breaker("redis")
	s.pcb = s.breaker("postgres")
	if _, err := s.Sales(ctx); err != nil {
		s.closeConns()
		return nil, fmt.Errorf("cluster: load sales: %w", err)
	}
	s.syncClock(ctx) // before the node serves: its first instants are PostgreSQL's
	if err := db.RecentKeys(ctx, cfg.KeyCache/2, s.keys.put); err != nil {
		s.closeConns()
		return nil, fmt.Errorf("cluster: load idempotency keys: %w", err)
	}
	if err := s.register(durations); err != nil {
		s.closeConns()
		return nil, err
	}
	if !cfg.Events {
		// Only nodes with --nats-url publish the events every node writes
		// once one turned them on, and only they report the outbox: say
		// so here, where nothing else would if none runs.
		if on, err := db.EventsOn(ctx); err != nil {
			s.log.Warn("could not tell whether order events are on", "err", err)
		} else if on {
			s.log.Warn("order events are on for this cluster (a node started with --nats-url turned them on, for good): " +
				"this node writes an outbox row per order change but does not publish them; " +
				"unless a node with --nats-url runs, the outbox grows without bound (docs/events.md)")
		}
	}
	bg, stop := context.WithCancel(context.Background())
	s.bg, s.stop = bg, stop
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.lead(bg) }()
	go func() { defer s.wg.Done(); db.Listen(bg, s.log, s.notify) }()
	return s, nil
}

// breaker fails calls to a dependency fast while it is down, so purchases
// answer 503 at once instead of each waiting out a timeout.
func (s *Store) breaker(name string) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          name,
		MaxRequests:   1,
		Timeout:       s.cfg.BreakerOpen,
		ReadyToTrip:   func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		IsExcluded:    notOutage,
		OnStateChange: s.breakerChanged,
	})
}

// breakerChanged logs a breaker's change of state. While the dependency
// stays down the breaker goes open → half-open → open each BreakerOpen;
// only the outage's first line (closed → open) and the recovery (→
// closed) are always written, the probes' lines at most once a
// logrepeat.Every each, with the count of those left out.
func (s *Store) breakerChanged(name string, from, to gobreaker.State) {
	args := []any{"dependency", name, "from", from.String(), "to", to.String()}
	switch {
	case from == gobreaker.StateClosed:
	case to == gobreaker.StateClosed:
		n := s.probes.Done(name+"/"+gobreaker.StateOpen.String()) + s.probes.Done(name+"/"+gobreaker.StateHalfOpen.String())
		args = append(args, logrepeat.Suppressed(n))
	default:
		n, ok := s.probes.Allow(name + "/" + to.String())
		if !ok {
			return
		}
		args = append(args, logrepeat.Suppressed(n))
	}
	s.log.Warn("circuit breaker", args...)
}

// notOutage tells answers (not found, fenced, a caller who left) from
// failures of the dependency itself.
func notOutage(err error) bool {
	if err == nil {
		// The breaker asks after every call; surge.ErrorCode's errors.As
		// would allocate its target even for nil.
		return false
	}
	if _, ok := err.(callerGone); ok {
		return true
	}
	return errors.Is(err, context.Canceled) || surge.ErrorCode(err) != "" ||
		errors.Is(err, postgres.ErrNotReserved) || errors.Is(err, postgres.ErrFenced) || errors.Is(err, postgres.ErrRefused) ||
		errors.Is(err, postgres.ErrLeaseLost) || errors.Is(err, postgres.ErrDamaged) || errors.Is(err, redis.ErrNoState) || errors.Is(err, redis.ErrStaleHold) ||
		errors.Is(err, redis.ErrKeyRefused)
}

// callerGone is the error of a call whose caller's own context ended
// (it left, or its deadline passed: a gRPC client's grpc-timeout, a
// Connect client's Connect-Timeout-Ms) before the dependency answered:
// that says nothing of the dependency's health, so the breaker does not
// count it (notOutage). call unwraps it before returning.
type callerGone struct{ err error }

func (e callerGone) Error() string { return e.err.Error() }
func (e callerGone) Unwrap() error { return e.err }

// call runs f through a breaker with the call timeout. Only a failure
// while the caller still waits counts against the dependency: the call
// timeout cutting it short does, the caller's own context ending does not.
func (s *Store) call(ctx context.Context, cb *gobreaker.CircuitBreaker[struct{}], f func(ctx context.Context) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	_, err := cb.Execute(func() (struct{}, error) {
		err := f(ctx)
		if err != nil && parent.Err() != nil {
			return struct{}{}, callerGone{err}
		}
		return struct{}{}, err
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		// Known down: breakerChanged logged it, so the engine's line of
		// each refused batch is no ERROR (surge.ErrDependencyDown).
		return surge.DependencyDown(&surge.Error{Code: surge.CodeUnavailable, RetryAfter: s.cfg.BreakerOpen,
			Message: cb.Name() + " is unavailable; retry shortly"})
	}
	if gone, ok := err.(callerGone); ok {
		return gone.err
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

// unavailableUntil is unavailable with a Retry-After of retry, for a
// failure whose effect outlasts the dependency's (an unconfirmed
// reservation): an error that already says unavailable (the breaker open)
// gets the longer wait; another code passes through. advice tells the
// buyer how to retry (retryAdvice).
func unavailableUntil(what string, err error, retry time.Duration, advice string) error {
	if code := surge.ErrorCode(err); code != "" && code != surge.CodeUnavailable {
		return err
	}
	return fmt.Errorf("%w: %s: %w", &surge.Error{Code: surge.CodeUnavailable, RetryAfter: retry,
		Message: what + " failed; " + advice}, what, err)
}

// ---- change notifications ----

// Changed implements surge.Shared.
func (s *Store) Changed() <-chan string { return s.changed }

func (s *Store) notify(saleID string) {
	// Before the engine hears of it, and even if it never does (the
	// channel is full): units may have come back.
	s.copies.invalidate(saleID)
	select {
	case s.changed <- saleID:
	default: // the engine's periodic sync catches up
	}
}

// announce tells every node (this one included) that a sale changed. The
// notification is bounded by the call timeout (see markDirty): a lost one
// costs the other nodes no more than their next poll (SyncInterval).
func (s *Store) announce(ctx context.Context, saleID string) {
	s.copies.invalidate(saleID) // at once here; the others when they hear
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	if err := s.db.Notify(ctx, saleID); err != nil {
		s.log.Warn("notify sale change", "sale", saleID, "err", err)
	}
}

// ---- shutdown ----

// Close implements surge.Store: it stops the background work, gives up
// the lease so another node takes over at once, and disconnects.
func (s *Store) Close() error { return s.Shutdown(context.Background()) }

// Shutdown is Close within ctx: it returns when ctx ends even if the
// store has not finished closing. While PostgreSQL stalls, closing its
// pool waits for each connection a timeout cut short to send its cancel
// request and drain, up to 15 s (pgx's bound), and a node stopping (surge
// serve's --shutdown-timeout) must not wait that out; what is left of the
// closing goes on in the background, and PostgreSQL ends the sessions of a
// client that went.
//
// The leases are given up first, at once (resign), and Shutdown awaits
// that for up to the call timeout from its start even when ctx has ended:
// a drain that used the whole shutdown timeout must not leave them to
// lapse, which makes the next node wait a whole term before it leads or
// publishes.
func (s *Store) Shutdown(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stop()
	resignBy := time.Now().Add(s.cfg.CallTimeout)
	resigned := make(chan struct{})
	go func() { defer close(resigned); s.resign() }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.wg.Wait()
		<-resigned
		s.closeConns()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	t := time.NewTimer(time.Until(resignBy))
	defer t.Stop()
	select {
	case <-resigned:
	case <-t.C:
	}
	return fmt.Errorf("cluster: closing the connections: %w", ctx.Err())
}

// resign gives up this store's leases, the leader's and the outbox
// relay's, so that other nodes take them at once. It does not wait for
// the leader's round, whose writes are fenced by the lease, only for the
// lease tries in flight (leasing; each is bounded by the call timeout):
// one could commit after the resign, and none is made after it. By name,
// not by the term this node last saw: a renewal cut short may have left
// the lease held without its knowing. The caller has stopped the relay
// (surge serve stops it before it closes the store), so it sends nothing
// once the outbox lease is another node's.
func (s *Store) resign() {
	s.leasing.Lock()
	s.resigned = true
	s.lease.Store(nil)
	s.relay.Store(nil)
	s.leasing.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	defer cancel()
	if err := s.db.Resign(ctx, s.holder, leaseName, outboxLease); err != nil {
		s.log.Warn("could not give up the leases; they lapse at the end of their term", "err", err)
	}
}

func (s *Store) closeConns() {
	s.db.Close()
	_ = s.rc.Close()
}

var (
	_ surge.Shared   = (*Store)(nil)
	_ surge.Releaser = (*Store)(nil)
	_ surge.Clocked  = (*Store)(nil)
)

// SharedLimit returns a rate limit of perSecond with burst that every node
// shares, kept in this store's Redis (for admission.Distributed).
func (s *Store) SharedLimit(name string, perSecond float64, burst int) *SharedLimit {
	return &SharedLimit{s: s, l: redis.NewLimit(s.rc, s.cfg.Prefix, name, perSecond, burst)}
}

// SharedLimit is a shared rate limit (redis.Limit) whose calls are made
// as every other Redis call of the store: through the Redis breaker,
// within the call timeout. Without it, a stalled Redis made each node's
// report of the requests it admitted, and a stopping node's last one,
// wait out Redis's timeout even while the breaker failed purchases at once.
type SharedLimit struct {
	s *Store
	l *redis.Limit
}

// Spend implements admission.SharedLimit.
func (sl *SharedLimit) Spend(ctx context.Context, spent map[string]int64) (blocked map[string]time.Duration, err error) {
	err = sl.s.call(ctx, sl.s.rcb, func(ctx context.Context) (err error) {
		blocked, err = sl.l.Spend(ctx, spent)
		return err
	})
	return blocked, err
}
