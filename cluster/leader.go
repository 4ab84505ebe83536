package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/logrepeat"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// release gives units of orders PostgreSQL no longer holds back to the
// live state, and tells the other nodes. If Redis cannot be reached the
// sale is marked for a rebuild, which reads the release from PostgreSQL.
// It runs to its end even when ctx ends (runToEnd): nothing else would
// give the units back. Should marking the sale fail too, the sweep finds
// the orders again.
func (s *Store) release(ctx context.Context, saleID string, orders []surge.Order) {
	ctx = runToEnd(ctx)
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
// Bounded by the call timeout, as every statement is: it comes after an
// order ended (release runs it without the caller's cancellation), and
// a PostgreSQL that stalls would otherwise hold the cancel, or the
// leader's jobs and Close, for as long as it stalls. Should it fail, the
// sweep gives the units back.
func (s *Store) markDirty(ctx context.Context, saleID string) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	err := s.db.MarkDirty(ctx, saleID)
	if err != nil {
		s.log.Error("mark sale dirty", "sale", saleID, "err", err)
	}
	s.wake()
}

// OnRelease implements surge.Releaser: fn hears, on the node that
// expired them (the leader), how many of a sale's orders expired once
// their units are back in Redis, also those of the leader's first round
// before fn was set (it starts in Open); the other nodes hear of the units
// only through Changed, so each expiry is counted once in the cluster.
func (s *Store) OnRelease(fn func(saleID string, expired int)) { s.rel.OnRelease(fn) }

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
	return s.expire(ctx, *l, now, time.Time{})
}

// expire expires holds under the lease l, sale by sale, the one due
// longest first: a sale whose orders PostgreSQL cannot expire in time
// fails its own batches only, and every other sale's holds still expire.
// Each batch runs to its end even when ctx ends (see runToEnd); ctx stops
// it between batches, and so does until, when set: a round that expired
// every due sale, one statement after another, would hold off the repair
// of every sale's live state for as long. What is left is due first in
// the next round.
func (s *Store) expire(ctx context.Context, l postgres.Lease, now, until time.Time) ([]surge.Order, error) {
	now = now.UTC().Truncate(time.Millisecond)
	var sales []string
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		sales, err = s.db.DueSales(ctx, now)
		return err
	})
	if err != nil {
		return nil, unavailable("expiring holds", err)
	}
	if ctx.Err() == nil {
		s.forgetExpireLimits(sales)
	}
	// The round ends at the first sale that fails, as each failure costs
	// up to a call timeout: trying every failing sale in one round held
	// off the rest of the round for as long. Sales
	// whose batches failed before go after the others, so that a sale that
	// keeps failing never keeps the others' holds from expiring.
	slices.SortStableFunc(sales, func(a, b string) int {
		return cmp.Compare(s.expireLimit(a), s.expireLimit(b)) * -1
	})
	var all []surge.Order
	for _, sale := range sales {
		if ctx.Err() != nil || over(until) {
			break
		}
		got, err := s.expireSale(ctx, l, sale, now, until)
		all = append(all, got...)
		if err != nil {
			return all, unavailable("expiring holds", err)
		}
	}
	return all, nil
}

// expireSale expires the sale's due holds, in batches.
func (s *Store) expireSale(ctx context.Context, l postgres.Lease, sale string, now, until time.Time) ([]surge.Order, error) {
	var all []surge.Order
	for {
		limit := s.expireLimit(sale)
		var batch []surge.Order
		err := s.call(runToEnd(ctx), s.pcb, func(ctx context.Context) (err error) {
			batch, err = s.db.ExpireSale(ctx, now, l, sale, limit)
			return err
		})
		if errors.Is(err, postgres.ErrCommitUnknown) {
			batch, err = s.landed(ctx, batch, surge.OrderExpired, now)
		}
		if err != nil {
			// A batch that did not commit within the call timeout rolled
			// back whole: a PostgreSQL too slow for it would roll the same
			// batch back every round and expire nothing, holding the units
			// off sale for as long as it stays slow. The sale's next try
			// moves half as many orders; each full batch that commits,
			// twice as many.
			s.setExpireLimit(sale, max(limit/2, 1))
			return all, fmt.Errorf("sale %s: %w", sale, err)
		}
		if len(batch) == limit {
			s.setExpireLimit(sale, min(limit*2, expireBatch))
		}
		if len(batch) > 0 {
			// Counted whether or not the release settles: the sweep that
			// gives the units back later counts nothing.
			s.release(ctx, sale, batch)
			s.log.Info("holds expired", "sale", sale, "orders", len(batch))
			s.rel.Heard(sale, len(batch))
		}
		all = append(all, batch...)
		if len(batch) < limit || ctx.Err() != nil || over(until) {
			return all, nil
		}
	}
}

// over tells whether the time until, when set, has passed.
func over(until time.Time) bool { return !until.IsZero() && !time.Now().Before(until) }

// expireLimit is how many of the sale's orders its next expiry batch may
// move.
func (s *Store) expireLimit(sale string) int {
	s.expireMu.Lock()
	defer s.expireMu.Unlock()
	if n, ok := s.expireLimits[sale]; ok {
		return n
	}
	return expireBatch
}

func (s *Store) setExpireLimit(sale string, n int) {
	s.expireMu.Lock()
	defer s.expireMu.Unlock()
	if n >= expireBatch {
		delete(s.expireLimits, sale)
		return
	}
	if s.expireLimits == nil {
		s.expireLimits = make(map[string]int)
	}
	s.expireLimits[sale] = n
}

// forgetExpireLimits drops the batch sizes of sales no longer due (due
// lists every sale with due holds): a sale's next batch starts full.
func (s *Store) forgetExpireLimits(due []string) {
	keep := make(map[string]bool, len(due))
	for _, sale := range due {
		keep[sale] = true
	}
	s.expireMu.Lock()
	defer s.expireMu.Unlock()
	for sale := range s.expireLimits {
		if !keep[sale] {
			delete(s.expireLimits, sale)
		}
	}
}

// landed follows up orders a transaction ended whose COMMIT got no answer
// (postgres.ErrCommitUnknown), moving them to status at now: it returns
// those that did move, so that the node that ended them gives their units
// back and counts them as if the answer had come (no other node can tell
// its lost answers from its failed releases). The lookup waits for the
// transaction to end, for up to the lease's time to live: longer than a
// call (the commit is what stalled), and outside the breaker, as the wait
// is no failure of PostgreSQL's. Beyond that the orders' units come back
// by the sweep, uncounted.
func (s *Store) landed(ctx context.Context, orders []surge.Order, status surge.OrderStatus, now time.Time) ([]surge.Order, error) {
	ctx, cancel := context.WithTimeout(runToEnd(ctx), s.cfg.LeaseTTL)
	defer cancel()
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	got, err := s.db.Landed(ctx, ids, status, now)
	if err != nil {
		s.log.Warn("could not learn whether orders ended; the sweep gives their units back, uncounted",
			"orders", len(orders), "status", status, "err", err)
		return nil, err
	}
	var out []surge.Order
	for _, o := range orders {
		if got[o.ID] {
			out = append(out, o)
		}
	}
	return out, nil
}

// errNotLanded answers an order change whose COMMIT's answer was lost and
// which, followed up, did not land: nothing changed, a retry may.
var errNotLanded = errors.New("the change's commit was lost and did not land")

func (s *Store) acquire(ctx context.Context) (*postgres.Lease, error) {
	l, ok, err := s.takeLease(ctx, leaseName)
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

// runToEnd returns ctx for work whose effect this node must follow up, as
// a PostgreSQL statement that ends an order or takes a lease: it runs to
// its end even when ctx ends (the call timeout still bounds it). A
// statement the node gave up on may still run in PostgreSQL, whose cancel
// is lost when it arrives before the statement does: a renewal of a lease
// would then commit after Close resigned it, leaving the lease to a node
// that is gone for a whole time to live; an order's end would commit with
// its units never given back to Redis.
func runToEnd(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// takeLease takes or renews the lease name for this node; never once the
// store resigned. A try ends before Close resigns (runToEnd, leasing), and
// one the call timeout cut short never commits later
// (postgres.DB.Acquire's transaction).
//
// It goes around the PostgreSQL breaker, bounded by the call timeout all
// the same: purchases timing out on one hot sale's row open that breaker
// while PostgreSQL answers everything else, and a renewal it refused made
// the leader log "lost the lead" and stop its rounds, the expiries and
// rebuilds among them, though nobody else could take its term. Whether
// the term is held is PostgreSQL's to say; a PostgreSQL really down fails
// the try as it fails the purchases.
func (s *Store) takeLease(ctx context.Context, name string) (l postgres.Lease, ok bool, err error) {
	s.leasing.RLock()
	defer s.leasing.RUnlock()
	if s.resigned {
		return postgres.Lease{}, false, nil
	}
	ctx, cancel := context.WithTimeout(runToEnd(ctx), s.cfg.CallTimeout)
	defer cancel()
	return s.db.Acquire(ctx, name, s.holder, s.cfg.LeaseTTL)
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
// another epoch, or holds reservations that never reached PostgreSQL; on
// every node, it first learns the offset to PostgreSQL's clock again
// (syncClock).
func (s *Store) lead(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	// Checked first: a tick may be ready beside ctx.Done, and a try for
	// the lease runs to its end whatever ctx says.
	for ctx.Err() == nil {
		s.syncClock(ctx)
		s.round.Lock()
		if l, _ := s.acquire(ctx); l != nil {
			s.leadRound(ctx, *l)
		}
		s.round.Unlock()
		s.probeHalfOpen(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// probeHalfOpen tries each half-open breaker's dependency through it: a
// success closes the breaker, a failure opens it again. The breakers are
// probed by the calls they guard, and a node that does not lead and gets
// no purchase makes no Redis call: after an outage its Redis breaker
// stayed half-open for good, surge_breaker_state 1 long after Redis was
// back, which SurgeDependencyDown reads as a dependency down.
func (s *Store) probeHalfOpen(ctx context.Context) {
	if s.rcb.State() == gobreaker.StateHalfOpen {
		_ = s.call(ctx, s.rcb, func(ctx context.Context) error { return s.rc.Ping(ctx).Err() })
	}
	if s.pcb.State() == gobreaker.StateHalfOpen {
		_ = s.call(ctx, s.pcb, func(ctx context.Context) error { return s.db.Ping(ctx) })
	}
}

// leadRound runs one round of the leader's jobs under the lease l, which
// it renews meanwhile (keepLease): a round's repair may take longer than
// the lease's time to live (a rebuild alone may take ten call timeouts,
// the survey of a hundred thousand sales about 2 s), and a lease renewed
// only between rounds lapsed mid-round, letting another node lead while
// this one still did. The round stops at its next step once the lease is
// no longer known to be held; what it did not do, the next leader does.
func (s *Store) leadRound(ctx context.Context, l postgres.Lease) {
	ctx, cancel := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		s.keepLease(ctx, l, cancel)
	}()
	// The renewals end before the round does: none may land after Close
	// resigned.
	defer func() {
		cancel()
		<-kept
	}()
	if !s.cfg.NoExpiry {
		// Half the lease's term: the repair, every sale's rebuild among
		// it, gets its turn each round however many holds are due.
		until := time.Now().Add(s.cfg.LeaseTTL / 2)
		// Holds end by PostgreSQL's clock, not the leader's: a leader
		// whose clock ran ahead ended them early, and a buyer paying on
		// another node within the expires_at they were given (that node's
		// clock) was refused not_payable. One clock for every leader keeps
		// each hold for its full term whichever node leads.
		var now time.Time
		err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
			now, err = s.db.Now(ctx)
			return err
		})
		if err == nil {
			_, err = s.expire(ctx, l, now, until)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Error("expire holds", "err", err)
		}
	}
	s.repair(ctx, l)
}

// keepLease renews the lease l every third of its time to live until ctx
// ends, and calls lost once a renewal does not find this term held (it
// lapsed, or PostgreSQL could not say). A renewal waits at most a call
// timeout, so the lease holds while PostgreSQL answers within that.
func (s *Store) keepLease(ctx context.Context, l postgres.Lease, lost context.CancelFunc) {
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return // the round ended: the loop renews from here
		}
		if now, _ := s.acquire(ctx); now == nil || now.Token != l.Token {
			lost()
			return
		}
	}
}

func (s *Store) repair(ctx context.Context, l postgres.Lease) {
	var rows []postgres.SaleRow
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		rows, err = s.db.Sales(ctx)
		return err
	})
	if errors.Is(err, postgres.ErrDamaged) {
		// No outage (the breaker does not count it) to log it: say why
		// nothing is repaired until the row is.
		if n, ok := s.probes.Allow("damaged"); ok {
			s.log.Error("a sale's row is damaged; no sale is repaired until it is restored", "err", err, logrepeat.Suppressed(n))
		}
	}
	if err != nil {
		return
	}
	if s.listed != nil {
		s.listed()
	}
	listed := make(map[string]bool, len(rows))
	for _, row := range rows {
		listed[row.ID] = true
	}
	for id := range s.sweeps {
		if !listed[id] {
			delete(s.sweeps, id) // removed or archived
		}
	}
	for id := range s.sold {
		if !listed[id] {
			delete(s.sold, id)
		}
	}
	for id := range s.short {
		if !listed[id] {
			delete(s.short, id)
		}
	}
	quiet := s.survey(ctx, rows)
	sweep := make([]postgres.SaleRow, 0, len(rows))
	for i, row := range rows {
		s.remember(row.Sale, row.Buckets, row.Ever)
		var why string
		if quiet[i].Quiet && !row.Dirty {
			why = s.releasesLost(row, quiet[i])
		} else {
			var err error
			if why, err = s.diagnose(ctx, row); err != nil {
				delete(s.short, row.ID)
				continue
			}
			if why == "" {
				// Busy (still selling), but sound in every other way:
				// releases may still be lost.
				why = s.releasesLost(row, quiet[i])
			} else {
				delete(s.short, row.ID)
			}
		}
		if why == "" {
			sweep = append(sweep, row)
			continue
		}
		if err := s.Rebuild(ctx, l, row.ID, row.Epoch, why); errors.Is(err, postgres.ErrEpochMoved) {
			// A change (a PATCH) started a newer epoch after the listing:
			// what was diagnosed may be only that change, seen half-way.
			// The next round looks at the new epoch.
			s.log.Info("no rebuild: the sale's epoch moved on since it was diagnosed", "sale", row.ID, "epoch", row.Epoch, "why", why)
		} else if errors.Is(err, postgres.ErrInstalling) {
			// A change, or a rebuild of an earlier term, is installing the
			// epoch Redis is behind: the next round looks at what it
			// installed (or, if its node died, rebuilds: the lock went
			// with the node's session).
			s.log.Info("no rebuild: the sale's new epoch is being installed", "sale", row.ID, "epoch", row.Epoch, "why", why)
		} else if err != nil {
			s.log.Error("rebuild live state", "sale", row.ID, "why", why, "err", err)
		} else {
			delete(s.short, row.ID)
		}
	}
	s.sweep(ctx, sweep)
	s.dropStages(ctx, listed)
	s.removeLeft(ctx)
	s.removeArchivedFound(ctx, listed)
}

// releasesLost says why the live state of a sale otherwise sound needs a
// rebuild, or "": Redis holds fewer units remaining than PostgreSQL's
// stock minus units sold, less the units Redis holds for reservations
// PostgreSQL may not have yet, for the second round in a row (a busy sale
// is not checked while a transfer between buckets is recorded). Redis came
// back older than releases PostgreSQL recorded (a cancel's, an expired
// hold's): the units stay off sale, their buyers at their limit, and the
// count checks, which look for Redis behind in units taken, never see it;
// the sweep gives them back only once it reaches those orders, which for a
// large sale takes many minutes, whether it sold out long ago or is still
// selling (its reservations of the last ConfirmAfter waiting to be
// confirmed: the check of idle sales alone left those units off sale while
// it sold). row was read before Redis was, so every unit Redis holds is of
// an order live in row (Sold), reserved since (Taken beyond row's Ever),
// or ended with its release lost or still on its way. One round alone may
// catch a release between its commit in PostgreSQL and its script in
// Redis.
func (s *Store) releasesLost(row postgres.SaleRow, sv redis.Survey) string {
	if !sv.Read || sv.Epoch != row.Epoch || !sv.Quiet && sv.Transfers {
		// A transfer's record kept: its units may be on their way between
		// buckets, uncounted by a donor of the previous version.
		delete(s.short, row.ID)
		return ""
	}
	want := row.Stock - row.Sold
	if !sv.Quiet {
		want -= max(sv.Taken-row.Ever, 0)
	}
	if sv.Remaining >= want {
		delete(s.short, row.ID)
		return ""
	}
	if !s.short[row.ID] {
		s.short[row.ID] = true
		return ""
	}
	return fmt.Sprintf("Redis holds %d units remaining, PostgreSQL %d, two rounds in a row (Redis rolled back past releases: a snapshot, an AOF or a replica behind)", sv.Remaining, want)
}

// surveyChunk is about how many buckets one call of the survey reads.
const surveyChunk = 1000

// survey reports, for each sale of rows, whether its live state is idle,
// and its units remaining (redis.Stock.Quiet). Most sales are idle (past sales of a shop, above
// all): the survey finds them in a pipelined round trip per thousand
// buckets, so the round, and with it the next expiry of holds, costs
// about the same whatever their number, instead of several calls per
// sale. Each thousand buckets is a call of its own: one call for them all,
// bounded by one call timeout, timed out every round past some tens of
// thousands of sales. A sale whose part failed is diagnosed.
func (s *Store) survey(ctx context.Context, rows []postgres.SaleRow) []redis.Survey {
	quiet := make([]redis.Survey, len(rows))
	want := make([]redis.Expect, 0, min(len(rows), surveyChunk))
	from, buckets := 0, 0
	for i, row := range rows {
		want = append(want, redis.Expect{Layout: redis.Layout{Sale: row.ID, Buckets: row.Buckets}, Epoch: row.Epoch, Ever: row.Ever})
		buckets += max(row.Buckets, 1)
		if buckets < surveyChunk && i < len(rows)-1 {
			continue
		}
		var got []redis.Survey
		if err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
			got, err = s.live.Quiet(ctx, want)
			return err
		}); err == nil {
			copy(quiet[from:], got)
		}
		from, buckets, want = i+1, 0, want[:0]
	}
	return quiet
}

// stageScan is about how many keys of each Redis server a round reads
// looking for staging keys (dropStages).
const stageScan = 1000

// dropStages reads the next part of Redis's keys for the staging keys an
// install that crashed before its swap left and no install will drop:
// versions before the record of installs (redis.StagePass) left them for
// good. Once per process, over as many rounds as the keys take (about a
// thousand keys of each server a round, one SCAN); those of installs that
// may still be under way stay. listed is the sales this round listed,
// none archived; the others are asked of PostgreSQL.
func (s *Store) dropStages(ctx context.Context, listed map[string]bool) {
	if s.stagesDone {
		return
	}
	var found []redis.Stage
	var done bool
	if err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		found, done, err = s.live.ScanStages(ctx, &s.stagePass, stageScan)
		return err
	}); err != nil {
		// A server read before the one that failed would skip its keys.
		s.stagePass = redis.StagePass{}
		return
	}
	archived := make(map[string]bool)
	for _, st := range found {
		if _, asked := archived[st.Sale]; asked || listed[st.Sale] {
			continue
		}
		// Unknown to PostgreSQL, or not archived yet: false, and the key
		// stays unless the bucket's state has moved past it.
		var a bool
		if err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
			a, err = s.db.Archived(ctx, st.Sale)
			return err
		}); err != nil {
			s.stagePass = redis.StagePass{} // the keys found are read again, from the start
			return
		}
		archived[st.Sale] = a
	}
	var n int
	if err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		n, err = s.live.DropStages(ctx, found, func(sale string) bool { return archived[sale] })
		return err
	}); err != nil {
		s.stagePass = redis.StagePass{}
		return
	}
	s.stagesDropped += n
	if done {
		s.stagesDone = true
		s.log.Info("looked through Redis for staging keys that installs of an older version left",
			"dropped", s.stagesDropped)
	}
}

// removeArchivedFound reads the next part of Redis's keys for the live
// state and waiting rooms of archived sales, and removes them: a Redis that
// came back older than an archive (a snapshot or AOF reloaded, a replica
// promoted) holds them again, with every buyer, key and held order of the
// sale, and nothing else reads or removes an archived sale's keys. About a
// thousand keys of each server a round (one SCAN), over and over: a pass
// takes as many rounds as Redis holds thousands of keys. listed is the
// sales this round listed, none archived; the others found are asked of
// PostgreSQL, all in one statement.
func (s *Store) removeArchivedFound(ctx context.Context, listed map[string]bool) {
	var found []string
	var done bool
	if err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		found, done, err = s.live.ScanSales(ctx, &s.salePass, stageScan)
		return err
	}); err != nil || done {
		s.salePass = redis.SalePass{} // the next pass, from the start
	}
	var ask []string
	for _, sale := range found {
		if !listed[sale] {
			ask = append(ask, sale)
		}
	}
	if len(ask) == 0 {
		return
	}
	var archived map[string]int
	if err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		archived, err = s.db.ArchivedAmong(ctx, ask)
		return err
	}); err != nil {
		return // found again next pass
	}
	for sale, buckets := range archived {
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("removing the live state of an archived sale found in Redis again (Redis reloaded an older snapshot or AOF, or a replica behind was promoted)", "sale", sale)
		s.removeLive(ctx, sale, buckets)
	}
}

// sweepCount is about how many held orders a sweep looks at each round in
// the sales selling (one PostgreSQL lookup by primary key each);
// sweepSales bounds the other sales it reads, in turn, each round, and
// the sales read every round as selling; sweepAfterHold is how long after
// its last sale, beyond its hold time, a sale counts as selling.
const (
	sweepCount     = 1000
	sweepSales     = 256
	sweepAfterHold = 5 * time.Minute
)

// soldSeen is a sale's count of units ever sold when the leader last saw
// it change, and when the holds of the orders sold then end (with the
// sale's hold time then: a PATCH shortening it leaves those orders' ends
// where they were).
type soldSeen struct {
	ever  int64
	until time.Time
}

// selling reports whether the hold of an order row sold ended less than
// sweepAfterHold ago, or not yet: only then may it have orders reserved,
// whose end a node may have failed to give back to Redis (a cancel or an
// expiry ends a reserved order, and each was reserved when the count
// grew). A sale seen for the first time (a new leader, a new sale) is
// taken to have sold its latest order (seeSold); until that is known,
// once it sells.
func (s *Store) selling(row postgres.SaleRow, now time.Time) bool {
	seen, ok := s.sold[row.ID]
	if !ok {
		return false
	}
	if seen.ever != row.Ever {
		// The later end: orders sold before a PATCH shortened the hold
		// time keep their longer holds.
		until := now.Add(row.Hold())
		if seen.until.After(until) {
			until = seen.until
		}
		s.sold[row.ID] = soldSeen{ever: row.Ever, until: until}
		return true
	}
	return now.Before(seen.until.Add(sweepAfterHold))
}

// seeSold records, for the sales of rows the leader has not seen yet, when
// the hold of their latest order, or of a later-ending one still reserved,
// ends. Without it a new leader took a sale
// that sold just before the old one died for a past one until it sold
// again, and a sold-out sale whose units the dead node left off sale
// sells nothing until the sweep gives them back: it came back once every
// few rounds. One lookup per sale, once per leader's term; should it fail,
// the next round asks again.
func (s *Store) seeSold(ctx context.Context, rows []postgres.SaleRow) {
	var unseen []string
	for _, row := range rows {
		if _, ok := s.sold[row.ID]; !ok {
			unseen = append(unseen, row.ID)
		}
	}
	if len(unseen) == 0 {
		return
	}
	var last map[string]time.Time
	if err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		// Holds that ended sweepAfterHold ago or more would not count.
		last, err = s.db.LastHoldEnds(ctx, unseen, s.now().Add(-sweepAfterHold))
		return err
	}); err != nil {
		return
	}
	for _, row := range rows {
		if _, ok := s.sold[row.ID]; !ok {
			s.sold[row.ID] = soldSeen{ever: row.Ever, until: last[row.ID]} // zero if it never sold
		}
	}
}

// sweep gives back the units Redis still holds for orders PostgreSQL has
// ended: a node that dies between ending an order and releasing it, or
// whose call timed out after PostgreSQL committed, leaves them taken, and
// no one else would give them back. Each round looks at the next part of
// the held orders of every sale selling (up to sweepSales of them, the
// latest to sell first), where such units are off sale while buyers want
// them, and of the next sweepSales other sales in turn, all in one Redis
// round trip and one PostgreSQL lookup: every sale is read through over
// rounds while a round's cost does not grow with the past sales (a sale's
// paid orders stay held in Redis for good, so every past sale has some).
// Releasing is idempotent per order, so racing the node that ended an
// order, or a rebuild, gives back nothing twice.
func (s *Store) sweep(ctx context.Context, rows []postgres.SaleRow) {
	if len(rows) == 0 {
		return
	}
	s.seeSold(ctx, rows)
	now := s.now() // holds end on PostgreSQL's clock
	var selling, rest []postgres.SaleRow
	for _, row := range rows {
		if s.selling(row, now) {
			selling = append(selling, row)
		} else {
			rest = append(rest, row)
		}
	}
	if len(selling) > sweepSales {
		slices.SortStableFunc(selling, func(a, b postgres.SaleRow) int { return s.sold[b.ID].until.Compare(s.sold[a.ID].until) })
		rest = append(rest, selling[sweepSales:]...)
		selling = selling[:sweepSales]
	}
	var scans []redis.Scan
	var cursors [][]uint64
	add := func(rows []postgres.SaleRow, count int64) {
		for _, row := range rows {
			c := s.sweeps[row.ID]
			if len(c) != max(row.Buckets, 1) {
				c = make([]uint64, max(row.Buckets, 1))
				s.sweeps[row.ID] = c
			}
			for b := range c {
				scans = append(scans, redis.Scan{Layout: redis.Layout{Sale: row.ID, Buckets: row.Buckets}, Bucket: b, Cursor: c[b], Count: count})
				cursors = append(cursors, c)
			}
		}
	}
	buckets := 0
	for _, row := range selling {
		buckets += max(row.Buckets, 1)
	}
	add(selling, int64(max(sweepCount/max(buckets, 1), 64)))
	if len(rest) > 0 {
		start := s.sweepNext % len(rest)
		n := min(sweepSales, len(rest))
		s.sweepNext = start + n
		turn := make([]postgres.SaleRow, n)
		for i := range n {
			turn[i] = rest[(start+i)%len(rest)]
		}
		add(turn, 64)
	}
	var got [][]string
	var next []uint64
	if err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		got, next, err = s.live.HeldMany(ctx, scans)
		return err
	}); err != nil {
		return
	}
	var ids []string
	for i, sc := range scans {
		cursors[i][sc.Bucket] = next[i]
		ids = append(ids, got[i]...)
	}
	_ = s.ended(ctx, ids, func(ended []surge.Order) {
		bySale := make(map[string][]surge.Order)
		for _, o := range ended {
			bySale[o.SaleID] = append(bySale[o.SaleID], o)
		}
		for sale, orders := range bySale {
			s.log.Warn("gave back units Redis still held for orders PostgreSQL had ended (a node died or lost the answer between the two)",
				"sale", sale, "orders", len(orders))
			if s.swept != nil {
				s.swept.Add(float64(len(orders)))
			}
			// Not counted here: the node that ended them counted them when
			// PostgreSQL answered, or when it learned that its lost COMMIT
			// landed (landed). Only that node can tell the two cases apart
			// from a release that failed after its count, and a count here
			// added a second one whenever it could not (another node's
			// cancel; an expiry of a leader before this one).
			s.release(ctx, sale, orders)
		}
	})
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
	// Above it, the difference is reservations still waiting to be
	// confirmed against PostgreSQL (only this leader confirms, below). With
	// none waiting, Redis holds units of orders PostgreSQL does not have:
	// PostgreSQL was restored from an older backup. Left alone, those
	// units would stay off sale and their keys answer 503 for good.
	if taken > row.Ever {
		var pending [][]string
		err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
			pending, err = s.live.Unconfirmed(ctx, layout, redis.AnyAge, 1)
			return err
		})
		if err != nil {
			return "", err
		}
		if len(pending) == 0 {
			return fmt.Sprintf("Redis reserved %d units, PostgreSQL holds %d and none is waiting to be confirmed (PostgreSQL restored from an older backup?)", taken, row.Ever), nil
		}
	}
	// Units a bucket took that no bucket gave: a failover lost a
	// transfer's first half and kept its second.
	var excess int64
	err = s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		excess, err = s.live.Unbalanced(ctx, layout)
		return err
	})
	if err != nil {
		return "", err
	}
	if excess > 0 {
		return fmt.Sprintf("the buckets took %d units more than they gave (a master failed over and lost the first half of a transfer between buckets?)", excess), nil
	}
	// Transfers between buckets whose second half never ran (a node died
	// between the two scripts) are completed.
	err = s.call(ctx, s.rcb, func(ctx context.Context) error {
		n, err := s.live.RepairTransfers(ctx, layout, s.cfg.Now().Add(-s.cfg.ConfirmAfter))
		if n > 0 {
			s.log.Warn("completed interrupted stock transfers between buckets", "sale", row.ID, "transfers", n)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	var batches [][]string
	err = s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		batches, err = s.live.Unconfirmed(ctx, layout, s.cfg.ConfirmAfter, 250)
		return err
	})
	if err != nil || len(batches) == 0 {
		return "", err
	}
	var ids []string
	for _, b := range batches {
		ids = append(ids, b...)
	}
	var have map[string]bool
	err = s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		have, err = s.db.Existing(ctx, ids)
		return err
	})
	if err != nil {
		return "", err
	}
	var ok [][]string
	n := 0
	for _, b := range batches {
		all := true
		for _, id := range b {
			if !have[id] {
				all = false
				n++
			}
		}
		if all {
			ok = append(ok, b)
		}
	}
	if err := s.call(ctx, s.rcb, func(ctx context.Context) error { return s.live.Confirm(ctx, layout, ok) }); err != nil {
		return "", err
	}
	if n > 0 {
		return fmt.Sprintf("%d reservations never reached PostgreSQL", n), nil
	}
	return "", nil
}

// Rebuild replaces a sale's live state in Redis with one built from
// PostgreSQL under a new epoch, if the sale is still at epoch, the one it
// was diagnosed at (else postgres.ErrEpochMoved). It needs the lease l.
func (s *Store) Rebuild(ctx context.Context, l postgres.Lease, saleID string, epoch int64, why string) error {
	start := time.Now()
	// The new epoch, bounded: a PostgreSQL that stalls would otherwise
	// hold the leader's round, and with it every expiry of holds, every
	// other rebuild and the lease's renewal, for as long as it stalls. Not
	// the call timeout: the epoch's bump waits for the sale's inserts in
	// flight and counts its live orders. Cut short, it rolls back.
	rctx, cancel := context.WithTimeout(ctx, rebuildCalls*s.cfg.CallTimeout)
	defer cancel()
	// The install lock, as a change holds it (UpdateSale), until the new
	// epoch is in Redis: a rebuild that outlives the lease's term would
	// otherwise have the next leader, finding Redis behind, start it over
	// under yet another epoch, and so on for as long as rebuilds last
	// longer than a term.
	lock, err := s.db.TryLockInstall(rctx, saleID)
	if err != nil {
		return err
	}
	release := sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CallTimeout)
		defer cancel()
		if err := lock.Release(ctx); err != nil {
			s.log.Warn("a rebuild lost its install lock before its end; another install may have run over it", "sale", saleID, "err", err)
		}
	})
	defer release()
	row, err := s.db.Rebuild(rctx, saleID, epoch, l)
	if err != nil {
		return err
	}
	if fn := s.installing.Load(); fn != nil {
		(*fn)()
	}
	// Its state: every live order read from PostgreSQL and written to
	// Redis, which takes as long as the sale is large. Bounded by its
	// progress, not in all: a total bound cut a large sale's rebuild short
	// in every round, each starting over under a new epoch, and the sale
	// never came back. A stall still ends it within a call timeout; the
	// next round rebuilds again.
	wctx, progress, stop := stallBound(ctx, s.cfg.CallTimeout)
	defer stop()
	snap, err := s.db.Snapshot(wctx, row, progress)
	if err != nil {
		return err
	}
	ok, err := s.install(wctx, snap, progress)
	release()
	if err != nil {
		return err
	}
	s.log.Warn("rebuilt live state from PostgreSQL", "sale", saleID, "why", why, "epoch", snap.Epoch,
		"installed", ok, "live_orders", len(snap.Live), "took", time.Since(start))
	if s.rebuilds != nil {
		s.rebuilds.Inc()
	}
	s.announce(ctx, saleID)
	return nil
}

// rebuildCalls is how many call timeouts a rebuild's new epoch may take.
const rebuildCalls = 10

// stallBound returns ctx ended once d passes without a call of progress:
// the bound of a job that takes as long as its data is large, done a step
// at a time, each step reporting progress.
func stallBound(ctx context.Context, d time.Duration) (_ context.Context, progress func(), stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(d, func() { cancel(fmt.Errorf("no progress for %v", d)) })
	return ctx, func() { t.Reset(d) }, func() { t.Stop(); cancel(nil) }
}

// install writes a new epoch's live state of a sale to Redis, then makes
// sure the sale was not archived meanwhile: an archive between the epoch's
// commit and this install has already removed the state, which the
// install would put back for good (nothing reads or removes an archived
// sale's state). An archive commits in PostgreSQL before it removes the
// state, so either its removal comes after this install or the check
// below sees it archived. Should the check fail, the state is removed
// as if the sale were archived: it is a cache, and a live sale's costs a
// rebuild (the leader's next round finds it missing), while an archived
// sale's stayed in Redis for good (the archive had recorded its own
// removal done).
// progress, if set, is called after each step (see stallBound).
func (s *Store) install(ctx context.Context, snap surge.LiveState, progress func()) (bool, error) {
	if progress == nil {
		progress = func() {}
	}
	ok, err := s.live.Install(ctx, snap, false, progress)
	if err != nil {
		return ok, err
	}
	var archived bool
	checkErr := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		archived, err = s.db.Archived(ctx, snap.Sale.ID)
		return err
	})
	if checkErr == nil {
		progress()
		if !archived {
			if ok {
				s.releaseEndedSince(ctx, snap, progress)
			}
			return ok, nil
		}
	}
	if err := s.call(ctx, s.rcb, func(ctx context.Context) error {
		return s.live.Remove(ctx, redis.Layout{Sale: snap.Sale.ID, Buckets: max(snap.Buckets, 1)})
	}); err != nil {
		// The archive recorded its own removal done: without this mark
		// nothing would ever remove the state written back.
		s.log.Warn("remove the live state of a sale archived (or not known not to be) while it was installed; the leader removes it if archived",
			"sale", snap.Sale.ID, "err", err, "check_err", checkErr)
		if err := s.call(ctx, s.pcb, func(ctx context.Context) error { return s.db.LiveLeftAgain(ctx, snap.Sale.ID) }); err != nil {
			s.log.Error("record the live state of an archived sale left; it stays in Redis", "sale", snap.Sale.ID, "err", err)
		}
	}
	if checkErr != nil {
		s.wake()
		return false, fmt.Errorf("check that the sale is not archived, after installing its live state (removed; the leader rebuilds it): %w", checkErr)
	}
	return false, nil
}

// releaseEndedSince gives back the units of the orders snap read reserved
// that a cancel or an expiry has ended since: one that committed after the
// snapshot (it waited for the sale row the epoch's bump held) may have
// released its units in the state this install then replaced, and the
// new state holds them again. The install is in place, so a release
// coming after this check lands in it; one before it is found here.
// Releasing is idempotent per order. Should PostgreSQL fail, the sweep
// still finds them, later.
func (s *Store) releaseEndedSince(ctx context.Context, snap surge.LiveState, progress func()) {
	var ids []string
	for _, o := range snap.Live {
		if o.Status == surge.OrderReserved {
			ids = append(ids, o.ID)
		}
	}
	err := s.ended(ctx, ids, func(ended []surge.Order) {
		if len(ended) > 0 {
			s.release(ctx, snap.Sale.ID, ended)
		}
		progress()
	})
	if err != nil {
		s.log.Warn("look up orders ended while a sale's state was installed; the sweep gives their units back", "sale", snap.Sale.ID, "err", err)
	}
}

// endedChunk bounds the ids one lookup of ended sends.
const endedChunk = 10000

// ended looks up which of ids PostgreSQL has ended (cancelled or
// expired), endedChunk at a time, and hands each part's to fn; it stops
// at the first lookup that fails.
func (s *Store) ended(ctx context.Context, ids []string, fn func([]surge.Order)) error {
	for len(ids) > 0 {
		part := ids[:min(len(ids), endedChunk)]
		ids = ids[len(part):]
		var ended []surge.Order
		if err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
			ended, err = s.db.Ended(ctx, part)
			return err
		}); err != nil {
			return err
		}
		fn(ended)
	}
	return nil
}

// Leader reports whether this node holds the jobs lease.
func (s *Store) Leader() bool { return s.lease.Load() != nil }
