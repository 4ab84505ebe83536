package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// commit is one caller's share of a group commit.
type commit struct {
	sale    *surge.Sale
	inserts []surge.Order
	updates []update
	// payments are recorded events (payments.go); refunded, the ids of
	// refund_due payments a refund in payments settled.
	payments []surge.Payment
	refunded []string
	// settled: refund_unexpected refunds (key) that a refund_due payment
	// in payments, delivered after them, turned out to be for (value).
	settled map[string]string
	// ahead: refunds naming only a payment not recorded yet, kept aside
	// (payments empty), or that payment's in payments, now recorded as
	// refunds of its order (writePayments).
	ahead []surge.Payment
	// events are outbox rows beside those of inserts (reserved) and
	// updates (their new status): refund_due.
	events []event
	// published, when above zero, removes the outbox's rows up to it
	// (the relay published them).
	published int64
	// probe rewrites the database header as it is: a write that changes
	// nothing, to learn whether the disk takes commits again (Ready).
	probe bool
	err   chan error
	// state is queued until the writer takes the commit (taken), or
	// withdrawn by a caller that gave up first (submitCtx).
	state atomic.Int32
}

const (
	queued int32 = iota
	taken
	withdrawn
)

// take claims c for a group; false if its caller withdrew it.
func (c *commit) take() bool { return c.state.CompareAndSwap(queued, taken) }

type update struct {
	id     string
	sale   string
	status surge.OrderStatus
	at     time.Time
}

func (c *commit) rows() int {
	return len(c.inserts) + len(c.updates) + len(c.payments) + len(c.refunded) + len(c.settled) + len(c.ahead) + len(c.events) + 1
}

// submit hands c to the writer and waits until it is durable. The wait
// ignores the caller's context on purpose: once submitted, the caller must
// learn whether it committed to keep memory and disk in step.
func (s *Store) submit(c *commit) error {
	c.err = make(chan error, 1)
	if err := s.send(context.Background(), c); err != nil {
		return err
	}
	return <-c.err
}

// submitCtx is submit for a caller that may give up: once ctx ends, a
// commit the writer has not taken yet is withdrawn, written never, and
// ctx's error returned; one it has taken is waited for, as submit does.
func (s *Store) submitCtx(ctx context.Context, c *commit) error {
	c.err = make(chan error, 1)
	if err := s.send(ctx, c); err != nil {
		return err
	}
	select {
	case err := <-c.err:
		return err
	case <-ctx.Done():
		if c.state.CompareAndSwap(queued, withdrawn) {
			return fmt.Errorf("sqlite: gave up waiting for the writer, nothing written: %w", ctx.Err())
		}
		return <-c.err
	}
}

// send queues c for the writer unless the store is closed or ctx ends
// while the queue is full (a stalled disk, more sales committing than it
// holds): nothing is written then. Close closes the queue under closeMu,
// so no send can meet a closed channel, even one that waits for room:
// most callers also hold a sale's lock, which Close takes first, but
// payments that move no unit and the relay's removal of published events
// do not.
func (s *Store) send(ctx context.Context, c *commit) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return surge.ErrUnavailable
	}
	select {
	case s.commits <- c:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sqlite: gave up waiting for room in the writer's queue, nothing written: %w", ctx.Err())
	}
}

// writer is the single goroutine that writes to SQLite. It takes whatever
// has queued up while the previous transaction was committing and commits
// it all at once: one fsync for the group, however many callers. An idle
// writer commits a lone change immediately; no timer delays it.
func (s *Store) writer() {
	defer close(s.done)
	var group []*commit
	for c := range s.commits {
		if !c.take() {
			continue // withdrawn: its caller has its answer
		}
		group = append(group[:0], c)
		rows := c.rows()
	drain:
		for rows < s.opts.MaxCommitRows {
			select {
			case c, ok := <-s.commits:
				if !ok {
					break drain
				}
				if !c.take() {
					continue
				}
				group = append(group, c)
				rows += c.rows()
			default:
				break drain
			}
		}
		s.busy()
		err := s.wrote(s.write(group))
		s.idle()
		if err != nil && len(group) > 1 {
			// Isolate the failure: one caller's bad row must not fail
			// the others.
			for _, c := range group {
				s.busy()
				err := s.wrote(s.write([]*commit{c}))
				s.idle()
				c.err <- err
			}
			continue
		}
		for _, c := range group {
			c.err <- err
		}
		// After the answers: this group's buyers do not wait for it.
		s.finishCheckpoint()
	}
}

// commitStall is how long a write of the writer may be under way before
// Ready reports the store not ready: a healthy group commit takes a few
// milliseconds, a large one on a slow disk a few hundred; one past this
// has met a disk that neither completes nor fails it, and the purchases
// queued behind it would wait out their timeout (10 s by default), so a
// load balancer should send buyers elsewhere meanwhile.
const commitStall = 5 * time.Second

// busy records that the writer begins a write (a group commit, or a
// checkpoint's fsync on its connection), for Ready; idle, that it ended.
func (s *Store) busy() { s.writingSince.Store(max(int64(time.Since(s.opened)), 1)) }
func (s *Store) idle() { s.writingSince.Store(0) }

// wrote records the outcome of a commit for Ready and the seal (the
// writer's, and a PATCH's or an archive's on its connection) and returns
// err. A domain answer (a sale id taken) is the caller's, not the writer's.
func (s *Store) wrote(err error) error {
	switch {
	case err == nil:
		if s.failed.Load() != nil {
			s.failed.Store(nil)
		}
	case surge.ErrorCode(err) == "":
		s.failed.Store(&err)
		s.sawFailure.Store(true)
		s.meter.Failed()
	}
	return err
}

// inPlace refuses a commit once surge.db or surge.db-wal no longer names
// the file the store has open (removed, or another file renamed over it):
// SQLite would go on writing into a file no name reaches, and a crash, or
// the next start, would lose what it confirmed there.
func (s *Store) inPlace() error {
	for _, f := range []struct {
		path   string
		opened os.FileInfo
	}{{s.path, s.file}, {s.path + "-wal", s.wal}} {
		fi, err := os.Stat(f.path)
		if err != nil || !os.SameFile(fi, f.opened) {
			return fmt.Errorf("sqlite: %s is no longer the file the store opened (removed or replaced while serving): "+
				"nothing more is committed; stop the server, which writes what it committed into %s, and start it again", f.path, s.path)
		}
	}
	return nil
}

// write commits a group in one transaction.
func (s *Store) write(group []*commit) (err error) {
	ctx := context.Background()
	if err := s.inPlace(); err != nil {
		return err
	}
	// All new orders of the group go in full-sized multi-row INSERTs.
	orders := s.orders[:0]
	for _, c := range group {
		orders = append(orders, c.inserts...)
	}
	defer func() { clear(orders); s.orders = orders[:0] }()
	// Prepare the INSERTs before the transaction: the pool has one
	// connection, which the transaction holds, so preparing on the pool
	// inside it would wait for that connection forever.
	for n := len(orders); n > 0; n -= min(n, insertChunk) {
		if _, err := s.insertStmt(ctx, min(n, insertChunk)); err != nil {
			return err
		}
	}
	nEvents := 0
	for _, c := range group {
		nEvents += len(c.updates) + len(c.events)
	}
	if s.opts.NoEvents {
		nEvents = 0
	}
	for n := nEvents; n > 0; n -= min(n, eventChunk) {
		if _, err := s.eventStmt(ctx, min(n, eventChunk)); err != nil {
			return err
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows := 0
	events := s.events[:0]
	defer func() { clear(events); s.events = events[:0] }()
	for _, c := range group {
		if c.published > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq <= ?`, c.published); err != nil {
				return fmt.Errorf("sqlite: remove published events: %w", err)
			}
		}
		if c.sale != nil {
			if err := insertSale(ctx, tx, c.sale); err != nil {
				return err
			}
		}
		if c.probe {
			// Rewriting user_version, unchanged, dirties the first page:
			// the commit writes and syncs one WAL frame, as any commit.
			var v int64
			if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
				return fmt.Errorf("sqlite: probe: %w", err)
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v)); err != nil {
				return fmt.Errorf("sqlite: probe: %w", err)
			}
		}
		for _, u := range c.updates {
			s.settles++
			res, err := tx.StmtContext(ctx, s.update).ExecContext(ctx, string(u.status), formatTime(u.at), s.settles, u.id)
			if err != nil {
				return fmt.Errorf("sqlite: update order %s: %w", u.id, err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("sqlite: order %s was not reserved on disk", u.id)
			}
			events = append(events, event{sale: u.sale, order: u.id, kind: surge.OrderEventKind(u.status), at: u.at})
		}
		if err := writePayments(ctx, tx, c); err != nil {
			return err
		}
		events = append(events, c.events...)
		rows += c.rows() - 1
	}
	if err := s.insertOrders(ctx, tx, orders); err != nil {
		return err
	}
	if !s.opts.NoEvents {
		if err := s.insertEvents(ctx, tx, events); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	s.committed(group) // durable now: the high-water mark may count it
	s.meter.Observe(rows)
	return nil
}

func insertSale(ctx context.Context, tx *sql.Tx, sl *surge.Sale) error {
	var ends any
	if !sl.EndsAt.IsZero() {
		ends = formatTime(sl.EndsAt)
	}
	var room any
	if sl.WaitingRoom != nil {
		b, err := json.Marshal(sl.WaitingRoom)
		if err != nil {
			return fmt.Errorf("sqlite: encode waiting room: %w", err)
		}
		room = string(b)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency,
		starts_at, ends_at, hold_seconds, created_at, waiting_room) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		sl.ID, sl.Name, sl.Stock, sl.PerUserLimit, sl.PriceCents, sl.Currency,
		formatTime(sl.StartsAt), ends, sl.HoldSeconds, formatTime(sl.CreatedAt), room)
	if err != nil {
		if isDuplicate(err) {
			return surge.ErrSaleExists
		}
		return fmt.Errorf("sqlite: insert sale: %w", err)
	}
	return nil
}

// isDuplicate reports whether err is the driver's refusal of a taken key
// (the sales primary key, or a unique index).
func isDuplicate(err error) bool {
	var se *driver.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// insertChunk rows go in one multi-row INSERT: far fewer driver round
// trips than one statement per row (8 columns x 128 rows stays well under
// SQLite's bound-parameter limit).
const insertChunk = 128

// insertStmt returns the prepared INSERT for n rows, preparing it once.
// Only the writer goroutine calls it.
func (s *Store) insertStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	if st := s.inserts[n]; st != nil {
		return st, nil
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO orders (id, sale_id, user_id, quantity, status, idempotency_key, created_at, expires_at) VALUES `)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?,?,?,?)")
	}
	st, err := s.w.PrepareContext(ctx, sb.String())
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare insert: %w", err)
	}
	s.inserts[n] = st
	return st, nil
}

func (s *Store) insertOrders(ctx context.Context, tx *sql.Tx, orders []surge.Order) error {
	if len(orders) == 0 {
		return nil
	}
	args := s.args[:0]
	first := int64(0) // seq of the first order inserted
	for len(orders) > 0 {
		n := min(len(orders), insertChunk)
		args = args[:0]
		for _, o := range orders[:n] {
			var key any
			if o.IdempotencyKey != "" {
				key = o.IdempotencyKey
			}
			args = append(args, o.ID, o.SaleID, o.UserID, o.Quantity, string(o.Status), key,
				formatTime(o.CreatedAt), formatTime(o.ExpiresAt))
		}
		st, err := s.insertStmt(ctx, n)
		if err != nil {
			return err
		}
		res, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("sqlite: insert %d orders: %w", n, err)
		}
		if first == 0 {
			last, err := res.LastInsertId()
			if err != nil {
				return fmt.Errorf("sqlite: insert %d orders: %w", n, err)
			}
			first = last - int64(n) + 1
		}
		orders = orders[n:]
	}
	clear(args)
	s.args = args
	if s.opts.NoEvents {
		return nil
	}
	// Their reserved events, copied from the rows just written: the single
	// writer gives them the seqs from first on, and one statement without
	// a bound string costs far less than binding each order's fields again.
	if _, err := tx.StmtContext(ctx, s.reservedEvents).ExecContext(ctx, first); err != nil {
		return fmt.Errorf("sqlite: outbox reserved events: %w", err)
	}
	return nil
}
