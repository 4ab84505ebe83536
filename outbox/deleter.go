package outbox

import (
	"context"
	"fmt"
	"sync"

	"github.com/surgehq/surge"
)

// deleter removes acknowledged batches from the outbox, in order, on a
// goroutine of its own, so the relay publishes the next batches meanwhile
// (a removal is a durable commit of the store).
type deleter struct {
	r       *Relay
	queue   chan []surge.OrderEvent
	pending sync.WaitGroup // batches queued and not yet removed
	mu      sync.Mutex
	err     error // the first failed removal since the last flush
	// unremoved holds the events JetStream acknowledged whose removal
	// failed (seq: event id): they are in the stream, so the relay, which
	// reads them again, must not publish them again, only remove them.
	// Otherwise a removal failing for longer than the stream's duplicate
	// window (the disk full) stored a copy of every waiting event per retry.
	unremoved map[int64]string
	done      chan struct{}
}

func newDeleter(ctx context.Context, r *Relay) *deleter {
	d := &deleter{r: r, queue: make(chan []surge.OrderEvent, 4), unremoved: map[int64]string{}, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for evs := range d.queue {
			// WithoutCancel: a batch JetStream acknowledged is removed even
			// while the relay stops, or it would go again at the next start.
			if err := r.src.EventsPublished(context.WithoutCancel(ctx), evs); err != nil {
				d.mu.Lock()
				if d.err == nil {
					d.err = fmt.Errorf("outbox: remove published events: %w", err)
				}
				for _, e := range evs {
					d.unremoved[e.Seq] = e.ID()
				}
				d.mu.Unlock()
			} else {
				d.mu.Lock()
				for _, e := range evs {
					delete(d.unremoved, e.Seq)
				}
				d.mu.Unlock()
				r.cfg.Metrics.Published(len(evs))
			}
			d.pending.Done()
		}
	}()
	return d
}

// remove queues an acknowledged batch (blocking while four are queued).
func (d *deleter) remove(evs []surge.OrderEvent) {
	if len(evs) == 0 {
		return
	}
	d.pending.Add(1)
	d.queue <- evs
}

// flush waits until every queued batch is removed and returns the first
// failure since the last flush: its events are still in the outbox, and
// will be published again (JetStream drops the repeats).
func (d *deleter) flush() error {
	d.pending.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.err
	d.err = nil
	return err
}

// failing reports whether a removal failed and its events are not yet
// removed.
func (d *deleter) failing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err != nil || len(d.unremoved) > 0
}

// acknowledged reports whether JetStream acknowledged e before and only
// its removal failed.
func (d *deleter) acknowledged(e surge.OrderEvent) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.unremoved[e.Seq]
	return ok && id == e.ID()
}

// forget drops the acknowledged events below seq (every one when seq is
// 0): a read from the start of the outbox no longer finds them (removed,
// or another node's to publish), or the stream that held them was lost.
func (d *deleter) forget(seq int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.unremoved {
		if seq == 0 || s < seq {
			delete(d.unremoved, s)
		}
	}
}

func (d *deleter) stop() {
	close(d.queue)
	<-d.done
}
