package admission

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/time/rate"
)

// t0 is an arbitrary instant; tests move time by passing later ones.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestKeyedBurstThenRefusal(t *testing.T) {
	k := NewKeyed(1, 3, 100, time.Minute)
	for i := range 3 {
		if ok, d := k.Allow("alice", t0); !ok || d != 0 {
			t.Fatalf("call %d within the burst: ok=%v retryAfter=%v", i+1, ok, d)
		}
	}
	ok, d := k.Allow("alice", t0)
	if ok {
		t.Fatal("4th call at the same instant allowed past a burst of 3")
	}
	if d != time.Second {
		t.Fatalf("retryAfter = %v, want 1s at 1 token/s", d)
	}
	// Another key has its own bucket.
	if ok, _ := k.Allow("bob", t0); !ok {
		t.Fatal("bob refused because alice used her burst")
	}
}

func TestKeyedRefill(t *testing.T) {
	k := NewKeyed(2, 2, 100, 0) // a token every 500ms
	k.Allow("a", t0)
	k.Allow("a", t0)

	steps := []struct {
		at        time.Duration // since t0
		ok        bool
		wantRetry time.Duration
	}{
		{0, false, 500 * time.Millisecond},
		{100 * time.Millisecond, false, 400 * time.Millisecond},
		{499 * time.Millisecond, false, time.Millisecond},
		{500 * time.Millisecond, true, 0},                        // the token that refilled
		{500 * time.Millisecond, false, 500 * time.Millisecond},  // and it is gone
		{1500 * time.Millisecond, true, 0},                       // two refilled by now
		{1500 * time.Millisecond, true, 0},                       //
		{1500 * time.Millisecond, false, 500 * time.Millisecond}, // never more than the burst
		{10 * time.Second, true, 0},                              // long idle: full again
		{10 * time.Second, true, 0},                              //
		{10 * time.Second, false, 500 * time.Millisecond},        //
		{9 * time.Second, false, 500 * time.Millisecond},         // clock stepped back: no tokens from it
	}
	for i, st := range steps {
		ok, d := k.Allow("a", t0.Add(st.at))
		// Token counts are floats: allow the retry to be rounded up by a
		// few nanoseconds, never down.
		if ok != st.ok || d < st.wantRetry || d > st.wantRetry+10 {
			t.Errorf("step %d at +%v: got ok=%v retryAfter=%v, want ok=%v retryAfter=%v", i, st.at, ok, d, st.ok, st.wantRetry)
		}
	}
}

func TestKeyedRetryAfter(t *testing.T) {
	tests := []struct {
		name  string
		r     rate.Limit
		burst int
		used  int // calls made at t0 before the one checked
		want  time.Duration
	}{
		{"10 per second", 10, 1, 1, 100 * time.Millisecond},
		{"one per 2s", 0.5, 1, 1, 2 * time.Second},
		{"one per minute, burst 5", rate.Every(time.Minute), 5, 5, time.Minute},
		{"fractional rate rounds up", 3, 1, 1, 333333334 * time.Nanosecond},
		{"burst 0 never allows", 10, 0, 0, rate.InfDuration},
		{"rate 0 after the burst", 0, 2, 2, rate.InfDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := NewKeyed(tt.r, tt.burst, 10, 0)
			for range tt.used {
				if ok, _ := k.Allow("k", t0); !ok {
					t.Fatal("refused within the burst")
				}
			}
			ok, d := k.Allow("k", t0)
			if ok || d != tt.want {
				t.Fatalf("got ok=%v retryAfter=%v, want refusal with %v", ok, d, tt.want)
			}
			if d == rate.InfDuration {
				return
			}
			// The promise Retry-After makes: a retry that waits that long
			// is allowed, and one that comes a little earlier is not.
			if ok, _ := k.Allow("k", t0.Add(d-time.Millisecond)); ok {
				t.Error("allowed before retryAfter elapsed")
			}
			if ok, _ := k.Allow("k", t0.Add(d)); !ok {
				t.Error("refused once retryAfter elapsed")
			}
		})
	}
}

func TestKeyedInfiniteRate(t *testing.T) {
	k := NewKeyed(rate.Inf, 0, 10, 0)
	for i := range 100 {
		if ok, _ := k.Allow(strconv.Itoa(i), t0); !ok {
			t.Fatal("rate.Inf refused a call")
		}
	}
	if n := k.Len(); n != 0 {
		t.Fatalf("rate.Inf stored %d buckets, want none", n)
	}
}

func TestKeyedBoundOnKeys(t *testing.T) {
	for _, maxKeys := range []int{1, 10, 100, 1000, 5000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			k := NewKeyed(1, 1, maxKeys, time.Hour)
			// Four times the bound fills every shard; most calls are new keys
			// finding their shard full of spent buckets.
			for i := range 4*maxKeys + 1000 {
				k.Allow("buyer-"+strconv.Itoa(i), t0)
				if i%997 == 0 && k.Len() > maxKeys {
					t.Fatalf("after %d keys: %d buckets held, bound is %d", i+1, k.Len(), maxKeys)
				}
			}
			n := k.Len()
			if n > maxKeys {
				t.Fatalf("%d buckets held, bound is %d", n, maxKeys)
			}
			// The bound is split over shards (rounding down), and a full
			// shard refuses new keys even if another has room: most of the bound is
			// used, all of it is not promised.
			if n < maxKeys/2 {
				t.Fatalf("only %d buckets held of a bound of %d: shards too small", n, maxKeys)
			}
		})
	}
}

// held reports whether k holds a bucket for key.
func (k *Keyed) held(key string) bool {
	h := k.hash(key)
	s := &k.shards[h[0]&k.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[h]
	return ok
}

func TestKeyedEvictsFullBuckets(t *testing.T) {
	// Rate 1/s, burst 2, one shard of 2 buckets. A full bucket is the same
	// as no bucket, so a full one makes room, even when it is not the
	// least recently used.
	k := NewKeyed(1, 2, 2, 0)
	k.Allow("a", t0)
	k.Allow("a", t0)                           // a spent: full again at +2s
	k.Allow("b", t0.Add(500*time.Millisecond)) // b: 1 token, full at +1.5s
	at := t0.Add(1500 * time.Millisecond)      // a holds 1.5 tokens, b 2
	if ok, _ := k.Allow("c", at); !ok {
		t.Fatal("c refused although b's bucket had refilled")
	}
	if k.held("b") {
		t.Fatal("b's full bucket kept: a's debt was forgotten instead")
	}
	if ok, _ := k.Allow("a", at); !ok {
		t.Fatal("a refused with 1.5 tokens")
	}
	if ok, _ := k.Allow("a", at); ok {
		t.Fatal("a allowed twice with 1.5 tokens: its debt was forgiven")
	}
}

// keyedStep is one call of a scripted Keyed test and what it must answer.
type keyedStep struct {
	at   time.Duration // since t0
	key  string
	ok   bool
	wait time.Duration // Retry-After when refused
	why  string
}

func TestKeyedNeverForgivesDebt(t *testing.T) {
	// One shard of 2 buckets, burst 2 at 1 token/s: a spent bucket is full
	// again 2s after its last use. A bucket in debt is never forgotten to
	// make room; a new key waits instead, and learns for how long.
	flood := make([]keyedStep, 50)
	for i := range flood {
		flood[i] = keyedStep{0, "flood-" + strconv.Itoa(i+1), false, time.Second, "a new key in a shard full of debt"}
	}
	tests := []struct {
		name  string
		steps []keyedStep
	}{
		{"a new key waits for a bucket to refill", []keyedStep{
			{0, "a", true, 0, "a fresh"},
			{0, "a", true, 0, "a spends its burst"},
			{0, "b", true, 0, "b fresh, room left"},
			{0, "c", false, time.Second, "full of debt: c waits for b (1 token short), the sooner to refill"},
			{0, "a", false, time.Second, "a is still in debt, not forgiven by c's arrival"},
			{999 * time.Millisecond, "c", false, time.Millisecond, "nothing full yet"},
			{time.Second, "c", true, 0, "b is full: it goes and c comes in"},
			{time.Second, "b", false, time.Second, "b comes back to a shard of a and c, both in debt"},
			{time.Second, "a", true, 0, "a refilled one token, no more"},
			{time.Second, "a", false, time.Second, "and spent it"},
		}},
		{"a flood waits, the spent key stays spent", slices.Concat([]keyedStep{
			{0, "spent", true, 0, "spent fresh"},
			{0, "spent", true, 0, "spent spends its burst"},
			{0, "flood-0", true, 0, "the last free bucket"},
		}, flood, []keyedStep{
			{0, "spent", false, time.Second, "after the flood: still spent, a token away"},
			{2 * time.Second, "flood-x", true, 0, "refilled buckets make room again"},
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := NewKeyed(1, 2, 2, 0)
			for i, st := range tt.steps {
				ok, d := k.Allow(st.key, t0.Add(st.at))
				// Token counts are floats: allow the wait a few
				// nanoseconds up, never down.
				if ok != st.ok || d < st.wait || d > st.wait+10 {
					t.Fatalf("step %d (%s): %q at +%v: got ok=%v retryAfter=%v, want ok=%v retryAfter=%v",
						i, st.why, st.key, st.at, ok, d, st.ok, st.wait)
				}
				if n := k.Len(); n > 2 {
					t.Fatalf("step %d: %d buckets held, bound is 2", i, n)
				}
			}
		})
	}
}

func TestKeyedDropsIdleBuckets(t *testing.T) {
	// Rate 10/s, burst 10: a bucket is full again 1s after its last use, so
	// an idle period of 100ms is raised to 1s.
	k := NewKeyed(10, 10, 10_000, 100*time.Millisecond)
	if k.idle != int64(time.Second) {
		t.Fatalf("idle = %v, want it raised to the refill time 1s", time.Duration(k.idle))
	}
	for i := range 500 {
		k.Allow("old-"+strconv.Itoa(i), t0)
	}
	// Idle for exactly the refill time, not longer: nothing goes.
	for i := range 500 {
		k.Allow("mid-"+strconv.Itoa(i), t0.Add(time.Second))
	}
	if n := k.Len(); n != 1000 {
		t.Fatalf("%d buckets after 1s, want all 1000 kept", n)
	}
	// Later calls drop the old buckets as they pass their shards, and only
	// those: the mid ones have been idle for 0.5s.
	later := t0.Add(1500 * time.Millisecond)
	for i := range 2000 {
		k.Allow("new-"+strconv.Itoa(i), later)
	}
	count := map[string]int{}
	for prefix, n := range map[string]int{"old": 500, "mid": 500, "new": 2000} {
		for i := range n {
			if k.held(prefix + "-" + strconv.Itoa(i)) {
				count[prefix]++
			}
		}
	}
	if count["old"] != 0 || count["mid"] != 500 || count["new"] != 2000 {
		t.Fatalf("buckets held by prefix: %v, want old:0 mid:500 new:2000", count)
	}
}

func TestKeyedDroppingIdleIsInvisible(t *testing.T) {
	// Whatever the idle setting, a key that comes back after its bucket
	// was dropped gets exactly what the bucket would have given it.
	for _, idle := range []time.Duration{0, time.Nanosecond, 10 * time.Second} {
		k := NewKeyed(1, 5, 10, idle) // one shard
		kept := rate.NewLimiter(1, 5)
		at := t0
		dropped := 0
		for i, gap := range []time.Duration{0, 0, 0, 0, 0, 0, 2 * time.Second, 0, 0, 0, 0, 4 * time.Second, 0, 0, 0, 0, 0, 0, time.Minute, 0} {
			at = at.Add(gap)
			k.Allow("filler", at) // gives the shard a chance to drop "k"
			if !k.held("k") {
				dropped++
			}
			got, _ := k.Allow("k", at)
			if want := kept.AllowN(at, 1); got != want {
				t.Fatalf("idle %v, call %d: got %v, a bucket never dropped says %v", idle, i, got, want)
			}
		}
		if dropped < 2 { // before the first call, and after the minute
			t.Fatalf("idle %v: k's bucket was dropped %d times, want it dropped after the long gap", idle, dropped)
		}
	}
}

func TestKeyedConcurrent(t *testing.T) {
	// The promise under concurrency and churn: at one instant no token
	// refills, and no bucket that gave a token is full again, so none is
	// forgotten. However the calls interleave, each key gets at most its
	// burst, and at most maxKeys keys get anything at all. The bound of 6
	// is below the 4 hot keys plus the churn between two uses of one of
	// them, so an LRU that forgot debts would let hot keys through again
	// and again. Run under -race.
	const (
		goroutines = 16
		calls      = 2000
		burst      = 50
		hot        = 4
		maxKeys    = 6
	)
	k := NewKeyed(1, burst, maxKeys, time.Minute)
	var allowed [hot]atomic.Int64
	var churnAllowed atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				key := (g + i) % hot
				if ok, _ := k.Allow("k"+strconv.Itoa(key), t0); ok {
					allowed[key].Add(1)
				}
				// A distinct key each call churns the buckets alongside.
				if ok, _ := k.Allow(fmt.Sprint("churn-", g, "-", i), t0); ok {
					churnAllowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	granted := churnAllowed.Load() // each churn key is used once
	for key := range hot {
		n := allowed[key].Load()
		if n > burst {
			t.Errorf("key %d: %d calls allowed, burst is %d", key, n, burst)
		}
		if n > 0 {
			granted++
		}
	}
	if granted > maxKeys {
		t.Errorf("%d keys were granted tokens at one instant, bound is %d buckets", granted, maxKeys)
	}
	if n := k.Len(); n > maxKeys {
		t.Errorf("%d buckets held, bound is %d", n, maxKeys)
	}
}

func TestKeyedNoAllocsForExistingKey(t *testing.T) {
	k := NewKeyed(1e9, 1<<30, 1000, time.Minute)
	k.Allow("buyer-1", t0)
	if n := testing.AllocsPerRun(1000, func() { k.Allow("buyer-1", t0) }); n != 0 {
		t.Errorf("Allow, allowed: %v allocations per call", n)
	}

	spent := NewKeyed(1, 1, 1000, time.Minute)
	spent.Allow("buyer-1", t0)
	if n := testing.AllocsPerRun(1000, func() { spent.Allow("buyer-1", t0) }); n != 0 {
		t.Errorf("Allow, refused: %v allocations per call", n)
	}

	for _, s := range []string{"203.0.113.7", "2001:db8::1"} {
		a := netip.MustParseAddr(s)
		k.AllowAddr(a, t0)
		if n := testing.AllocsPerRun(1000, func() { k.AllowAddr(a, t0) }); n != 0 {
			t.Errorf("AllowAddr(%s): %v allocations per call", s, n)
		}
	}
}

func TestAllowAddrKeys(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"IPv4 addresses are distinct", "203.0.113.7", "203.0.113.8", false},
		{"IPv4-mapped IPv6 is IPv4", "203.0.113.7", "::ffff:203.0.113.7", true},
		{"one IPv6 /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"neighbouring IPv6 /64s", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"zone ignored", "fe80::1%eth0", "fe80::2", true},
		{"IPv4 vs IPv6", "1.2.3.4", "102:304::", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := NewKeyed(rate.Every(time.Hour), 1, 100, 0)
			if ok, _ := k.AllowAddr(netip.MustParseAddr(tt.a), t0); !ok {
				t.Fatal("first call refused")
			}
			ok, _ := k.AllowAddr(netip.MustParseAddr(tt.b), t0)
			if shared := !ok; shared != tt.same {
				t.Fatalf("%s and %s share a bucket: %v, want %v", tt.a, tt.b, shared, tt.same)
			}
		})
	}
}

// BenchmarkKeyedAllow measures Allow for keys that already have a bucket,
// from all Ps at once: each goroutine on its own keys (the usual case, many
// buyers), and all on one key (the worst case for contention).
func BenchmarkKeyedAllow(b *testing.B) {
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "buyer-" + strconv.Itoa(i)
	}
	// overKeys runs Allow on every key, each goroutine on its own run.
	overKeys := func(b *testing.B, k *Keyed) {
		now := time.Now()
		for _, key := range keys {
			k.Allow(key, now)
		}
		var seq atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) * 997
			for pb.Next() {
				k.Allow(keys[i%len(keys)], now)
				i++
			}
		})
	}
	b.Run("many-keys", func(b *testing.B) { overKeys(b, NewKeyed(1e9, 1<<30, 100_000, time.Minute)) })
	b.Run("one-key", func(b *testing.B) {
		k := NewKeyed(1e9, 1<<30, 100_000, time.Minute)
		now := time.Now()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k.Allow("hot", now)
			}
		})
	})
	b.Run("refused", func(b *testing.B) { overKeys(b, NewKeyed(1, 1, 100_000, time.Minute)) })
	b.Run("addr", func(b *testing.B) {
		k := NewKeyed(1e9, 1<<30, 100_000, time.Minute)
		now := time.Now()
		addrs := make([]netip.Addr, 4096)
		for i := range addrs {
			addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
			k.AllowAddr(addrs[i], now)
		}
		var seq atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) * 997
			for pb.Next() {
				k.AllowAddr(addrs[i%len(addrs)], now)
				i++
			}
		})
	})
}

// BenchmarkKeyedAllowNewKey measures Allow for a key never seen before (a
// spike's buyers mostly buy once), at the defaults' shape: 5/s, burst 10,
// idle 10 minutes, 100,000 keys. The clock moves 10 µs per call, so after
// the first 100,000 calls every shard is full and each new key takes the
// place of the least recently used bucket, full again by then; a key
// comes round again only after it has been forgotten.
func BenchmarkKeyedAllowNewKey(b *testing.B) {
	keys := make([]string, 1<<18)
	for i := range keys {
		keys[i] = "buyer-" + strconv.Itoa(i)
	}
	k := NewKeyed(5, 10, 100_000, 10*time.Minute)
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(10 * time.Microsecond)
		if ok, _ := k.Allow(keys[i&(len(keys)-1)], now); !ok {
			b.Fatal("a new key was refused")
		}
	}
}

// TestKeyedSameAsOneLimiterPerKey: a key's first call makes no limiter
// (its bucket is kept as the time of that call), and every answer is still
// the one a rate.Limiter of its own would give, whatever the settings and
// however time moves (backwards too, and with monotonic readings).
func TestKeyedSameAsOneLimiterPerKey(t *testing.T) {
	steps := []time.Duration{0, 0, time.Millisecond, 150 * time.Millisecond, -time.Second, 2 * time.Second, time.Nanosecond, time.Hour}
	for _, tc := range []struct {
		r     rate.Limit
		burst int
	}{{5, 10}, {1, 1}, {0.5, 3}, {1000, 2}, {0, 2}, {0, 0}, {3, 0}, {1e-9, 1}} {
		for _, start := range []time.Time{t0, time.Now()} {
			t.Run(fmt.Sprintf("r=%v,burst=%d,mono=%v", tc.r, tc.burst, start != t0), func(t *testing.T) {
				k := NewKeyed(tc.r, tc.burst, 1<<20, 1000*time.Hour)
				model := map[string]*rate.Limiter{}
				now := start
				for i := range 400 {
					now = now.Add(steps[(i*7+i/5)%len(steps)])
					key := "buyer-" + strconv.Itoa((i*31)%23)
					sameAsOwnLimiter(t, k, model, key, now, fmt.Sprintf("call %d (%s)", i, key))
				}
			})
		}
	}
}

// sameAsOwnLimiter makes the call k.Allow(key, now) and the same call of a
// limiter of key's own (kept in model), and fails the test where their
// answers differ.
func sameAsOwnLimiter(t *testing.T, k *Keyed, model map[string]*rate.Limiter, key string, now time.Time, call string) {
	t.Helper()
	lim := model[key]
	if lim == nil {
		lim = rate.NewLimiter(k.limit, k.burst)
		model[key] = lim
	}
	wantOK, wantWait := lim.AllowN(now, 1), time.Duration(0)
	if !wantOK {
		wantWait = k.wait(lim.TokensAt(now))
	}
	if ok, wait := k.Allow(key, now); ok != wantOK || wait != wantWait {
		t.Fatalf("%s: (%v, %v), a limiter of its own: (%v, %v)", call, ok, wait, wantOK, wantWait)
	}
}

// TestKeyedFollowsTheMonotonicClock: when the wall clock is stepped (NTP)
// between a key's calls, its bucket refills by the time that passed, as
// the monotonic clock measures it, exactly as a limiter of its own would:
// a step forward hands out no tokens, a step back withholds none.
func TestKeyedFollowsTheMonotonicClock(t *testing.T) {
	steps := []time.Duration{0, time.Millisecond, 150 * time.Millisecond, 2 * time.Second, time.Nanosecond}
	walls := []time.Duration{0, time.Hour, 0, -time.Hour, -time.Minute, 0, 3 * time.Second}
	for _, tc := range []struct {
		r     rate.Limit
		burst int
	}{{5, 10}, {1, 1}, {0.5, 3}, {1000, 2}} {
		t.Run(fmt.Sprintf("r=%v,burst=%d", tc.r, tc.burst), func(t *testing.T) {
			k := NewKeyed(tc.r, tc.burst, 1<<20, 1000*time.Hour)
			model := map[string]*rate.Limiter{}
			mono, wall := time.Now(), time.Duration(0)
			for i := range 300 {
				mono = mono.Add(steps[(i*7+i/5)%len(steps)])
				wall += walls[(i*3)%len(walls)]
				now := stepWall(t, mono, wall)
				key := "buyer-" + strconv.Itoa((i*31)%23)
				sameAsOwnLimiter(t, k, model, key, now, fmt.Sprintf("call %d (%s, wall clock stepped by %v)", i, key, wall))
			}
		})
	}
}

// stepWall returns at as time.Now() would read it after the system clock
// was stepped by d: its wall clock moved by d, its monotonic reading kept.
// The time package cannot make such a value, so this writes the monotonic
// reading into the struct ({wall uint64; ext int64; loc *Location}: with a
// monotonic reading, ext holds it) and checks that it took.
func stepWall(t *testing.T, at time.Time, d time.Duration) time.Time {
	t.Helper()
	s := at.Add(d)
	*(*int64)(unsafe.Add(unsafe.Pointer(&s), 8)) = *(*int64)(unsafe.Add(unsafe.Pointer(&at), 8))
	if s.Sub(at) != 0 || s.Round(0).Sub(at.Round(0)) != d {
		t.Fatalf("cannot step the wall clock of a time.Time (its layout changed?): monotonic %v, wall %v apart, want 0 and %v",
			s.Sub(at), s.Round(0).Sub(at.Round(0)), d)
	}
	return s
}

// TestKeyedTokensOfAKeySeenOnce: the tokens of a bucket without a limiter
// (what eviction looks at) are those of a limiter that answered its call.
func TestKeyedTokensOfAKeySeenOnce(t *testing.T) {
	mono := time.Now()
	for _, tc := range []struct {
		r     rate.Limit
		burst int
	}{{5, 10}, {1, 1}, {0.5, 3}, {0, 2}, {0, 0}} {
		for _, first := range []time.Time{t0, mono} {
			for _, d := range []time.Duration{-time.Hour, 0, time.Nanosecond, 199 * time.Millisecond, 200 * time.Millisecond, time.Second, 1000 * time.Hour} {
				k := NewKeyed(tc.r, tc.burst, 1000, time.Minute)
				k.Allow("buyer", first)
				h := k.hash("buyer")
				s := &k.shards[h[0]&k.mask]
				i := s.m[h]
				if i == noSlot || s.slots[i].lim != 0 {
					t.Fatalf("slot after one call: %d, %+v", i, s.slots[i])
				}
				lim := rate.NewLimiter(tc.r, tc.burst)
				lim.AllowN(first, 1)
				now := first.Add(d)
				if got, want := s.tokensAt(i, now, k.at(now)), lim.TokensAt(now); got != want {
					t.Errorf("r=%v burst=%d +%v: %v tokens, a limiter of its own has %v", tc.r, tc.burst, d, got, want)
				}
				if first == mono && d >= 0 {
					// The wall clock stepped back an hour meanwhile.
					now := stepWall(t, now, -time.Hour)
					if got, want := s.tokensAt(i, now, k.at(now)), lim.TokensAt(now); got != want {
						t.Errorf("r=%v burst=%d +%v, wall clock an hour back: %v tokens, a limiter of its own has %v", tc.r, tc.burst, d, got, want)
					}
				}
			}
		}
	}
}

// TestKeyedBucketsHoldNoPointers: what a Keyed keeps per key, the map's
// keys and values and the slots, holds no pointer, so the garbage
// collector has nothing to walk in them however many buyers a spike
// leaves behind (a pointer added to slot would bring back a heap object
// per key for every collection to mark).
func TestKeyedBucketsHoldNoPointers(t *testing.T) {
	var s shard
	for _, typ := range []reflect.Type{reflect.TypeOf(s.m).Key(), reflect.TypeOf(s.m).Elem(), reflect.TypeOf(s.slots).Elem()} {
		if path := pointerIn(typ, typ.String()); path != "" {
			t.Errorf("%s holds a pointer at %s", typ, path)
		}
	}
}

// pointerIn returns the path of a pointer-holding part of typ, or "".
func pointerIn(typ reflect.Type, path string) string {
	switch typ.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return ""
	case reflect.Array:
		return pointerIn(typ.Elem(), path+"[]")
	case reflect.Struct:
		for i := range typ.NumField() {
			f := typ.Field(i)
			if p := pointerIn(f.Type, path+"."+f.Name); p != "" {
				return p
			}
		}
		return ""
	}
	return path + " (" + typ.Kind().String() + ")"
}

// TestKeyedEmpty: a bucket emptied as of until refuses before it and
// refills from it; it is neither dropped as idle nor taken as full by a
// new key meanwhile; an unknown key is left alone.
func TestKeyedEmpty(t *testing.T) {
	k := NewKeyed(rate.Limit(10), 5, 1, time.Second) // one bucket
	if ok, _ := k.Allow("a", t0); !ok {
		t.Fatal("first call refused")
	}
	until := t0.Add(time.Minute)
	k.Empty("a", until)
	k.Empty("nobody", until)
	if ok, _ := k.Allow("b", t0.Add(30*time.Second)); ok {
		t.Fatal("a new key took the place of a bucket emptied as of a minute later")
	}
	if ok, _ := k.Allow("a", until.Add(50*time.Millisecond)); ok {
		t.Fatal("allowed half a token after the bucket was emptied")
	}
	if ok, _ := k.Allow("a", until.Add(100*time.Millisecond)); !ok {
		t.Fatal("refused a token after it refilled")
	}
	if ok, _ := k.Allow("a", until.Add(100*time.Millisecond)); ok {
		t.Fatal("allowed a second token at once, a burst after the emptying")
	}
}
