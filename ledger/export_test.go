package ledger

import "github.com/surgehq/surge"

// Held returns the units a user holds (reserved and paid).
func (l *Sale) Held(user string) int64 { return l.st.held(user) }

// heldMap is every holder's units.
func (l *Sale) heldMap() map[string]int64 {
	m := map[string]int64{}
	for i := range l.st.users.len() {
		if h := l.st.users.at(i); h.n > 0 {
			m[string(l.st.arena.get(h.off, uint32(h.n)))] = h.held
		}
	}
	return m
}

type userKey struct{ user, key string }

// keyEntry is what a key answers: its first answer, and whether it is
// still being committed.
type keyEntry struct {
	order   surge.Order
	pending bool
}

// keyMap is every key in memory.
func (l *Sale) keyMap() map[userKey]keyEntry {
	m := map[userKey]keyEntry{}
	l.st.byKey.each(func(i uint32) {
		r := l.st.recs.at(i)
		o := l.order(r)
		o.Status = surge.OrderReserved
		m[userKey{o.UserID, o.IdempotencyKey}] = keyEntry{order: o, pending: r.pending}
	})
	return m
}

// reservedMap is every committed reserved order.
func (l *Sale) reservedMap() map[string]surge.Order {
	m := map[string]surge.Order{}
	l.st.byID.each(func(i uint32) {
		o := l.order(l.st.recs.at(i))
		m[o.ID] = o
	})
	return m
}

// each calls f with every entry of t.
func (t *table) each(f func(uint32)) {
	for _, v := range t.slots {
		if v != 0 {
			f(entry(v))
		}
	}
	for _, v := range t.old[t.moved:] {
		if full(v) {
			f(entry(v))
		}
	}
}
