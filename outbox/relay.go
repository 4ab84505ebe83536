// Package outbox is the relay of the transactional outbox: it publishes
// the order events a store wrote in the transactions of the changes
// (surge.Outbox) to NATS JetStream, and removes them once acknowledged.
//
// Delivery is at least once: an event leaves the outbox only after
// JetStream acknowledged it, so a crash, NATS down or a lost ack make the
// relay publish it again; the header Nats-Msg-Id (the event's stable id)
// makes the stream drop such a repeat within its duplicate window; past
// it, the stream's last message tells which events it holds (lastInStream).
// Events go out in the outbox's order (seq) on one connection, batch after
// batch, each batch published asynchronously with every message in
// flight and acknowledged before the next is read.
//
// The purchase path never waits on NATS: the store only writes rows, and
// the relay runs on its own goroutine. While NATS is down the outbox
// grows; surge_outbox_lag_events and surge_outbox_oldest_age_seconds show
// it, and it drains when NATS returns. While the store cannot be read (a
// read fails or hangs) the age goes on growing from what the last read
// knew (Relay.refreshLag).
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"slices"
	"strings"
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
	// Batch is how many events one round reads and publishes (4096), all
	// of them in flight at once.
	Batch int
	// Idle is how long the relay waits before looking again when the
	// outbox was empty (20 ms): the delay of an event at low traffic.
	Idle time.Duration
	// Retry is the wait after a failed round (500 ms).
	Retry time.Duration
	// AckTimeout bounds the wait for one batch's acknowledgements (5 s).
	AckTimeout time.Duration
	// Fresh is how old a read may be when one of its events is sent (1 s);
	// the events not sent by then (the round waited for the previous
	// batch's acknowledgements, or sending stalled) are read again. In cluster mode a read proves the
	// outbox lease, which lasts at least two thirds of its time to live
	// beyond it (renewed once a third has passed), so with Fresh under a
	// third of the TTL a node sends only while no other may publish: two
	// publishers would interleave a sale's events.
	Fresh time.Duration
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
		c.Batch = 4096
	}
	def(&c.Duplicates, 2*time.Minute)
	def(&c.Idle, 20*time.Millisecond)
	def(&c.Retry, 500*time.Millisecond)
	def(&c.AckTimeout, 5*time.Second)
	def(&c.Fresh, time.Second)
	def(&c.LagEvery, time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Relay publishes a store's outbox.
type Relay struct {
	cfg Config
	src surge.Outbox
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	ready bool      // the stream exists
	lagAt time.Time // last refresh of the backlog figures
	// known bounds the backlog as the last read of it that succeeded saw
	// it: no event waiting then was older (its oldest event's time, or the
	// read's when none waited); lagN is the count it read.
	known   time.Time
	lagN    int64
	failing bool // the last round failed (logged once until one succeeds)
	// warnedSubjects: the stream's subjects were found not to take the
	// events, and said so (once more than the failure that led to it).
	warnedSubjects bool
	refused        string // the event whose refusal by JetStream was logged last
	// unsure: events of the outbox may be in the stream already, stored
	// longer ago than its duplicate window (a start, a failed round); the
	// next round from the start looks up the stream's last message first,
	// whose id is streamLast (lastInStream).
	unsure     bool
	streamLast string
}

// Connect dials NATS at url for a relay: it keeps reconnecting for ever
// (also when the first dial fails, so a node starts with NATS down), and
// it has no reconnect buffer, so a publish while disconnected fails at
// once instead of being sent after messages that were lost with the
// connection, which would reorder them.
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond), nats.ReconnectBufSize(-1),
		// A server that refuses the credentials (restarted before its
		// users or account resolver were in place) is tried again like a
		// server that is down: by default nats.go closes the connection for
		// good at the second refusal, and the relay never published again
		// until the node restarted.
		nats.IgnoreAuthErrorAbort(),
		// A connection that died silently (a partition, no RST) is noticed
		// within 15 s instead of the default 2-minute pings times two:
		// until then the relay would hold the outbox lease it cannot use.
		nats.PingInterval(5*time.Second), nats.MaxPingsOutstanding(3))
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err // it quotes the URL whole, password included
		}
		return nil, fmt.Errorf("outbox: connect to NATS at %s: %w", redacted(url), err)
	}
	return nc, nil
}

// redacted is a NATS URL (or comma-separated list of them) as an error may
// show it: passwords and tokens (a user without a password) masked, and a
// URL that does not parse left out.
func redacted(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := neturl.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unparsable URL)"
			continue
		}
		if u.User != nil {
			if _, ok := u.User.Password(); !ok {
				u.User = neturl.User("xxxxx")
			}
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
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
	return &Relay{cfg: cfg, src: src, nc: nc, js: js, log: cfg.Logger.With("stream", cfg.Stream), unsure: true}, nil
}

// RunUntil publishes until ctx ends. Three things overlap so that the
// relay keeps up with a spike: while JetStream acknowledges a batch the
// next one is read, and a batch acknowledged is removed from the outbox by
// a goroutine of its own while the following ones are published. A batch
// is sent only once the one before was wholly acknowledged, so a failure
// never lets a later event overtake an earlier one.
//
// A stop awaits the batch in flight (see batch.acks), up to AckTimeout
// while NATS stalls, and no longer than giveUp: a stop that must end by a
// deadline (surge serve's --shutdown-timeout) ends giveUp at it, and what
// NATS had not acknowledged by then stays in the outbox for the next start.
func (r *Relay) RunUntil(ctx, giveUp context.Context) {
	d := newDeleter(ctx, r)
	defer d.stop()
	var (
		after   int64         // the last event sent; 0: read from the start
		waiting *batch        // sent, its acknowledgements not yet awaited
		retry   time.Duration // the wait before the next round after a failure
	)
	for ctx.Err() == nil {
		if retry > 0 {
			sleep(ctx, retry)
			retry = 0
		}
		_ = r.refreshLag(ctx) // a failed read is the round's to report
		if !r.ready {
			if err := r.ensureStream(ctx); err != nil {
				r.failed(err)
				retry = r.cfg.Retry
				continue
			}
			r.ready = true
			d.forget(0) // the stream may be new: publish every event again
		}
		if !r.nc.IsConnected() {
			// Not even read: in cluster mode a read takes or renews the
			// outbox lease, and a node that cannot reach NATS must let it
			// lapse so that a node that can publishes instead.
			r.settle(giveUp, waiting, d)
			waiting = nil
			why := ""
			if err := r.nc.LastError(); err != nil {
				why = ": " + err.Error() // an authorization violation, a TLS failure
			}
			r.failed(fmt.Errorf("outbox: not connected to NATS (%s)%s", r.nc.Status(), why))
			after, retry = 0, r.cfg.Retry
			continue
		}
		if after == 0 && r.unsure {
			r.lastInStream(ctx)
		}
		evs, readErr := r.src.PendingEvents(ctx, after, r.cfg.Batch)
		readAt := time.Now()
		if waiting != nil {
			n, err := waiting.acks(giveUp, r.cfg.AckTimeout)
			d.remove(waiting.evs[:n])
			r.landed(waiting, err, d)
			waiting = nil
			if err != nil {
				// Read again from the first event not acknowledged, once
				// the removals before it are done.
				d.flush()
				r.failed(err)
				after, retry = 0, r.cfg.Retry
				continue
			}
		}
		if readErr != nil {
			d.flush()
			r.failed(readErr)
			after, retry = 0, r.cfg.Retry
			continue
		}
		if after == 0 {
			// A read from the start: the acknowledged events it does not
			// find were removed.
			var first int64
			if len(evs) > 0 {
				first = evs[0].Seq
			}
			d.forget(first)
		}
		if len(evs) == 0 {
			if err := d.flush(); err != nil {
				r.failed(err)
				after, retry = 0, r.cfg.Retry
				continue
			}
			if after != 0 {
				after = 0 // once more from the start: an event that committed late
				continue
			}
			r.recovered()
			sleep(ctx, r.cfg.Idle)
			continue
		}
		skip := 0
		if after == 0 && r.streamLast != "" {
			// The events up to the stream's last are in it (lastInStream).
			skip = 1 + slices.IndexFunc(evs, func(e surge.OrderEvent) bool { return e.ID() == r.streamLast })
			r.streamLast = ""
		}
		b, err := r.send(evs, skip, readAt.Add(r.cfg.Fresh), d)
		if err != nil {
			// The part sent is awaited with the next round; the rest is
			// read again after the flush.
			r.failed(err)
			retry = r.cfg.Retry
		}
		if len(b.futures) > 0 {
			waiting, after = b, b.evs[len(b.futures)-1].Seq
		}
		if err != nil {
			r.settle(giveUp, waiting, d)
			waiting = nil
			after = 0
		}
	}
	// Stopping: the batch sent is awaited and removed, not left to be
	// published again by the next start.
	r.settle(giveUp, waiting, d)
}

func (r *Relay) failed(err error) {
	if errors.Is(err, context.Canceled) {
		return // the relay stops
	}
	r.cfg.Metrics.Failed()
	r.unsure = true
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		// No stream answers for the subjects: NATS lost it (a server back
		// without its store, an operator's delete); look it up, and create
		// it if absent, before the next round.
		r.ready = false
	}
	// A refusal of another event than the one said (also after NATS was
	// down) is said too: the operator has a limit of the stream to fix.
	ref, refused := errors.AsType[*refusal](err)
	newRefusal := refused && ref.id != r.refused
	if refused {
		r.refused = ref.id
	}
	if !r.failing || newRefusal || errors.Is(err, errStreamSubjects) && !r.warnedSubjects {
		r.warnedSubjects = r.warnedSubjects || errors.Is(err, errStreamSubjects)
		r.log.Warn("order events not published; retrying (purchases go on, the outbox grows)", "err", err)
		r.failing = true
	}
}

func (r *Relay) recovered() {
	if r.failing {
		r.log.Info("order events published again")
		r.failing, r.warnedSubjects, r.refused = false, false, ""
	}
}

// landed says publishing resumed when b, which published events, was
// wholly acknowledged (err nil): at the first batch that lands, not once
// the outbox is empty, so that an outage during a long drain is said too.
func (r *Relay) landed(b *batch, err error, d *deleter) {
	if err == nil && slices.ContainsFunc(b.futures, func(f jetstream.PubAckFuture) bool { return f != nil }) && !d.failing() {
		r.recovered()
	}
}

// settle ends the batch in flight, if any, after a failure: what NATS
// acknowledged of it leaves the outbox, with every removal queued before,
// and the rest is read and sent again from the start.
func (r *Relay) settle(giveUp context.Context, b *batch, d *deleter) {
	if b != nil {
		n, err := b.acks(giveUp, r.cfg.AckTimeout)
		d.remove(b.evs[:n])
		r.landed(b, err, d)
	}
	d.flush()
}

// batch is events sent and the futures of their acknowledgements (nil:
// acknowledged before, only its removal failed).
type batch struct {
	evs     []surge.OrderEvent
	futures []jetstream.PubAckFuture
}

// lastInStream looks up the id of the stream's last message, once after
// each failure (a failed lookup is not tried again until the next one),
// before the read: it must not delay the sending of what the read found
// (Config.Fresh). The relay stores events in seq order, each only right
// after the one before (the fence), so every event of the outbox up to
// the stream's last is in it, whenever the lookup was made. A repeat
// within the duplicate window is dropped by JetStream anyway; this keeps
// one from being stored twice after it (a node down for longer, the
// acknowledgements lost in a long NATS outage).
func (r *Relay) lastInStream(ctx context.Context) {
	r.unsure, r.streamLast = false, ""
	ctx, cancel := context.WithTimeout(ctx, min(r.cfg.AckTimeout, 2*time.Second))
	defer cancel()
	st, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return
	}
	last := st.CachedInfo().State.LastSeq
	if last == 0 {
		return
	}
	if m, err := st.GetMsg(ctx, last); err == nil {
		r.streamLast = m.Header.Get(nats.MsgIdHdr)
	}
}

// send publishes the events without waiting for acknowledgements, until
// fresh passes (the rest is read again, and the lease proved again, in the
// next round: sending can stall while acknowledgements are outstanding);
// on an error the batch holds those sent before it.
// The first skip events are in the stream already (lastInStream): they are
// only removed.
func (r *Relay) send(evs []surge.OrderEvent, skip int, fresh time.Time, d *deleter) (*batch, error) {
	b := &batch{evs: evs, futures: make([]jetstream.PubAckFuture, 0, len(evs))}
	for i, e := range evs {
		if time.Now().After(fresh) {
			break
		}
		if i < skip || d.acknowledged(e) {
			b.futures = append(b.futures, nil) // in the stream: to be removed only
			continue
		}
		msg, err := r.message(e)
		if err != nil {
			return b, err
		}
		opts := []jetstream.PublishOpt{jetstream.WithMsgID(e.ID()), jetstream.WithExpectStream(r.cfg.Stream)}
		if i > 0 {
			// The fence: JetStream stores the event only right after the
			// one before it. The whole batch is in flight, so when it
			// refuses one (a limit of the stream, a message too large) the
			// later ones are refused too instead of overtaking it, an
			// order's paid stored before its reserved; a repeat of a stored
			// event is dropped as a duplicate before this check.
			opts = append(opts, jetstream.WithExpectLastMsgID(evs[i-1].ID()))
		}
		f, err := r.js.PublishMsgAsync(msg, opts...)
		if err != nil {
			return b, fmt.Errorf("outbox: publish %s: %w", e.ID(), err)
		}
		b.futures = append(b.futures, f)
	}
	return b, nil
}

// acks waits for the batch's acknowledgements and returns the length of
// the prefix JetStream acknowledged: the events after a failed one must go
// again, in order. It waits also while the relay stops (bounded by
// timeout): the events sent are in the stream or about to be, and giving
// up on them left them in the outbox, published again at the next start,
// after the duplicate window if that start came later; giveUp ending cuts
// it short (RunUntil).
func (b *batch) acks(giveUp context.Context, timeout time.Duration) (int, error) {
	wait := time.NewTimer(timeout + time.Second) // the client's own timeout fires first
	defer wait.Stop()
	for i, f := range b.futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if jsErr, ok := errors.AsType[jetstream.JetStreamError](err); ok && jsErr.APIError() != nil {
				return i, &refusal{id: b.evs[i].ID(), seq: b.evs[i].Seq, err: err}
			}
			return i, fmt.Errorf("outbox: publish %s: %w", b.evs[i].ID(), err)
		case <-wait.C:
			return i, fmt.Errorf("outbox: publish %s: no acknowledgement", b.evs[i].ID())
		case <-giveUp.Done():
			// An acknowledgement already in counts, even past the deadline
			// (select picks at random among the ready cases).
			select {
			case <-f.Ok():
				continue
			default:
			}
			return i, fmt.Errorf("outbox: publish %s: no acknowledgement before the stop's deadline: %w", b.evs[i].ID(), giveUp.Err())
		}
	}
	return len(b.futures), nil
}

// refusal is JetStream refusing an event (a limit of the stream, a
// message too large): the fence makes it refuse the rest of the batch
// too, so nothing after the event is published until it takes it.
type refusal struct {
	id  string
	seq int64
	err error
}

func (e *refusal) Error() string {
	return fmt.Sprintf("outbox: JetStream refused %s (seq %d); no later event is published until it takes it: %v", e.id, e.seq, e.err)
}

func (e *refusal) Unwrap() error { return e.err }

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
	st, err := r.js.Stream(ctx, r.cfg.Stream)
	if err == nil {
		// Publishing to a subject the stream does not take only answers
		// "no response from stream", which reads as NATS being down.
		if subs := st.CachedInfo().Config.Subjects; !takes(subs, r.cfg.Subject) {
			return fmt.Errorf("outbox: %w: stream %s exists with subjects %q, which do not take the order events' %s.<sale>.<event>: "+
				"add %s.> to them (nats stream edit %s), or delete the stream and the relay creates it",
				errStreamSubjects, r.cfg.Stream, subs, r.cfg.Subject, r.cfg.Subject, r.cfg.Stream)
		}
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

// errStreamSubjects is an existing stream that does not take the events.
var errStreamSubjects = errors.New("the stream does not take the order events")

// takes reports whether a stream with the subject filters subs stores
// every subject prefix.<sale>.<event>.
func takes(subs []string, prefix string) bool {
	want := append(strings.Split(prefix, "."), "*", "*")
	return slices.ContainsFunc(subs, func(f string) bool { return covers(strings.Split(f, "."), want) })
}

// covers reports whether the subject filter f (its tokens) matches every
// subject of want, whose "*" tokens stand for any token.
func covers(f, want []string) bool {
	for i, tok := range f {
		switch {
		case tok == ">":
			return i < len(want)
		case i >= len(want), tok != "*" && (tok != want[i] || want[i] == "*"):
			return false
		}
	}
	return len(f) == len(want)
}

// refreshLag updates the backlog figures, at most every LagEvery: with
// NATS down it is the figure that shows the outbox growing.
//
// While the store cannot be read the age goes on from what the last read
// knew, the most it can be: this relay cannot publish what it cannot read,
// and a figure frozen at its last value kept the outbox-lag alert silent
// for the whole outage. A read that fails says so at once; one that hangs
// (a stalled disk) holds the relay here or in its round, so the age is
// counted at each scrape (metrics.Outbox.Backlog), and the last read stops
// vouching for an empty outbox once the relay, through its longest wait
// (a batch's acknowledgements), should have read again. In cluster mode
// another node may still read the store and publish; it reports the true
// age, lower, which is why the alert and the dashboard take the lowest
// figure of the nodes.
func (r *Relay) refreshLag(ctx context.Context) error {
	if r.cfg.Metrics == nil || time.Since(r.lagAt) < r.cfg.LagEvery {
		return nil
	}
	r.lagAt = time.Now()
	if r.known.IsZero() {
		r.known = r.lagAt // no read yet: count from the relay's start
	}
	n, oldest, err := r.src.OutboxBacklog(ctx)
	if err != nil {
		if ctx.Err() == nil { // not the relay stopping
			r.cfg.Metrics.Backlog(r.lagN, r.known, time.Time{})
		}
		return err // the round reports the failure
	}
	r.known, r.lagN = r.lagAt, n
	if n > 0 && oldest.Before(r.known) { // not when another node's clock runs ahead
		r.known = oldest
	}
	r.cfg.Metrics.Backlog(n, r.known, r.lagAt.Add(2*(r.cfg.LagEvery+r.cfg.AckTimeout)))
	return nil
}

// ReadFigures reads the backlog once, before RunUntil: a scrape of a node
// that has just started then finds the figures of a read, not the 0 of
// none, which a restart's or an upgrade's first scrape read with events
// waiting, resetting the delayed-events alert's for: window. A read that
// fails, or outlasts ctx, counts the age on from now, as a failed read in
// RunUntil does.
func (r *Relay) ReadFigures(ctx context.Context) {
	if err := r.refreshLag(ctx); err != nil && ctx.Err() != nil {
		r.cfg.Metrics.Backlog(r.lagN, r.known, time.Time{})
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
