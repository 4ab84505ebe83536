package ledger

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// model is the ledger's rules over plain maps: what the pointer-free
// layout must agree with after any sequence of changes.
type model struct {
	sale      surge.Sale
	remaining int64
	held      map[string]int64
	keys      map[userKey]keyEntry
	reserved  map[string]surge.Order
	dead      map[userKey]time.Time // keyed dead orders' creation
}

func (m *model) decide(batch []surge.Purchase, now time.Time, ids []string) []surge.Outcome {
	outs := make([]surge.Outcome, len(batch))
	now = now.UTC().Truncate(time.Millisecond)
	for i, p := range batch {
		k := userKey{p.UserID, p.IdempotencyKey}
		if e, ok := m.keys[k]; ok && p.IdempotencyKey != "" {
			if e.order.Quantity != p.Quantity {
				outs[i] = surge.Outcome{Code: surge.CodeIdempotencyMismatch}
			} else {
				outs[i] = surge.Outcome{Code: surge.CodeReserved, Order: e.order, Replay: true}
			}
			continue
		}
		if m.remaining < p.Quantity {
			outs[i] = surge.Outcome{Code: surge.CodeSoldOut, Remaining: m.remaining}
			continue
		}
		if m.held[p.UserID]+p.Quantity > m.sale.PerUserLimit {
			outs[i] = surge.Outcome{Code: surge.CodeLimitReached}
			continue
		}
		o := surge.Order{ID: ids[0], SaleID: m.sale.ID, UserID: p.UserID, Quantity: p.Quantity,
			Status: surge.OrderReserved, IdempotencyKey: p.IdempotencyKey, CreatedAt: now, ExpiresAt: now.Add(m.sale.Hold())}
		ids = ids[1:]
		m.remaining -= p.Quantity
		m.held[p.UserID] += p.Quantity
		if p.IdempotencyKey != "" {
			m.keys[k] = keyEntry{order: o, pending: true}
		}
		outs[i] = surge.Outcome{Code: surge.CodeReserved, Order: o}
	}
	return outs
}

func (m *model) unhold(user string, q int64) {
	if m.held[user] -= q; m.held[user] <= 0 {
		delete(m.held, user)
	}
}

// TestAgainstModel drives a ledger and the model through random batches,
// commits, rollbacks, settlements, expiries and sweeps, with few buyers
// and keys so that entries are freed, reused and shifted in the tables
// all the time, and compares every observable after each step.
func TestAgainstModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			id, name := "s", "S"
			stock, limit, hold := int64(400), int64(3), int64(30)
			sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &t0, HoldSeconds: &hold}, t0)
			if err != nil {
				t.Fatal(err)
			}
			l := New(sale)
			l.st.compactAt = 256 // squeezed often, not only past 64 KiB
			m := &model{sale: sale, remaining: stock, held: map[string]int64{}, keys: map[userKey]keyEntry{},
				reserved: map[string]surge.Order{}, dead: map[userKey]time.Time{}}
			n, compacted := 0, 0
			now := t0
			for step := range 3000 {
				now = now.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
				switch op := rng.IntN(10); {
				case op < 5:
					batch := make([]surge.Purchase, 1+rng.IntN(6))
					for i := range batch {
						batch[i] = surge.Purchase{UserID: fmt.Sprintf("user-%d", rng.IntN(150)), Quantity: 1 + rng.Int64N(2)}
						if rng.IntN(4) > 0 {
							batch[i].IdempotencyKey = fmt.Sprintf("key-%d", rng.IntN(8))
						}
					}
					var ids []string
					for range batch {
						n++
						ids = append(ids, fmt.Sprintf("o_%06d", n))
					}
					k := 0
					outs, tent := l.Decide(batch, now, func() string { k++; return ids[k-1] })
					want := m.decide(batch, now, ids)
					for i := range outs {
						if outs[i] != want[i] {
							t.Fatalf("step %d: out[%d] = %+v, want %+v", step, i, outs[i], want[i])
						}
					}
					if rng.IntN(5) == 0 {
						l.Rollback(tent)
						for _, o := range tent.Orders {
							m.remaining += o.Quantity
							m.unhold(o.UserID, o.Quantity)
							delete(m.keys, userKey{o.UserID, o.IdempotencyKey})
						}
					} else {
						l.Commit(tent)
						for _, o := range tent.Orders {
							m.reserved[o.ID] = o
							if o.IdempotencyKey != "" {
								m.keys[userKey{o.UserID, o.IdempotencyKey}] = keyEntry{order: o}
							}
						}
					}
				case op < 8:
					for id, o := range m.reserved { // a random one: map order
						st := []surge.OrderStatus{surge.OrderPaid, surge.OrderCancelled, surge.OrderExpired}[rng.IntN(3)]
						if !l.Settle(id, st) {
							t.Fatalf("step %d: Settle(%s) refused", step, id)
						}
						delete(m.reserved, id)
						if !st.Live() {
							m.remaining += o.Quantity
							m.unhold(o.UserID, o.Quantity)
							if o.IdempotencyKey != "" {
								m.dead[userKey{o.UserID, o.IdempotencyKey}] = o.CreatedAt
							}
						}
						break
					}
				case op < 9:
					due := l.Due(now, 1+rng.IntN(20))
					for i, o := range due {
						if want, ok := m.reserved[o.ID]; !ok || want != o || o.ExpiresAt.After(now) {
							t.Fatalf("step %d: Due gave %+v (reserved: %v)", step, o, ok)
						}
						if i > 0 && o.ExpiresAt.Before(due[i-1].ExpiresAt) {
							t.Fatalf("step %d: Due out of order", step)
						}
					}
					l.Requeue(due)
				default:
					cutoff := now.Add(-time.Minute)
					got := l.Forget(cutoff)
					want := 0
					for k, c := range m.dead {
						if !c.After(cutoff) {
							delete(m.dead, k)
							delete(m.keys, k)
							want++
						}
					}
					if got != want {
						t.Fatalf("step %d: Forget dropped %d keys, want %d", step, got, want)
					}
				}
				if step%97 == 96 {
					// A restart from an image must go on as if none
					// happened.
					compacted += l.st.compactions
					l = roundTrip(t, l)
					l.st.compactAt = 256
				}
				if l.Remaining() != m.remaining {
					t.Fatalf("step %d: remaining %d, want %d", step, l.Remaining(), m.remaining)
				}
				if got := l.heldMap(); !maps.Equal(got, m.held) {
					t.Fatalf("step %d: held %v, want %v", step, got, m.held)
				}
				if got := l.keyMap(); !maps.Equal(got, m.keys) {
					t.Fatalf("step %d: %d keys, want %d", step, len(got), len(m.keys))
				}
				if got := l.reservedMap(); !maps.Equal(got, m.reserved) {
					t.Fatalf("step %d: %d reserved, want %d", step, len(got), len(m.reserved))
				}
				for range 4 {
					u, k := fmt.Sprintf("user-%d", rng.IntN(150)), fmt.Sprintf("key-%d", rng.IntN(8))
					o, st := l.LookupKey(u, k)
					e, ok := m.keys[userKey{u, k}]
					switch {
					case ok && e.pending:
						ok = st == surge.KeyPending
					case ok:
						ok = st == surge.KeyDone && o == e.order
					default:
						ok = st == surge.KeyUnknown || st == surge.KeyMaybe
					}
					if !ok {
						t.Fatalf("step %d: LookupKey(%s, %s) = %v %+v, model %+v", step, u, k, st, o, e)
					}
				}
			}
			if l.st.compactions+compacted == 0 {
				t.Error("the arena was never compacted")
			}
			if int(l.st.recs.len()) > 2*(len(m.keys)+len(m.reserved))+64 {
				t.Errorf("%d records kept for %d keys and %d reserved orders: freed records are not reused", l.st.recs.len(), len(m.keys), len(m.reserved))
			}
		})
	}
}
