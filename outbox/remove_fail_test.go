package outbox_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
)

// stuckRemoval is a real store whose removal of published events fails
// while stuck is set (embedded: the disk is full, or surge.db was replaced;
// reads still work): JetStream acknowledged the events, the store cannot
// forget them.
type stuckRemoval struct {
	surge.Outbox
	stuck    atomic.Bool
	failures atomic.Int64
}

func (f *stuckRemoval) EventsPublished(ctx context.Context, evs []surge.OrderEvent) error {
	if f.stuck.Load() {
		f.failures.Add(1)
		return errors.New("injected: the removal failed (disk full)")
	}
	return f.Outbox.EventsPublished(ctx, evs)
}

// TestRelayRemovalFailureDoesNotRepublish: an event JetStream acknowledged
// is in the stream; while its removal from the outbox fails, the relay
// must not publish it again and again. It did: every retry read the
// outbox from the start and sent every acknowledged event anew, so once
// the stream's duplicate window (2 minutes in production) had passed since
// the first copy, each retry (every 500 ms) stored another copy of every
// waiting event, for as long as the store could not remove them.
func TestRelayRemovalFailureDoesNotRepublish(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 100)
	orders := reserve(t, s, "a", "u", 10, 10)
	f := &stuckRemoval{Outbox: s}
	f.stuck.Store(true)

	// A short duplicate window stands for minutes of a failing disk.
	const window = 200 * time.Millisecond
	t.Cleanup(relayWithWindow(t, f, stream, subject, window))

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 { return streamMsgs(t, js, stream) }
	waitFor(t, "the 10 events in the stream", func() bool { return stored() >= 10 })
	first := time.Now()
	// The removal keeps failing for ten duplicate windows, and at least
	// ten retries.
	waitFor(t, "failed removals over ten duplicate windows", func() bool {
		return f.failures.Load() >= 10 && time.Since(first) > 10*window
	})
	f.stuck.Store(false)
	drained(t, f)
	if n := stored(); n != 10 {
		t.Fatalf("the stream holds %d messages for 10 committed changes after %d failed removals of the acknowledged events: "+
			"the relay published acknowledged events again on every retry (want 10)", n, f.failures.Load())
	}
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
}

// streamMsgs is how many messages the stream holds, 0 before it exists.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	st, err := js.Stream(t.Context(), stream)
	if err != nil {
		return 0
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// relayWithWindow runs a relay of src to the stream, with the given
// duplicate window and short pauses, until the returned stop (safe to call
// twice).
func relayWithWindow(t *testing.T, src surge.Outbox, stream, subject string, window time.Duration) (stop func()) {
	t.Helper()
	rc, err := outbox.Connect(servicetest.NATSURL(), "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := outbox.New(rc, src, outbox.Config{Stream: stream, Subject: subject, Duplicates: window,
		Retry: 50 * time.Millisecond, LagEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	end := runRelay(t, r)
	return sync.OnceFunc(func() { end(); rc.Close() })
}
