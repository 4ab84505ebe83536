package cluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func keyOrder(sale, user, key, id string) surge.Order {
	now := time.UnixMilli(1_800_000_000_123).UTC()
	return surge.Order{ID: id, SaleID: sale, UserID: user, Quantity: 2, Status: surge.OrderReserved,
		IdempotencyKey: key, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
}

// TestKeyCache: a key answers its first order, exactly, until two
// generations have filled after it; keys that differ only in where one
// field ends and the next begins are different keys.
func TestKeyCache(t *testing.T) {
	for _, c := range []struct {
		name   string
		max    int
		puts   []surge.Order
		lookup [3]string // sale, user, key
		want   string    // the order id, "" for none
	}{
		{"put then got", 8, []surge.Order{keyOrder("s", "u", "k", "o1")}, [3]string{"s", "u", "k"}, "o1"},
		{"the first answer stands", 8, []surge.Order{keyOrder("s", "u", "k", "o1"), keyOrder("s", "u", "k", "o2")}, [3]string{"s", "u", "k"}, "o1"},
		{"another user", 8, []surge.Order{keyOrder("s", "u", "k", "o1")}, [3]string{"s", "v", "k"}, ""},
		{"another sale", 8, []surge.Order{keyOrder("s", "u", "k", "o1")}, [3]string{"t", "u", "k"}, ""},
		{"fields split elsewhere", 8, []surge.Order{keyOrder("s", "ab", "c", "o1")}, [3]string{"s", "a", "bc"}, ""},
		{"the longest fields", 8, []surge.Order{keyOrder(strings.Repeat("s", 64), strings.Repeat("u", 64), strings.Repeat("k", 128), "o1")},
			[3]string{strings.Repeat("s", 64), strings.Repeat("u", 64), strings.Repeat("k", 128)}, "o1"},
		{"longer than any valid key: not kept", 8, []surge.Order{keyOrder("s", "u", strings.Repeat("k", 300), "o1")},
			[3]string{"s", "u", strings.Repeat("k", 300)}, ""},
		{"kept in the older generation", 4, []surge.Order{keyOrder("s", "u", "k", "o1"), keyOrder("s", "a", "k", "o2"),
			keyOrder("s", "b", "k", "o3")}, [3]string{"s", "u", "k"}, "o1"},
		{"forgotten after two generations", 4, []surge.Order{keyOrder("s", "u", "k", "o1"), keyOrder("s", "a", "k", "o2"),
			keyOrder("s", "b", "k", "o3"), keyOrder("s", "c", "k", "o4"), keyOrder("s", "d", "k", "o5")}, [3]string{"s", "u", "k"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			kc := newKeyCache(c.max)
			kc.putAll(c.puts)
			o, ok := kc.get(c.lookup[0], c.lookup[1], c.lookup[2])
			if c.want == "" {
				if ok {
					t.Fatalf("got %+v, want none", o)
				}
				return
			}
			want := keyOrder(c.lookup[0], c.lookup[1], c.lookup[2], c.want)
			if !ok || o != want {
				t.Fatalf("got %+v, %v; want %+v", o, ok, want)
			}
		})
	}
}

// TestKeyCacheFull: a generation rotates when its arena fills before its
// count (long fields), and a full table still finds every key it holds.
func TestKeyCacheFull(t *testing.T) {
	kc := newKeyCache(1 << 10)
	long := strings.Repeat("k", 128)
	var orders []surge.Order
	for i := range 2000 {
		orders = append(orders, keyOrder("sale", fmt.Sprintf("user-%d", i), long, fmt.Sprintf("o%d", i)))
	}
	kc.putAll(orders)
	found := 0
	for _, o := range orders {
		if got, ok := kc.get(o.SaleID, o.UserID, o.IdempotencyKey); ok {
			if got != o {
				t.Fatalf("got %+v, want %+v", got, o)
			}
			found++
		}
	}
	// Each generation holds 512 keys by count but only 512*80/(4+~9+128)
	// by bytes: the newest two generations' worth.
	if found == 0 || found > 1024 {
		t.Errorf("%d of %d keys found, want between 1 and 1024", found, len(orders))
	}
	if _, ok := kc.get("sale", "user-1999", long); !ok {
		t.Error("the newest key is missing")
	}
}

// TestKeyCacheConcurrent: readers without locks while writers fill and
// rotate generations (run with -race): a key is either unknown or its
// exact first answer.
func TestKeyCacheConcurrent(t *testing.T) {
	kc := newKeyCache(256)
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				kc.put(keyOrder("s", fmt.Sprintf("u%d-%d", w, i), "k", fmt.Sprintf("o%d-%d", w, i)))
			}
		})
		wg.Go(func() {
			for i := range each {
				user := fmt.Sprintf("u%d-%d", w, i/2)
				if o, ok := kc.get("s", user, "k"); ok && o != keyOrder("s", user, "k", fmt.Sprintf("o%d-%d", w, i/2)) {
					t.Errorf("got %+v for %s", o, user)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestKeyCacheGetAllocates: a lookup, hit or miss, allocates nothing (the
// engine's fast path answers replays with it).
func TestKeyCacheGetAllocates(t *testing.T) {
	kc := newKeyCache(64)
	kc.put(keyOrder("s", "u", "k", "o1"))
	for _, user := range []string{"u", "v"} {
		if n := testing.AllocsPerRun(1000, func() { kc.get("s", user, "k") }); n != 0 {
			t.Errorf("get of user %s: %.1f allocations, want 0", user, n)
		}
	}
}
