// Package outbox is the relay of the transactional outbox: it publishes
// the order events a store wrote in the transactions of the changes
// (surge.Outbox) to NATS JetStream, and removes them once acknowledged.
//
// Delivery is at least once: an event leaves the outbox only after
// JetStream acknowledged it, so a crash, NATS down or a lost ack make the
// relay publish it again; the header Nats-Msg-Id (the event's stable id)
// makes the stream drop such a repeat within its duplicate window.
// Events go out in the outbox's order (seq) on one connection, batch after
// batch, each batch published asynchronously with every message in
// flight and acknowledged before the next is read.
//
// The purchase path never waits on NATS: the store only writes rows, and
// the relay runs on its own goroutine. While NATS is down the outbox
// grows; surge_outbox_lag_events and surge_outbox_oldest_age_seconds show
// it, and it drains when NATS returns.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/metrics"
)

// The stream and subjects are a contract with consumers (docs/events.md).
const (
	DefaultStream  = "SURGE_ORDERS"
	DefaultSubject = "surge.orders" // + ".<sale_id>.<event>"
)

// Config tunes the relay; zero fields take their defaults.
type Config struct {
	// Stream and Subject are the stream's name (created if absent) and
	// the prefix of its subjects. Only tests change them, to publish to a
	// stream of their own; production keeps the contract.
	Stream, Subject string
	// Duplicates is the stream's duplicate window when the relay creates
	// it (2 minutes): a repeat of an event within it is dropped.
	Duplicates time.Duration
	// Batch is how many events one round reads and publishes (1024).
	Batch int
	// Idle is how long the relay waits before looking again when the
	// outbox was empty (20 ms): the delay of an event at low traffic.
	Idle time.Duration
	// Retry is the wait after a failed round (500 ms).
	Retry time.Duration
	// AckTimeout bounds the wait for one batch's acknowledgements (5 s).
	AckTimeout time.Duration
	// LagEvery is how often the backlog figures are refreshed (1 s).
	LagEvery time.Duration
	Logger   *slog.Logger
	Metrics  *metrics.Outbox // nil: no figures
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Batch <= 0 {
		c.Batch = 1024
	}
	def(&c.Duplicates, 2*time.Minute)
	def(&c.Idle, 20*time.Millisecond)
	def(&c.Retry, 500*time.Millisecond)
	def(&c.AckTimeout, 5*time.Second)
	def(&c.LagEvery, time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Relay publishes a store's outbox.
type Relay struct {
	cfg Config
	src surge.Outbox
	js  jetstream.JetStream
	log *slog.Logger

	ready   bool      // the stream exists
	lagAt   time.Time // last refresh of the backlog figures
	failing bool      // the last round failed (logged once until one succeeds)
}

// Connect dials NATS at url for a relay: it keeps reconnecting for ever
// (also when the first dial fails, so a node starts with NATS down), and
// it has no reconnect buffer, so a publish while disconnected fails at
// once instead of being sent after messages that were lost with the
// connection, which would reorder them.
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, fmt.Errorf("outbox: connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// New returns a relay of src publishing on nc.
func New(nc *nats.Conn, src surge.Outbox, cfg Config) (*Relay, error) {
	cfg.defaults()
	// The async window holds a whole batch: PublishMsgAsync never stalls
	// in the middle of one.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.Batch), jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Relay{cfg: cfg, src: src, js: js, log: cfg.Logger.With("stream", cfg.Stream)}, nil
}

// Run publishes until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	for ctx.Err() == nil {
		r.refreshLag(ctx)
		n, err := r.round(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.cfg.Metrics.Failed()
			if !r.failing {
				r.log.Warn("order events not published; retrying (purchases go on, the outbox grows)", "err", err)
				r.failing = true
			}
			sleep(ctx, r.cfg.Retry)
			continue
		}
		if r.failing {
			r.log.Info("order events published again")
			r.failing = false
		}
		if n == 0 {
			sleep(ctx, r.cfg.Idle)
		}
	}
}

// round publishes one batch and returns how many events left the outbox.
func (r *Relay) round(ctx context.Context) (int, error) {
	if !r.ready {
		if err := r.ensureStream(ctx); err != nil {
			return 0, err
		}
		r.ready = true
	}
	evs, err := r.src.PendingEvents(ctx, r.cfg.Batch)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	n, err := r.publish(ctx, evs)
	if n > 0 {
		// The acknowledged prefix leaves the outbox even when the rest
		// failed: it will not be published again.
		if derr := r.src.EventsPublished(ctx, evs[:n]); derr != nil {
			return 0, errors.Join(err, fmt.Errorf("outbox: remove published events: %w", derr))
		}
		r.cfg.Metrics.Published(n)
	}
	return n, err
}

// publish sends every event of the batch without waiting, then waits for
// the acknowledgements, and returns the length of the prefix JetStream
// acknowledged: the events after a failed one must go again, in order.
func (r *Relay) publish(ctx context.Context, evs []surge.OrderEvent) (int, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	var sendErr error
	for _, e := range evs {
		msg, err := r.message(e)
		if err != nil {
			sendErr = err
			break
		}
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(e.ID()), jetstream.WithExpectStream(r.cfg.Stream))
		if err != nil {
			sendErr = fmt.Errorf("outbox: publish %s: %w", e.ID(), err)
			break
		}
		futures = append(futures, f)
	}
	wait := time.NewTimer(r.cfg.AckTimeout + time.Second) // the client's own timeout fires first
	defer wait.Stop()
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return i, fmt.Errorf("outbox: publish %s: %w", evs[i].ID(), err)
		case <-wait.C:
			return i, fmt.Errorf("outbox: publish %s: no acknowledgement", evs[i].ID())
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(futures), sendErr
}

// message is the event as published: subject surge.orders.<sale>.<event>
// and the JSON of api.OrderEvent. Sale ids are [A-Za-z0-9_-], so they
// never add a subject token.
func (r *Relay) message(e surge.OrderEvent) (*nats.Msg, error) {
	o := e.Order
	body, err := json.Marshal(api.OrderEvent{
		ID: e.ID(), Seq: e.Seq, Event: string(e.Kind), At: surge.FormatTime(e.At), SaleID: o.SaleID, Ref: e.Ref,
		Order: api.Order{ID: o.ID, SaleID: o.SaleID, UserID: o.UserID, Quantity: o.Quantity, Status: string(o.Status),
			CreatedAt: surge.FormatTime(o.CreatedAt), ExpiresAt: surge.FormatTime(o.ExpiresAt), IdempotencyKey: o.IdempotencyKey},
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: encode %s: %w", e.ID(), err)
	}
	return &nats.Msg{Subject: r.cfg.Subject + "." + o.SaleID + "." + string(e.Kind), Data: body}, nil
}

// ensureStream creates the stream if it does not exist. An existing one
// is left as its operator configured it.
func (r *Relay) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
	defer cancel()
	_, err := r.js.Stream(ctx, r.cfg.Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("outbox: look up stream %s: %w", r.cfg.Stream, err)
	}
	_, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        r.cfg.Stream,
		Description: "Surge order events (docs/events.md)",
		Subjects:    []string{r.cfg.Subject + ".>"},
		Storage:     jetstream.FileStorage,
		Duplicates:  r.cfg.Duplicates,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil // another node created it meanwhile
	}
	if err != nil {
		return fmt.Errorf("outbox: create stream %s: %w", r.cfg.Stream, err)
	}
	r.log.Info("created the order events stream", "subjects", r.cfg.Subject+".>", "duplicate_window", r.cfg.Duplicates)
	return nil
}

// refreshLag updates the backlog figures, at most every LagEvery: with
// NATS down it is the figure that shows the outbox growing.
func (r *Relay) refreshLag(ctx context.Context) {
	if r.cfg.Metrics == nil || time.Since(r.lagAt) < r.cfg.LagEvery {
		return
	}
	r.lagAt = time.Now()
	n, oldest, err := r.src.OutboxBacklog(ctx)
	if err != nil {
		return // the store is down: the round reports it
	}
	age := 0.0
	if n > 0 {
		age = max(time.Since(oldest).Seconds(), 0)
	}
	r.cfg.Metrics.Lag(n, age)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
