package engine

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/metrics"
)

// Defaults of Config that surge serve's flags (--max-batch,
// --queue-size) and the demo show and use too.
const (
	DefaultMaxBatch  = 512
	DefaultInboxSize = 4096
	// MaxInboxSize bounds InboxSize (and --queue-size): each sale's inbox
	// is allocated whole when the sale is loaded, and a purchase waits in
	// it at most PurchaseTimeout, so a larger one only admits work that
	// times out, at 8 bytes a slot for every sale.
	MaxInboxSize = 1 << 20
)

// Config tunes the engine; zero fields take their defaults.
type Config struct {
	// MaxBatch bounds the purchases one store call decides (default 512,
	// at most MaxInboxSize).
	MaxBatch int
	// InboxSize bounds each sale's inbox (default 4096, at most
	// MaxInboxSize; the --queue-size flag). A full inbox answers
	// surge.ErrOverloaded instead of growing without end.
	InboxSize int
	// StoreTimeout bounds a store call made outside a request (default 30s).
	StoreTimeout time.Duration
	// PurchaseTimeout bounds how long a purchase in an inbox waits for its
	// batch to commit (default 10s).
	PurchaseTimeout time.Duration
	// Now is the clock (default time.Now); tests move it. A store that
	// reads instants on a clock of its own (surge.Clocked) has it read so.
	Now func() time.Time
	// Logger receives operational events (default slog.Default()).
	Logger *slog.Logger
	// BuyerRate, when set, caps how many purchases per second each buyer
	// brings to the slow path (keyed by user id); a refusal answers
	// rate_limited. Rejections on the fast path cost nothing, so they are
	// not counted against anyone.
	BuyerRate RateLimiter
	// SaleRate, when set, caps how many purchases per second each sale
	// admits to the slow path (keyed by sale id); a refusal answers
	// rate_limited with the wait.
	SaleRate RateLimiter
	// InboxManager, when set, makes each sale's inbox manager
	// (admission.CoDel): it may refuse a purchase before it enters the
	// inbox, and each time the sale's owner takes a batch, the purchases it
	// says waited too long are answered overloaded instead of served.
	InboxManager func() InboxManager
	// WaitingRoom checks the tickets of purchases in sales that have a
	// waiting room (waitroom.Room; the http queue endpoints must hand out
	// tickets of the same room). nil: such sales admit nobody.
	WaitingRoom WaitingRoom
	// InFlight is how many batches of one sale may be at the store at once
	// (default 1). The embedded store serialises a sale's batches anyway;
	// a shared store's call mostly waits on Redis and PostgreSQL, so
	// overlapping batches uses that time. Purchases are still decided in
	// order within a batch; concurrent purchases have no order to keep.
	InFlight int
	// SyncInterval is how often the engine of a shared store (cluster
	// mode) reloads the sales and their remaining stock that other nodes
	// change (default 500ms), besides the changes the store announces.
	SyncInterval time.Duration
	// Metrics receives the pipeline's figures (batch sizes, store commit
	// durations, order transitions); each sale's series are resolved once,
	// when the sale is created or loaded. nil: none.
	Metrics *metrics.Metrics
	// Tracing, when set, makes a span of each batch, linked to the spans
	// of the purchases it carries (their request contexts'), and a child
	// span of its store call. nil: no spans, at no cost.
	Tracing trace.TracerProvider
}

// InboxManager manages one sale's inbox (admission.CoDel). Admit is
// called by purchases; Begin and Taken only by the sale's owner goroutine.
type InboxManager interface {
	// Admit reports whether a purchase may enter the inbox, which holds
	// waiting purchases.
	Admit(waiting int) bool
	// Begin returns the cutoff of the batch taken at now: purchases that
	// entered the inbox before it are shed.
	Begin(now time.Time) (cutoff time.Time)
	// Taken reports the batch: how many were shed, how many are left.
	Taken(now time.Time, shed, left int)
}

// WaitingRoom is the purchase gate of sales with a waiting room
// (waitroom.Room): nil if ticket admits userID to buy in sale now, else a
// not_admitted error saying why.
type WaitingRoom interface {
	Check(ctx context.Context, sale *surge.Sale, userID, ticket string) error
}

// RateLimiter is a keyed token bucket (admission.Keyed).
type RateLimiter interface {
	Allow(key string, now time.Time) (ok bool, retryAfter time.Duration)
}

func (c *Config) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.InboxSize <= 0 {
		c.InboxSize = DefaultInboxSize
	}
	// A config built in code is bounded too (serve refuses more).
	c.InboxSize = min(c.InboxSize, MaxInboxSize)
	// Each sale's owner allocates MaxBatch requests and purchases up
	// front: bounded as the inbox is (a batch gathers what the inbox
	// holds), whatever a config built in code asks.
	c.MaxBatch = min(c.MaxBatch, MaxInboxSize)
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 30 * time.Second
	}
	if c.PurchaseTimeout <= 0 {
		c.PurchaseTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 500 * time.Millisecond
	}
	if c.InFlight <= 0 {
		c.InFlight = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
