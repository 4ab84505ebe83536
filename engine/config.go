package engine

import (
	"log/slog"
	"time"
)

// Config tunes the engine; zero fields take their defaults.
type Config struct {
	// MaxBatch bounds the purchases one store call decides (default 512).
	MaxBatch int
	// QueueSize bounds each sale's inbox (default 4096). A full inbox
	// answers surge.ErrOverloaded instead of queueing without end.
	QueueSize int
	// ExpiryInterval is how often expired holds are released (default 1s).
	ExpiryInterval time.Duration
	// StoreTimeout bounds a store call made outside a request (default 30s).
	StoreTimeout time.Duration
	// PurchaseTimeout bounds how long a queued purchase waits for its
	// batch to commit (default 10s).
	PurchaseTimeout time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Logger receives operational events (default slog.Default()).
	Logger *slog.Logger
	// Shedder, when set, admits purchases to the slow path (the queue to
	// the store) and learns from their latency; a refusal answers
	// overloaded. The fast path (sold out, not live) is never shed.
	Shedder Shedder
	// BuyerRate, when set, caps how many purchases per second each buyer
	// brings to the slow path (keyed by user id); a refusal answers
	// rate_limited. Rejections on the fast path cost nothing, so they are
	// not counted against anyone.
	BuyerRate RateLimiter
	// SaleRate, when set, caps how many purchases per second each sale
	// admits to the slow path (keyed by sale id); a refusal answers
	// rate_limited with the wait.
	SaleRate RateLimiter
	// Queue, when set, makes each sale's queue manager (admission.CoDel):
	// it may refuse a purchase before it queues, and each time the sale's
	// owner takes a batch, the purchases it says waited too long are
	// answered overloaded instead of served.
	Queue func() QueueManager
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
}

// Shedder is an adaptive concurrency limit (admission.Shedder).
type Shedder interface {
	Acquire() (release func(latency time.Duration, dropped bool), ok bool)
}

// QueueManager manages one sale's queue (admission.CoDel). Admit is called
// by purchases; Begin and Taken only by the sale's owner goroutine.
type QueueManager interface {
	// Admit reports whether a purchase may join the queue, which holds
	// queued purchases.
	Admit(queued int) bool
	// Begin returns the cutoff of the batch taken at now: purchases
	// queued before it are shed.
	Begin(now time.Time) (cutoff time.Time)
	// Taken reports the batch: how many were shed, how many are left.
	Taken(now time.Time, shed, left int)
}

// RateLimiter is a keyed token bucket (admission.Keyed).
type RateLimiter interface {
	Allow(key string, now time.Time) (ok bool, retryAfter time.Duration)
}

func (c *Config) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.ExpiryInterval <= 0 {
		c.ExpiryInterval = time.Second
	}
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
