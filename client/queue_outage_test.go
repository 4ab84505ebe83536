package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// In cluster mode the waiting room's places live in Redis. A Redis blip
// while a buyer follows its place on the event stream ends that stream
// with an "error" event carrying 503's code, unavailable (the server could
// not read the place, the ticket is as good as ever). WaitAdmitted must
// treat that as the transient failure it is (docs/protection.md: every
// Redis failure is "503 unavailable + Retry-After: 1", retry), keep
// waiting by polling, and return the admission, not give the buyer's turn
// up as if the ticket had been refused.
func TestWaitAdmittedSurvivesRedisBlipOnStream(t *testing.T) {
	proxy := servicetest.RedisProxy(t)
	ns := servicetest.Namespace(t)
	rc, err := redis.Dial(t.Context(), "redis://"+proxy.Addr+"/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	s := newServer(t, serverOptions{queues: redis.NewQueues(rc, ns, 0)})
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// Admitted at the start, 5 s from now: the wait outlasts the blip.
	start := time.Now().Add(5 * time.Second)
	ann, q := annInRoom(ctx, t, admin, start, 60)

	// Redis goes away for 2 s once the stream is open and has sent the
	// place (the stream reads it again every second).
	onceStreaming(s, func() {
		proxy.Cut()
		time.Sleep(2 * time.Second)
		proxy.Restore()
	})

	got, err := ann.WaitAdmitted(ctx, q)
	if err != nil {
		t.Fatalf("WaitAdmitted across a 2 s Redis blip: %v; want the admission at %s (the ticket stayed valid)",
			err, start.Format(time.RFC3339))
	}
	if got.Status != client.QueueAdmitted {
		t.Fatalf("WaitAdmitted: %+v, want admitted", got)
	}
	if _, err := ann.Purchase(ctx, "room", client.PurchaseOptions{Ticket: got.Ticket}); err != nil {
		t.Fatalf("purchase with the admitted ticket: %v", err)
	}
}

// The server sends a heartbeat after 15 s of silence on a queue stream
// (docs/api.md), so a stream silent for much longer is dead. WaitAdmitted
// must then do what it does for a cut stream (read the place, follow it
// again) and return the admission, not wait on the dead connection for
// ever while the buyer's turn comes and goes.
func TestWaitAdmittedLeavesASilentStream(t *testing.T) {
	s := newServer(t, serverOptions{})
	// Strand: the connections open then go half-open (nothing passes,
	// nothing closes), new ones work.
	p := servicetest.NewProxy(t, strings.TrimPrefix(s.url, "http://"))
	admin := client.New("http://"+p.Addr, token)
	// A dead stream is noticed after 3 s here (35 s by default: two of
	// the server's heartbeats), so the test waits seconds, not a minute.
	client.SetStreamSilence(admin, 3*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	start := time.Now().Add(5 * time.Second)
	ann, q := annInRoom(ctx, t, admin, start, 300)
	onceStreaming(s, func() { // the stream's connection dies silently once open
		p.Strand()
	})
	began := time.Now()
	got, err := ann.WaitAdmitted(ctx, q)
	if err != nil {
		t.Fatalf("WaitAdmitted after the stream's connection went silent: %v after %v; admitted since %s, "+
			"nothing came through its connection after it was frozen", err, time.Since(began).Round(time.Second),
			start.Format(time.RFC3339))
	}
	if got.Status != client.QueueAdmitted {
		t.Fatalf("WaitAdmitted: %+v, want admitted", got)
	}
}
