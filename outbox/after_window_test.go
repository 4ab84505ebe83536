package outbox_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/servicetest"
)

// TestRelayRestartAfterWindowNoRepeat: a node that published a batch and
// died before removing it from the outbox (or lost NATS's
// acknowledgements for longer than the stream's duplicate window) comes
// back after the window. The events are in the stream, the last of them
// its last message: the relay must not store them a second time. It did:
// it sent them again, and JetStream, no longer remembering their ids,
// stored every one twice.
func TestRelayRestartAfterWindowNoRepeat(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 100)
	orders := reserve(t, s, "a", "u", 10, 10)
	// A short duplicate window stands for a node down for minutes.
	const window = 200 * time.Millisecond
	relay := func(src surge.Outbox) (stop func()) { return relayWithWindow(t, src, stream, subject, window) }
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 { return streamMsgs(t, js, stream) }

	// The first node publishes, and never removes (it dies first).
	f := &stuckRemoval{Outbox: s}
	f.stuck.Store(true)
	stop := relay(f)
	t.Cleanup(stop)
	waitFor(t, "the 10 events in the stream", func() bool { return stored() >= 10 })
	stop()
	time.Sleep(3 * window)

	t.Cleanup(relay(s))
	drained(t, s)
	if n := stored(); n != 10 {
		t.Fatalf("the stream holds %d messages for 10 committed changes: a restart after the duplicate window "+
			"published the events already in the stream again (want 10)", n)
	}
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
}
