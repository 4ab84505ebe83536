// Package surge holds the domain of a flash sale: sales, orders, the outcomes
// of a purchase, and the store seam (Store and its roles) that every
// backend (embedded SQLite, cluster Redis+PostgreSQL) implements. It has no dependencies beyond the
// standard library; mechanisms live in sub-packages.
package surge

import (
	"context"
	"sync"
	"time"
)

// Sale is an operator's offer: a stock sold within a time window. Its id,
// price, currency, start, creation and waiting room are fixed once
// created; an operator may steer the rest while it runs (SalePatch,
// Steerer). A Sale value itself is never changed in place: a change makes
// a new one, so a *Sale a reader holds stays consistent.
type Sale struct {
	ID           string
	Name         string
	Stock        int64
	PerUserLimit int64
	PriceCents   int64
	Currency     string
	StartsAt     time.Time
	EndsAt       time.Time // zero: no end
	HoldSeconds  int64
	CreatedAt    time.Time
	// WaitingRoom, when set, makes buyers queue and be admitted before
	// they may buy; nil: anyone may buy while the sale is live.
	WaitingRoom *WaitingRoom
	// Paused, set by an operator, refuses every purchase (CodePaused)
	// until it is cleared.
	Paused bool
	// PausedAt is when the pause in force began (zero when not paused),
	// and PausedFor how long the pauses that ended stopped the sale's
	// clock (see Stopped). Both are whole milliseconds, kept with the
	// sale, so that every node stops the same clock.
	PausedAt  time.Time
	PausedFor time.Duration
}

// Policies of a waiting room: the order its queue admits buyers in.
const (
	QueueFIFO    = "fifo"    // first come, first admitted
	QueueLottery = "lottery" // everyone who joined before the start is shuffled
)

// WaitingRoom is a sale's queue: buyers join, then are admitted at a fixed
// rate in the order of Policy, and once admitted may buy for
// TicketSeconds. The JSON tags are the stored form (a JSON column; "order"
// is the API's name of Policy, kept).
type WaitingRoom struct {
	AdmitPerSecond int64  `json:"admit_per_second"`
	Policy         string `json:"order"` // QueueFIFO or QueueLottery
	TicketSeconds  int64  `json:"ticket_seconds"`
}

// Hold is how long a reservation waits for payment before it expires.
func (s *Sale) Hold() time.Duration { return time.Duration(s.HoldSeconds) * time.Second }

// Window reports whether purchases are accepted at now: CodeNotStarted,
// CodeEnded, or "" when the sale is open.
func (s *Sale) Window(now time.Time) Code {
	if now.Before(s.StartsAt) {
		return CodeNotStarted
	}
	if !s.EndsAt.IsZero() && !now.Before(s.EndsAt) {
		return CodeEnded
	}
	return ""
}

// Archivable reports whether the sale's window lets it be archived at now:
// it has ended, or it has yet to start. The second is how an operator
// calls off a sale set to start later (a typo'd year): its start is fixed
// and no end may come before it, so it could otherwise neither end nor
// leave service until it started. Reserved orders still forbid an archive.
func (s *Sale) Archivable(now time.Time) bool {
	return s.Window(now) != ""
}

// Gate reports whether purchases are accepted at now, the window and the
// pause together: CodeEnded, else CodePaused, else CodeNotStarted, or ""
// when the sale is open. An ended sale answers ended even if paused: the
// pause no longer matters to anyone.
func (s *Sale) Gate(now time.Time) Code {
	c := s.Window(now)
	if s.Paused && c != CodeEnded {
		return CodePaused
	}
	return c
}

// Stopped is how long the sale has been paused up to now, counted from
// its start (a pause before it stops nothing that runs): the pauses that
// ended and the one in force. A waiting room's clock reads now less this,
// so it stands still while the sale is paused: nobody is admitted, and
// the admitted lose none of their window to a pause they cannot buy in.
func (s *Sale) Stopped(now time.Time) time.Duration {
	d := s.PausedFor
	// A pause without a start is one an older version began: not counted.
	if s.Paused && !s.PausedAt.IsZero() {
		from := s.PausedAt
		if from.Before(s.StartsAt) {
			from = s.StartsAt
		}
		if now.After(from) {
			d += now.Sub(from)
		}
	}
	return d
}

// SaleStatus is what buyers see of a sale.
type SaleStatus string

const (
	SaleUpcoming SaleStatus = "upcoming"
	SaleLive     SaleStatus = "live"
	SaleSoldOut  SaleStatus = "sold_out"
	SaleEnded    SaleStatus = "ended"
	SalePaused   SaleStatus = "paused"
)

// Status derives the buyer-facing status from the gate (window and pause)
// and the remaining stock; resuming a paused sale restores whatever these
// say.
func (s *Sale) Status(now time.Time, remaining int64) SaleStatus {
	switch s.Gate(now) {
	case CodeNotStarted:
		return SaleUpcoming
	case CodeEnded:
		return SaleEnded
	case CodePaused:
		return SalePaused
	}
	if remaining <= 0 {
		return SaleSoldOut
	}
	return SaleLive
}

// OrderStatus is the life cycle of an order: reserved, then paid, or
// cancelled by its buyer, or expired when the hold runs out.
type OrderStatus string

const (
	OrderReserved  OrderStatus = "reserved"
	OrderPaid      OrderStatus = "paid"
	OrderCancelled OrderStatus = "cancelled"
	OrderExpired   OrderStatus = "expired"
)

// Live reports whether the order still holds units of the stock.
func (s OrderStatus) Live() bool { return s == OrderReserved || s == OrderPaid }

// Order is one buyer's reservation of units of a sale.
type Order struct {
	ID             string
	SaleID         string
	UserID         string
	Quantity       int64
	Status         OrderStatus
	IdempotencyKey string // empty when the buyer sent none
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// Purchase is one buyer's request to reserve units.
type Purchase struct {
	UserID         string
	IdempotencyKey string // empty: not idempotent
	Quantity       int64
}

// Outcome answers one Purchase. Exactly one of Order (Code == CodeReserved)
// or a rejection code is meaningful.
type Outcome struct {
	Code Code
	// Order is the reserved order. For a replay it is the order as first
	// answered, so the replay's body equals the first answer's.
	Order  Order
	Replay bool
	// Remaining is set for CodeSoldOut: the units left when the request
	// was decided (smaller than the quantity asked).
	Remaining int64
	// Err, when set, fails this purchase alone while the rest of its batch
	// stands: a shared store answers a replay whose first purchase (made
	// on another node) is not yet known to be durable this way.
	Err error
}

// KeyState says what a Store knows about an idempotency key without I/O.
type KeyState int

const (
	KeyUnknown KeyState = iota // never reserved with this key
	KeyPending                 // a reservation with this key is being committed
	KeyDone                    // reserved and durable; the Order is the first answer
	// KeyMaybe: not in memory, but the store keeps only recent keys there
	// (older ones are on disk alone), so the key may have been used: only
	// Reserve, which looks on disk, can tell a replay from a new purchase.
	KeyMaybe
	// KeyAbsent: never reserved with this key, and certain of it. A
	// shared store's KeyUnknown means only "not known on this node";
	// KeyAbsent means the node holds every key of the sale and no unit
	// can be sold before it hears of it (cluster/keycopy.go), so a
	// purchase certain to fail may be answered without the store.
	KeyAbsent
)

// The store seam: the purchase pipeline (batching, fast paths,
// scheduling) sees storage through small interfaces, one per role, and
// Store composes them. Every backend passes the contract suite in
// storetest. All of them are safe for concurrent use, and their mutating
// calls return only once their effects are durable.

// Catalogue holds the sales.
type Catalogue interface {
	// CreateSale persists a new sale; ErrSaleExists if the id is taken.
	CreateSale(ctx context.Context, s Sale) error
	// Sales lists every sale in service (not archived), oldest first.
	Sales(ctx context.Context) ([]Sale, error)
}

// Reserver decides purchases and knows the live stock. The pipeline calls
// Reserve with batches of purchases for one sale; a store may merge
// concurrent calls into one commit.
type Reserver interface {
	// Reserve decides every purchase of the batch against the sale's rules
	// (window, stock, per-user limit, idempotency) in order, and commits
	// all reservations at once. out[i] answers batch[i]; remaining is the
	// stock left after the batch. An error means nothing of the batch holds
	// stock in the running process; a commit whose outcome the disk decided
	// after the error (synced, then refused) may still be found after a
	// crash, which is why a buyer retries with the same key: it replays.
	// A key answers its first reservation forever (a replay),
	// or CodeIdempotencyMismatch when reused with another quantity.
	// The batch is decided at clock's reading taken once the store holds
	// the sale (the embedded store's sale lock, which a cancel, a payment,
	// an expiry or an operator's change holds across its commit; in cluster
	// mode, as the batch goes to Redis): a time read before that wait
	// decided a batch that waited behind an operator's end (PATCH ends_at
	// "now") at an instant before the end, so it reserved after the sale
	// was answered ended, and its holds ended early by the wait.
	Reserve(ctx context.Context, saleID string, batch []Purchase, clock func() time.Time) (out []Outcome, remaining int64, err error)
	// Remaining is the sale's unreserved stock.
	Remaining(ctx context.Context, saleID string) (int64, error)
	// LookupKey answers what the store knows of an idempotency key from
	// memory alone: no I/O and no lock, because the pipeline calls it on
	// its fast paths, where a sold-out spike must cost nothing.
	LookupKey(saleID, userID, key string) (Order, KeyState)
}

// At is a clock that always reads t: a batch decided at an instant
// fixed beforehand (Reserver.Reserve).
func At(t time.Time) func() time.Time { return func() time.Time { return t } }

// OrderBook reads orders and settles them.
type OrderBook interface {
	// Order fetches one order; ErrOrderNotFound if unknown.
	Order(ctx context.Context, id string) (Order, error)
	// Orders streams every order of a sale, archived or not, in creation
	// order, to fn.
	Orders(ctx context.Context, saleID string, fn func(Order) error) error
	// Cancel moves a reserved order to cancelled and returns its units to
	// the stock. A not_cancellable error (NotCancellable: what the order
	// became) unless the order is reserved and its hold still runs
	// (ExpiresAt after now): a hold past it is expired, whether or not the
	// store's expiry has run yet.
	Cancel(ctx context.Context, orderID string, now time.Time) (Order, error)
	// Pay moves a reserved order to paid. A not_payable error
	// (NotPayable) unless reserved with its hold still running, as for
	// Cancel.
	Pay(ctx context.Context, orderID string, now time.Time) (Order, error)
}

// Store is a whole backend: every role the pipeline uses.
type Store interface {
	Catalogue
	Reserver
	OrderBook
	// Close stops the store's jobs, flushes and releases it. Calls after
	// Close fail with ErrUnavailable.
	Close() error
}

// Holds end by a job of the store, not of the pipeline: a hold that ran
// out is expired and its units return to the stock about a second after
// its ExpiresAt (sooner for Pay and Cancel, which refuse it at once). The
// embedded store runs that job itself and implements Releaser; in cluster
// mode the leader runs it, reports it through Releaser on its own node,
// and every node hears of the units through Shared.Changed.

// Releaser is implemented by a store that gives units back on its own,
// outside the pipeline's calls (its expiry job). The pipeline registers
// with OnRelease to raise its remaining-stock hints.
type Releaser interface {
	// OnRelease sets fn (nil: none), called with a sale's id and the
	// number of orders that expired each time units of that sale came back
	// durably, after the store released its locks: fn may read the store
	// (Remaining) but must be quick.
	OnRelease(fn func(saleID string, expired int))
}

// Releases implements Releaser for a store: embed it and call Heard when
// units come back. A store's expiry job starts before the engine can
// register (at Open): what it hears while no fn is set is kept, per sale,
// and told to the next fn set, so none goes uncounted. The zero value is
// ready.
type Releases struct {
	mu      sync.Mutex
	fn      func(saleID string, expired int)
	unheard map[string]int
}

// OnRelease implements Releaser.
func (r *Releases) OnRelease(fn func(saleID string, expired int)) {
	r.mu.Lock()
	r.fn = fn
	unheard := r.unheard
	if fn != nil {
		r.unheard = nil
	}
	r.mu.Unlock()
	if fn == nil {
		return
	}
	for sale, n := range unheard {
		fn(sale, n)
	}
}

// Heard tells the fn set that n of a sale's orders expired, or keeps them
// for the next one set.
func (r *Releases) Heard(saleID string, n int) {
	r.mu.Lock()
	fn := r.fn
	if fn == nil {
		if r.unheard == nil {
			r.unheard = make(map[string]int)
		}
		r.unheard[saleID] += n
	}
	r.mu.Unlock()
	if fn != nil {
		fn(saleID, n)
	}
}

// Shared is implemented by stores that many nodes use at once (cluster
// mode). Sales and stock change under a node's feet there, so the
// pipeline must not trust what it last saw: it follows Changed, refreshes
// its hints periodically, and sends keyed purchases that LookupKey does
// not know to the store even when its hint says sold out.
type Shared interface {
	Store
	// Changed delivers the ids of sales that another node created or
	// changed (Steerer) or that got units back; "" means anything may have
	// changed (a reconnect).
	Changed() <-chan string
}

// Clocked is implemented by a store whose instants are read on a clock
// other than the node's own: in cluster mode PostgreSQL's, by which the
// leader ends holds and a pay or cancel judges them, as each node reads it
// (its own clock plus an offset learned off the purchase path). The
// pipeline reads every instant of the sales' (a batch's, and so a hold's
// start and end; a sale's window and status; a change's; an archive's)
// through Clock(its own clock): read on the node's, a node whose clock was
// off gave its holds a wrong length and judged a sale's start and end
// apart from the other nodes. Reading it must cost no I/O.
type Clocked interface {
	Clock(local func() time.Time) func() time.Time
}

// Steerer is implemented by stores whose sales an operator can change
// while they run (PATCH /v1/sales/{id}).
type Steerer interface {
	// UpdateSale applies p to a sale in service, durably, under the sale's
	// lock: every reservation decided before it saw the sale as it was,
	// every one after sees the change (in cluster mode, on every node:
	// batches decided against the old sale can no longer commit). It
	// returns the sale as changed. ErrSaleNotFound if the sale is unknown
	// or archived; a CodeInvalid error if the changed sale would break a
	// rule of NewSale; a CodeStockBelowSold error if p.Stock is below the
	// units reserved and paid orders hold. A failed call changes nothing.
	// The change's instant (kept as the sale's updated_at; an end "now"
	// ends the sale at it; a pause starts at it) is clock's reading once
	// the store holds the sale (the embedded store's sale lock, held by a
	// reservation, a cancel, a payment or an expiry across its commit): an
	// end read before that wait came before the reservations decided
	// during it, which were then made after the sale's end.
	UpdateSale(ctx context.Context, id string, p SalePatch, clock func() time.Time) (Sale, error)
	// Sale reads one sale in service as the store holds it now;
	// ErrSaleNotFound if it is unknown or archived. A pipeline that
	// follows a shared store reads a sale another node changed with it.
	Sale(ctx context.Context, id string) (Sale, error)
}

// ArchivedSale is a sale taken out of service: its figures are final.
type ArchivedSale struct {
	Sale
	Remaining  int64 // the units never sold, fixed once archived
	ArchivedAt time.Time
}

// Archiver is implemented by stores that can archive sales. An archived
// sale keeps its row and its orders on disk (Order and Orders still read
// them), but its live state is dropped and Sales no longer lists it, so a
// store with thousands of past sales loads and holds only the live ones.
type Archiver interface {
	// ArchiveSale archives a sale that has ended at now, or has yet to
	// start (Sale.Archivable), and holds no reserved order (a
	// CodeNotArchivable error otherwise), durably, and drops its live
	// state. ErrSaleNotFound if it is unknown or archived.
	ArchiveSale(ctx context.Context, saleID string, now time.Time) (ArchivedSale, error)
	// ArchivedSales lists the archived sales, oldest first.
	ArchivedSales(ctx context.Context) ([]ArchivedSale, error)
}
