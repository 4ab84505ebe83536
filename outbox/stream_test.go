package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/surgehq/surge/servicetest"
)

// TestRelayRecreatesLostStream: docs/events.md says the stream "is created
// when absent". A NATS server that comes back without its JetStream store
// (a container without a volume, a new server) no longer has the stream;
// the relay must create it again and drain the outbox, not retry for ever
// until the node restarts.
func TestRelayRecreatesLostStream(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 1000)
	run(t, s, servicetest.NATSURL(), stream, subject, nil)
	reserve(t, s, "a", "u", 10, 10)
	drained(t, s)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	later := reserve(t, s, "a", "w", 10, 10)
	drainedWithin(t, s, 20*time.Second)
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, later)
}
