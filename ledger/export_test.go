package ledger

import "github.com/surgehq/surge"

// Held returns the units a user holds (reserved and paid).
func (l *Sale) Held(user string) int64 { return l.st.held(user) }

// heldMap is every holder's units.
func (l *Sale) heldMap() map[string]int64 {
	m := map[string]int64{}
	for _, h := range l.st.users {
		if h.n > 0 {
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
	for _, v := range l.st.byKey.slots {
		if v == 0 {
			continue
		}
		r := &l.st.recs[entry(v)]
		o := l.order(r)
		o.Status = surge.OrderReserved
		m[userKey{o.UserID, o.IdempotencyKey}] = keyEntry{order: o, pending: r.pending}
	}
	return m
}

// reservedMap is every committed reserved order.
func (l *Sale) reservedMap() map[string]surge.Order {
	m := map[string]surge.Order{}
	for _, v := range l.st.byID.slots {
		if v != 0 {
			o := l.order(&l.st.recs[entry(v)])
			m[o.ID] = o
		}
	}
	return m
}
