package main

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
)

// TestStopWhileNATSStalls: a node stopped (SIGTERM) while NATS lost
// everything sent to it, just after the relay published a batch, took
// about 5 s longer than --shutdown-timeout to exit: the relay's stop
// awaited the batch's acknowledgements up to its ack timeout, whatever
// the node was told. A stop is bounded by --shutdown-timeout; the events
// not acknowledged stay in the outbox for the next start.
func TestStopWhileNATSStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const shutdownTimeout = time.Second
	nc, _, _ := servicetest.NATS(t)
	px := servicetest.NewProxy(t, strings.TrimPrefix(servicetest.NATSURL(), "nats://"))
	token := "stalled-nats-token"
	p := startProc(t, t.TempDir(), token, "--nats-url", "nats://"+px.Addr, "--shutdown-timeout", shutdownTimeout.String())
	saleID := createSale(t, p.base, token, 100, 1)
	filter := saleSubjects(t, nc, saleID)
	ctx := context.Background()
	hc := &http.Client{Timeout: 10 * time.Second}
	buy := func(user string) {
		t.Helper()
		if o, err := purchase(ctx, hc, p.base, saleID, intent{user: user, key: user, qty: 1}); err != nil || o.status != http.StatusCreated {
			t.Fatalf("purchase: %+v, %v", o, err)
		}
	}
	// The relay publishes while NATS answers.
	buy("before")
	waitUntil(t, "the first event in the stream", 20*time.Second, func() bool {
		return len(servicetest.ReadStream(t, nc, outbox.DefaultStream, filter)) == 1
	})

	px.Blackhole()
	buy("lost")
	// The relay's publish of the event (a few hundred bytes; a PING is 6)
	// went into the void: its acknowledgement never comes.
	waitUntil(t, "the relay to publish into the void", 20*time.Second, func() bool { return px.Dropped() > 100 })
	stopsWithin(t, p, shutdownTimeout, "while NATS lost what it was sent")
}

// stopsWithin sends p SIGTERM and wants it gone within its
// --shutdown-timeout, shutdownTimeout, and two seconds more for the
// process's exit on a loaded machine (while names the fault it met).
func stopsWithin(t *testing.T, p *proc, shutdownTimeout time.Duration, while string) {
	t.Helper()
	began := time.Now()
	p.stop(t, syscall.SIGTERM, 60*time.Second)
	took := time.Since(began)
	t.Logf("stopped %v after SIGTERM", took.Round(100*time.Millisecond))
	if most := shutdownTimeout + 2*time.Second; took > most {
		t.Errorf("the node took %v to stop %s; --shutdown-timeout is %v (want at most %v)\n%s",
			took.Round(100*time.Millisecond), while, shutdownTimeout, most, p.logTail())
	}
}
