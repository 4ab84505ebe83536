package client_test

import (
	"context"
	"net"
	"strings"
	"sync"
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

// stallProxy forwards TCP connections to target; stall freezes the
// connections open at that moment (nothing more goes through them either
// way, yet they stay open, as through a load balancer or NAT that lost
// the flow, or to a host that vanished), while new connections work.
type stallProxy struct {
	addr   string
	mu     sync.Mutex
	frozen map[net.Conn]bool // client side -> stalled
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	p := &stallProxy{frozen: map[net.Conn]bool{}}
	p.addr = relayTCP(t, target, func(c, dst, src net.Conn) {
		p.mu.Lock()
		if _, ok := p.frozen[c]; !ok {
			p.frozen[c] = false
		}
		p.mu.Unlock()
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			p.mu.Lock()
			stalled := p.frozen[c]
			p.mu.Unlock()
			if stalled {
				return // keeps both ends open, forwards nothing
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	})
	return p
}

// stall freezes every connection open now.
func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.frozen {
		p.frozen[c] = true
	}
}

// The server sends a heartbeat after 15 s of silence on a queue stream
// (docs/api.md), so a stream silent for much longer is dead. WaitAdmitted
// must then do what it does for a cut stream (read the place, follow it
// again) and return the admission, not wait on the dead connection for
// ever while the buyer's turn comes and goes.
func TestWaitAdmittedLeavesASilentStream(t *testing.T) {
	s := newServer(t, serverOptions{})
	p := newStallProxy(t, strings.TrimPrefix(s.url, "http://"))
	admin := client.New("http://"+p.addr, token)
	// A dead stream is noticed after 3 s here (35 s by default: two of
	// the server's heartbeats), so the test waits seconds, not a minute.
	client.SetStreamSilence(admin, 3*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	start := time.Now().Add(5 * time.Second)
	ann, q := annInRoom(ctx, t, admin, start, 300)
	onceStreaming(s, func() { // the stream's connection dies silently once open
		p.stall()
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
