package cluster

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestKeyCopyProof: a copy answers a key it does not hold as never used
// only while every condition of its proof holds; a key it holds is a
// replay whatever the copy's age.
func TestKeyCopyProof(t *testing.T) {
	held := map[userKey]keyEntry{{"u", "k"}: {id: "o1", qty: 2, created: 1000, expires: 2000}}
	good := func() copyView {
		return copyView{layers: []map[userKey]keyEntry{held}, keys: 1, seq: 9, units: 10, ever: 10, free: 0, complete: true}
	}
	for _, c := range []struct {
		name  string
		view  func(v *copyView)
		after func(c *keyCopies) // events after the catch-up
		want  surge.KeyState
	}{
		{"proves", nil, nil, surge.KeyAbsent},
		{"an order missing", func(v *copyView) { v.complete = false }, nil, surge.KeyUnknown},
		{"units free in PostgreSQL", func(v *copyView) { v.free = 1 }, nil, surge.KeyUnknown},
		{"units came back since", nil, func(c *keyCopies) { c.invalidate("s") }, surge.KeyUnknown},
		{"anything may have changed", nil, func(c *keyCopies) { c.invalidate("") }, surge.KeyUnknown},
		{"another sale changed", nil, func(c *keyCopies) { c.invalidate("other") }, surge.KeyAbsent},
		{"Redis reserved beyond the copy", nil, func(c *keyCopies) { c.observe("s", 0, 11) }, surge.KeyUnknown},
		{"Redis has units left", nil, func(c *keyCopies) { c.observe("s", 1, 10) }, surge.KeyUnknown},
		{"Redis agrees", nil, func(c *keyCopies) { c.observe("s", 0, 10) }, surge.KeyAbsent},
		{"an older, smaller Redis count", nil, func(c *keyCopies) { c.observe("s", 0, 11); c.observe("s", 0, 10) }, surge.KeyUnknown},
		{"dropped (archived)", nil, func(c *keyCopies) { c.drop(func(s string) bool { return s == "s" }) }, surge.KeyUnknown},
		// A node cut off from Redis (and from the announcements), or
		// stopped, may have missed units coming back.
		{"Redis not read lately", nil, func(c *keyCopies) {
			k := c.get("s")
			k.read.Store(k.read.Load() - int64(2*time.Minute))
		}, surge.KeyUnknown},
		{"Redis never read", nil, func(c *keyCopies) { c.get("s").read.Store(0) }, surge.KeyUnknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := newKeyCopies(100, time.Minute)
			k := cs.ensure("s")
			cs.ensure("other")
			v := good()
			v.gen = k.gen.Load()
			if c.view != nil {
				c.view(&v)
			}
			k.view.Store(&v)
			cs.observe("s", 0, 10) // Redis read just now, agreeing
			if c.after != nil {
				c.after(cs)
			}
			if _, st := cs.lookup("s", "u", "never"); st != c.want {
				t.Errorf("unused key: state %d, want %d", st, c.want)
			}
			if c.name == "dropped (archived)" {
				return
			}
			o, st := cs.lookup("s", "u", "k")
			want := surge.Order{ID: "o1", SaleID: "s", UserID: "u", Quantity: 2, Status: surge.OrderReserved, IdempotencyKey: "k"}
			if st != surge.KeyDone || o.ID != want.ID || o.SaleID != want.SaleID || o.UserID != want.UserID ||
				o.Quantity != want.Quantity || o.Status != want.Status || o.IdempotencyKey != want.IdempotencyKey ||
				o.CreatedAt.UnixMilli() != 1000 || o.ExpiresAt.UnixMilli() != 2000 {
				t.Errorf("held key: %+v state %d, want its first answer", o, st)
			}
		})
	}
}
