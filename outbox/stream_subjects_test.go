package outbox_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
)

// TestRelayStreamOtherSubjects: the operator created the stream first
// (docs/events.md invites it, to change the duplicate window) but with
// subjects that do not take the relay's (here only the paid events). The
// relay, which leaves an existing stream as it is, cannot publish; it must
// say why, naming the stream's subjects and the ones it needs, rather than
// "no response from stream", which reads as NATS being down, while every
// event, the paid ones too, waits behind the first it cannot publish. Once
// the operator adds the subjects, it publishes.
func TestRelayStreamOtherSubjects(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	cfg := jetstream.StreamConfig{Name: stream, Subjects: []string{subject + ".*.paid"}}
	js := operatorStream(t, nc, cfg)
	createSale(t, s, "a", 1000)
	var logs servicetest.Log
	rc, err := outbox.Connect(servicetest.NATSURL(), "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := outbox.New(rc, s, outbox.Config{Stream: stream, Subject: subject, Retry: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.RunUntil(rctx, context.Background()) })
	t.Cleanup(func() { rcancel(); wg.Wait(); rc.Close() })
	orders := reserve(t, s, "a", "u", 10, 10)

	waitFor(t, "the relay's warning", func() bool { return strings.Contains(logs.String(), "WARN") })
	if l := logs.String(); !strings.Contains(l, subject+".*.paid") || !strings.Contains(l, subject+".>") {
		t.Fatalf("the relay cannot publish to stream %s, whose subjects are [%s.*.paid], and its warning names neither "+
			"those subjects nor the %s.> it needs:\n%s", stream, subject, subject, l)
	}
	cfg.Subjects = []string{subject + ".>"}
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	drainedWithin(t, s, 20*time.Second)
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
}

// operatorStream creates the stream as an operator would before the relay
// starts (the relay leaves an existing stream as it is), and returns the
// JetStream handle to change it with.
func operatorStream(t *testing.T, nc *nats.Conn, cfg jetstream.StreamConfig) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return js
}
