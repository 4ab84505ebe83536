package http

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/surgehq/surge"
)

// TestStreamSlots: the order of the checks and the codes of each refusal.
func TestStreamSlots(t *testing.T) {
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	type req struct {
		buyer buyerKey
		addr  netip.Addr
		want  surge.Code // "" is granted
	}
	a, b, c := buyerKey{"s", "a"}, buyerKey{"s", "b"}, buyerKey{"s", "c"}
	var other buyerKey // a stream that is not a queue's (StreamSlot): no buyer
	for _, tc := range []struct {
		name string
		cfg  Config
		reqs []req
	}{
		{"buyer cap", Config{MaxQueueStreamsPerBuyer: 1}, []req{
			{a, v4("192.0.2.1"), ""}, {a, v4("192.0.2.2"), surge.CodeRateLimited}, {b, v4("192.0.2.1"), ""},
			{buyerKey{"t", "a"}, v4("192.0.2.3"), ""}, // another sale
		}},
		{"address cap", Config{MaxQueueStreamsPerAddress: 2}, []req{
			{a, v4("192.0.2.1"), ""}, {b, v4("192.0.2.1"), ""}, {c, v4("192.0.2.1"), surge.CodeRateLimited},
			{c, v4("::ffff:192.0.2.1"), surge.CodeRateLimited}, // the same address, IPv4-mapped
			{c, v4("192.0.2.2"), ""},
		}},
		{"IPv6 by /64", Config{MaxQueueStreamsPerAddress: 1}, []req{
			{a, v4("2001:db8::1"), ""}, {b, v4("2001:db8::ffff:1"), surge.CodeRateLimited}, {b, v4("2001:db8:0:1::1"), ""},
		}},
		{"no address: only the other caps", Config{MaxQueueStreamsPerAddress: 1}, []req{
			{a, netip.Addr{}, ""}, {b, netip.Addr{}, ""},
		}},
		{"global cap after the others", Config{MaxQueueStreams: 2, MaxQueueStreamsPerBuyer: 1}, []req{
			{a, v4("192.0.2.1"), ""}, {b, v4("192.0.2.2"), ""}, {a, v4("192.0.2.3"), surge.CodeRateLimited},
			{c, v4("192.0.2.3"), surge.CodeOverloaded},
		}},
		{"other streams: the address and global caps, shared", Config{MaxQueueStreams: 3, MaxQueueStreamsPerAddress: 2, MaxQueueStreamsPerBuyer: 1}, []req{
			{a, v4("192.0.2.1"), ""}, {other, v4("192.0.2.1"), ""}, {other, v4("192.0.2.1"), surge.CodeRateLimited},
			{other, v4("192.0.2.2"), ""}, // no buyer cap
			{other, v4("192.0.2.3"), surge.CodeOverloaded}, {b, v4("192.0.2.3"), surge.CodeOverloaded},
		}},
		{"defaults", Config{}, []req{
			{a, v4("192.0.2.1"), ""}, {a, v4("192.0.2.1"), ""}, {a, v4("192.0.2.1"), surge.CodeRateLimited},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &newQueueState(tc.cfg).public
			var releases []func()
			for i, r := range tc.reqs {
				var release func()
				var err error
				if r.buyer == other {
					release, err = q.take(nil, r.addr, "GetSale")
				} else {
					release, err = q.acquire(r.buyer, r.addr)
				}
				if got := surge.ErrorCode(err); got != r.want {
					t.Fatalf("request %d (%v from %v): %v, want %q", i, r.buyer, r.addr, err, r.want)
				}
				if err == nil {
					releases = append(releases, release)
				} else if e := err.(*surge.Error); e.RetryAfter <= 0 {
					t.Errorf("request %d: refused without Retry-After", i)
				}
			}
			for _, release := range releases {
				release()
			}
			if len(q.byBuyer) != 0 || len(q.byAddr) != 0 || q.streams != 0 {
				t.Errorf("after every release: %v, %v, %d streams", q.byBuyer, q.byAddr, q.streams)
			}
		})
	}
}

// TestStreamSlotsConcurrent: racing requests of one buyer get exactly its
// share, however they interleave.
func TestStreamSlotsConcurrent(t *testing.T) {
	q := &newQueueState(Config{MaxQueueStreamsPerBuyer: 3}).public
	const n = 64
	var (
		mu       sync.Mutex
		granted  int
		releases []func()
		wg       sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
			release, err := q.acquire(buyerKey{"s", "a"}, addr)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			granted++
			releases = append(releases, release)
		})
	}
	wg.Wait()
	if granted != 3 {
		t.Errorf("%d streams granted to one buyer, want 3", granted)
	}
	for _, release := range releases {
		wg.Go(release)
	}
	wg.Wait()
	if len(q.byBuyer) != 0 || len(q.byAddr) != 0 || q.streams != 0 {
		t.Errorf("after every release: %v, %v, %d streams", q.byBuyer, q.byAddr, q.streams)
	}
}
