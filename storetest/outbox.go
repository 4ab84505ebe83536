package storetest

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// outbox returns the store's transactional outbox: every store has one.
func (e *env) outbox() surge.Outbox {
	e.t.Helper()
	ob, ok := e.s.(surge.Outbox)
	if !ok {
		e.t.Fatalf("storetest: %T does not implement surge.Outbox", e.s)
	}
	return ob
}

func (e *env) pending(limit int) []surge.OrderEvent {
	e.t.Helper()
	evs, err := e.outbox().PendingEvents(e.ctx, 0, limit)
	if err != nil {
		e.t.Fatalf("PendingEvents: %v", err)
	}
	return evs
}

// wantEvents wants the outbox to hold exactly want (kind and order id,
// in this order), each with the order as of the change.
func (e *env) wantEvents(want ...surge.OrderEvent) []surge.OrderEvent {
	e.t.Helper()
	got := e.pending(1000)
	if len(got) != len(want) {
		e.t.Fatalf("outbox holds %d events, want %d:\n got %v\nwant %v", len(got), len(want), kinds(got), kinds(want))
	}
	for i, g := range got {
		w := want[i]
		if g.Kind != w.Kind || g.Order.ID != w.Order.ID {
			e.t.Fatalf("event %d = %s of %s, want %s of %s", i, g.Kind, g.Order.ID, w.Kind, w.Order.ID)
		}
		if d := orderDiff(g.Order, w.Order); d != "" {
			e.t.Errorf("event %d (%s): order differs:\n%s", i, g.ID(), d)
		}
		if g.Ref != w.Ref {
			e.t.Errorf("event %d (%s): ref %q, want %q", i, g.ID(), g.Ref, w.Ref)
		}
		if !g.At.Equal(w.At) {
			e.t.Errorf("event %d (%s): at %v, want %v", i, g.ID(), g.At, w.At)
		}
		if i > 0 && g.Seq <= got[i-1].Seq {
			e.t.Errorf("event %d (%s): seq %d after %d", i, g.ID(), g.Seq, got[i-1].Seq)
		}
	}
	return got
}

func kinds(evs []surge.OrderEvent) []string {
	var s []string
	for _, e := range evs {
		s = append(s, e.ID())
	}
	return s
}

func ev(kind surge.OrderEventKind, o surge.Order, at time.Time) surge.OrderEvent {
	if kind != surge.EventRefundDue {
		o.Status = surge.OrderStatus(kind)
	}
	return surge.OrderEvent{Kind: kind, Order: o, At: at}
}

// refundDue is the refund_due event of the payment ref of order o, which
// stays as it is.
func refundDue(o surge.Order, ref string, at time.Time) surge.OrderEvent {
	return surge.OrderEvent{Kind: surge.EventRefundDue, Order: o, At: at, Ref: ref}
}

func (e *env) wantBacklog(n int64, oldest time.Time) {
	e.t.Helper()
	got, old, err := e.outbox().OutboxBacklog(e.ctx)
	if err != nil {
		e.t.Fatalf("OutboxBacklog: %v", err)
	}
	if got != n || !old.Equal(oldest) {
		e.t.Errorf("OutboxBacklog = %d, oldest %v; want %d, %v", got, old, n, oldest)
	}
}

func testOutbox(t *testing.T, h Harness) {
	t.Run("EveryChange", func(t *testing.T) {
		e := newEnv(t, h)
		e.wantBacklog(0, time.Time{})
		s := newSale(t, "s", 10, 2)
		e.createSale(s)
		out, _ := e.reserve(s.ID, at(0), buy("u1", 1), buyKey("u2", "k", 2), buy("u3", 1))
		o1, o2, o3 := out[0].Order, out[1].Order, out[2].Order
		o4 := e.reserveOne(s.ID, at(time.Second), buy("u4", 1))
		e.pay(o1.ID, at(2*time.Second))
		e.cancel(o2.ID, at(3*time.Second))
		// Refusals and replays change nothing, and write no event.
		e.wantReplay(s.ID, at(4*time.Second), buyKey("u2", "k", 2), o2)
		if _, err := e.s.Cancel(e.ctx, o2.ID, at(4*time.Second)); err == nil {
			t.Fatal("second Cancel succeeded")
		}
		if r, _ := e.reserve(s.ID, at(4*time.Second), buy("u1", 2)); r[0].Code != surge.CodeLimitReached {
			t.Fatalf("over the limit = %q", r[0].Code)
		}
		e.wantExpire(at(hold), o3)
		want := []surge.OrderEvent{
			ev(surge.EventReserved, o1, o1.CreatedAt), ev(surge.EventReserved, o2, o2.CreatedAt),
			ev(surge.EventReserved, o3, o3.CreatedAt), ev(surge.EventReserved, o4, o4.CreatedAt),
			ev(surge.EventPaid, o1, at(2*time.Second)), ev(surge.EventCancelled, o2, at(3*time.Second)),
			ev(surge.EventExpired, o3, at(hold)),
		}
		got := e.wantEvents(want...)
		ids := map[string]bool{}
		for _, g := range got {
			if ids[g.ID()] {
				t.Errorf("event id %s twice", g.ID())
			}
			ids[g.ID()] = true
		}
		e.wantBacklog(7, o1.CreatedAt)
		if n := len(e.pending(3)); n != 3 {
			t.Errorf("PendingEvents(3) = %d events", n)
		}
		after, err := e.outbox().PendingEvents(e.ctx, got[4].Seq, 1000)
		if err != nil || len(after) != 2 || after[0].Seq != got[5].Seq {
			t.Errorf("PendingEvents after the fifth = %v, %v; want the last two", kinds(after), err)
		}

		// Durable like the changes: a reopened store holds them all.
		e.reopen()
		e.wantEvents(want...)

		// Published events leave the outbox; the rest stay, in order.
		if err := e.outbox().EventsPublished(e.ctx, got[:4]); err != nil {
			t.Fatalf("EventsPublished: %v", err)
		}
		e.wantEvents(want[4:]...)
		e.wantBacklog(3, at(2*time.Second))
		if err := e.outbox().EventsPublished(e.ctx, got[4:]); err != nil {
			t.Fatalf("EventsPublished: %v", err)
		}
		e.wantEvents()
		e.wantBacklog(0, time.Time{})

		// The sequence goes on after the outbox emptied.
		o5 := e.reserveOne(s.ID, at(hold+time.Second), buy("u5", 1))
		if n := e.wantEvents(ev(surge.EventReserved, o5, o5.CreatedAt)); n[0].Seq <= got[len(got)-1].Seq {
			t.Errorf("seq %d after the emptied outbox's %d", n[0].Seq, got[len(got)-1].Seq)
		}
	})
	// Payments write their events in the payment's transaction: paid when
	// the order moves, refund_due (one per payment, the payment its ref)
	// when money came for an order that had ended or was paid already;
	// nothing for a payment that changed no order.
	t.Run("Payments", func(t *testing.T) {
		e := newEnv(t, h)
		s := paidSale(t, "s", 10)
		e.createSale(s)
		out, _ := e.reserve(s.ID, at(0), buy("u1", 2), buy("u2", 2), buy("u3", 2))
		o1, o2, o3 := out[0].Order, out[1].Order, out[2].Order
		o4 := e.reserveOne(s.ID, at(time.Second), buy("u4", 2))
		paid := e.record(event("p1", surge.PaymentSucceeded, o1.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentPaid).Order
		e.record(event("short", surge.PaymentSucceeded, o2.ID, price, "USD"), at(2*time.Second), surge.PaymentAmountMismatch)
		e.record(event("declined", surge.PaymentFailed, o2.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentFailedStatus)
		cancelled := e.cancel(o3.ID, at(3*time.Second))
		e.record(event("p3", surge.PaymentSucceeded, o3.ID, 2*price, "USD"), at(4*time.Second), surge.PaymentRefundDue)
		e.record(event("r3", surge.RefundSucceeded, o3.ID, 2*price, "USD"), at(5*time.Second), surge.PaymentRefund)
		e.wantExpire(at(hold), o2)
		expired := e.order(o2.ID)
		e.record(event("p2", surge.PaymentSucceeded, o2.ID, 2*price, "USD"), at(hold+time.Second), surge.PaymentRefundDue)
		e.record(event("p1again", surge.PaymentSucceeded, o1.ID, 2*price, "USD"), at(hold+time.Second), surge.PaymentRefundDue)
		// A replay changes nothing and writes nothing.
		if r, err := e.payments().RecordPayment(e.ctx, event("p3", surge.PaymentSucceeded, o3.ID, 2*price, "USD"), at(hold+2*time.Second)); err != nil || !r.Replay {
			t.Fatalf("replay of p3 = %+v, %v", r, err)
		}
		e.wantEvents(
			ev(surge.EventReserved, o1, o1.CreatedAt), ev(surge.EventReserved, o2, o2.CreatedAt),
			ev(surge.EventReserved, o3, o3.CreatedAt), ev(surge.EventReserved, o4, o4.CreatedAt),
			ev(surge.EventPaid, paid, at(2*time.Second)), ev(surge.EventCancelled, cancelled, at(3*time.Second)),
			refundDue(cancelled, "p3", at(4*time.Second)), ev(surge.EventExpired, expired, at(hold)),
			refundDue(expired, "p2", at(hold+time.Second)), refundDue(paid, "p1again", at(hold+time.Second)),
		)
		e.reopen()
		got := e.pending(1000)
		if len(got) != 10 || got[6].ID() != o3.ID+":refund_due:p3" {
			t.Errorf("after reopening the outbox holds %v", kinds(got))
		}
	})

	// A refund_due event carries the order as the payment left it, also
	// when a later change moved the order on before the relay read it: a
	// repeat of the event must carry the same body. Money that comes after
	// the hold ended, before the expiry job ran, finds the order reserved.
	// A payment of nothing (a free order's Stripe checkout) that came
	// after the hold ended took no money: it is recorded refund_due, but
	// no refund_due event asks consumers to refund 0.00 (docs/events.md:
	// the event is money taken for an order that had ended).
	t.Run("NoRefundDueOfNothing", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "free", 10, 2, priced(0, "USD"))
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buy("u1", 2))
		e.record(event("late0", surge.PaymentSucceeded, o.ID, 0, "USD"), at(hold+time.Second), surge.PaymentRefundDue)
		got := e.pending(1000)
		if len(got) != 1 || got[0].Kind != surge.EventReserved {
			t.Errorf("free order %s, payment late0 of 0.00 USD after its hold: the outbox holds %v; want only the reservation, no refund_due asking to refund nothing",
				o.ID, kinds(got))
		}
	})

	t.Run("RefundDueAsOfThePayment", func(t *testing.T) {
		e := newEnv(t, h)
		s := paidSale(t, "s", 10)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buy("u1", 2))
		e.record(event("late", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(hold+time.Second), surge.PaymentRefundDue)
		e.wantExpire(at(hold+2*time.Second), o)
		e.wantEvents(ev(surge.EventReserved, o, o.CreatedAt), refundDue(o, "late", at(hold+time.Second)),
			ev(surge.EventExpired, e.order(o.ID), at(hold+2*time.Second)))
		e.reopen()
		if got := e.pending(1000); len(got) != 3 || got[1].Order.Status != surge.OrderReserved {
			t.Errorf("after reopening the outbox holds %v, the refund_due's order %s", kinds(got), got[1].Order.Status)
		}
	})
}
