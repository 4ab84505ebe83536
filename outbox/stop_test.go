package outbox_test

import (
	"context"
	"sync"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/servicetest"
)

// stopDuringRead is a real store whose read that follows a batch sent
// (after > 0) waits for the relay to stop: the node is shut down while a
// batch's acknowledgements are on their way.
type stopDuringRead struct {
	surge.Outbox
	once    sync.Once
	reading chan struct{}
}

func (s *stopDuringRead) PendingEvents(ctx context.Context, after int64, limit int) ([]surge.OrderEvent, error) {
	if after > 0 {
		s.once.Do(func() { close(s.reading) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Outbox.PendingEvents(ctx, after, limit)
}

// TestRelayStopKeepsNoPublishedEvent: a graceful stop (SIGTERM, an
// upgrade) while a batch is in flight. JetStream stores the batch; the
// relay must await its acknowledgements and remove it before it returns,
// as docs/events.md says ("what it had not published waits for the next
// start"). It gave up on the acknowledgements as soon as it was told to
// stop and left the published events in the outbox, so a start later than
// the stream's 2-minute duplicate window published them a second time.
func TestRelayStopKeepsNoPublishedEvent(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 100)
	orders := reserve(t, s, "a", "u", 50, 50)
	w := &stopDuringRead{Outbox: s, reading: make(chan struct{})}
	stop := runUntil(t, w, servicetest.NATSURL(), stream, subject)
	<-w.reading // the batch is sent, its acknowledgements not yet awaited
	stop()
	msgs := servicetest.ReadStream(t, nc, stream, subject+".>")
	n, _, err := s.OutboxBacklog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(orders) || n != 0 {
		t.Fatalf("after a graceful stop with a batch in flight the stream holds %d of the %d events and the outbox still "+
			"holds %d: a later start publishes those again (want %d in the stream, 0 in the outbox)", len(msgs), len(orders), n, len(orders))
	}
}
