// Package reconcile (对账) compares a payment provider's settlement file
// with the orders and payments a store holds, and reports every mismatch:
// money the provider took that Surge does not know of, payments Surge
// counts that the provider does not, amounts that differ, money owed back
// (refund_due), and sales whose units do not add up. It reads through
// Source, so the same rules check the embedded database (read-only, even
// while it serves) and PostgreSQL.
package reconcile

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/surgehq/surge"
)

// Sale is a sale as the store counts it.
type Sale struct {
	surge.Sale
	// Remaining is the store's own count of units never sold, when it
	// keeps one apart from the orders (Counted): PostgreSQL's sold
	// column, an archived sale's final figure. The embedded store
	// derives a live sale's remaining from its orders, so it has none.
	Remaining int64
	Counted   bool
}

// Source is what reconciliation reads of a store.
type Source interface {
	// Sales lists every sale, archived ones too.
	Sales(ctx context.Context) ([]Sale, error)
	Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error
	Payments(ctx context.Context, fn func(surge.Payment) error) error
}

// Kinds of mismatch; the JSON report's "kind".
const (
	// PaidNotInSurge: the provider settled a payment Surge has no record of.
	PaidNotInSurge = "paid_not_in_surge"
	// PaidNotAtProvider: Surge counts an order paid by a provider's
	// payment the settlement does not hold (or holds as not settled).
	PaidNotAtProvider = "paid_not_at_provider"
	// AmountDiffers: the settlement's amount or currency is not the one
	// Surge recorded for that payment, or the payment's order differs.
	AmountDiffers = "amount_differs"
	// NotApplied: money the provider settled for a payment Surge refused
	// (amount_mismatch, and not refunded in full) or recorded as failed:
	// taken, yet the order is not paid by it.
	NotApplied = "not_applied"
	// RefundDue: a payment for an order that had ended; the money is
	// owed back until a refund settles it.
	RefundDue = "refund_due"
	// RefundUnexpected: a refund Surge recorded that settled no
	// refund_due payment (a paid order refunded at the provider).
	RefundUnexpected = "refund_unexpected"
	// RefundNotInSurge: the settlement says refunded, Surge does not.
	RefundNotInSurge = "refund_not_in_surge"
	// StockMismatch: a sale's live units (reserved + paid orders) exceed
	// its stock, or stock - live is not the store's own remaining.
	StockMismatch = "stock_mismatch"
)

// Mismatch is one finding.
type Mismatch struct {
	Kind      string `json:"kind"`
	PaymentID string `json:"payment_id,omitempty"`
	OrderID   string `json:"order_id,omitempty"`
	SaleID    string `json:"sale_id,omitempty"`
	Detail    string `json:"detail"`
}

// Report is the outcome of a reconciliation.
type Report struct {
	SettlementRows int        `json:"settlement_rows"`
	Payments       int        `json:"payments"`
	Orders         int        `json:"orders"`
	Sales          int        `json:"sales"`
	Mismatches     []Mismatch `json:"mismatches"`
}

// OK reports whether everything matched.
func (r *Report) OK() bool { return len(r.Mismatches) == 0 }

func (r *Report) add(kind, payment, order, sale, format string, args ...any) {
	r.Mismatches = append(r.Mismatches, Mismatch{Kind: kind, PaymentID: payment, OrderID: order, SaleID: sale,
		Detail: fmt.Sprintf(format, args...)})
}

// Run reconciles the settlement's rows with what src holds.
func Run(ctx context.Context, src Source, rows []Row) (Report, error) {
	rep := Report{SettlementRows: len(rows), Mismatches: []Mismatch{}}
	payments := map[string]surge.Payment{}
	var order []string
	paidBy := map[string][]string{} // order id → the payments recorded as having paid it
	// unexpected counts the refunds Surge recorded as refund_unexpected,
	// by order, amount and currency: a settlement that marks the payment
	// itself refunded (rather than listing the refund under its own id)
	// names one of them, which refund_unexpected already reports.
	type refundKey struct {
		order    string
		cents    int64
		currency string
	}
	unexpected := map[refundKey]int{}
	refunded := map[string]int64{} // payment id → the refunds settling it, in steps
	// What the settlement says of each payment id: money taken (a line
	// settled), money given back (a line refunded).
	taken, givenBack := map[string]bool{}, map[string]bool{}
	for _, row := range rows {
		switch row.Status {
		case Settled:
			taken[row.PaymentID] = true
		case Refunded:
			givenBack[row.PaymentID] = true
		}
	}
	held := map[string]int64{} // payment id → its refunds the settlement holds as refunded
	if err := src.Payments(ctx, func(p surge.Payment) error {
		payments[p.ID] = p
		order = append(order, p.ID)
		switch p.Status {
		case surge.PaymentRefund:
			refunded[p.Settles] += p.AmountCents
			if givenBack[p.ID] {
				held[p.Settles] += p.AmountCents
			}
		case surge.PaymentPaid:
			paidBy[p.OrderID] = append(paidBy[p.OrderID], p.ID)
		case surge.PaymentRefundUnexpected:
			unexpected[refundKey{p.OrderID, p.AmountCents, strings.ToUpper(p.Currency)}]++
		}
		return nil
	}); err != nil {
		return rep, fmt.Errorf("reconcile: read payments: %w", err)
	}
	rep.Payments = len(payments)
	// Refunds the settlement holds under ids Surge does not know (the
	// provider's id of a refund Surge recorded under its event's id), by
	// order: reported paid_not_in_surge below, and counted as given back
	// here, so that such a refund is not asked for a second time.
	strange := map[string]int64{}
	for _, row := range rows {
		if _, ok := payments[row.PaymentID]; !ok && row.Status == Refunded && row.OrderID != "" {
			strange[row.OrderID] = capped(strange[row.OrderID], row.AmountCents)
		}
	}
	// The settlement's refunded lines under a payment's own id, by
	// payment: each gives back its amount (a refund in part, or one step
	// of several), not the whole payment whatever it says. One in another
	// currency gives back nothing of it (amount_differs reports it).
	own := map[string]int64{}
	for _, row := range rows {
		if p, ok := payments[row.PaymentID]; ok && row.Status == Refunded && p.Type != surge.RefundSucceeded &&
			strings.EqualFold(row.Currency, p.Currency) {
			cents, _ := row.amountFor(p)
			own[p.ID] = capped(own[p.ID], cents)
		}
	}
	// back is what of payment p, owed back, is given back: the refunds
	// Surge recorded settling it, unless the settlement holds p as taken;
	// then only as much as the settlement holds given back (those refunds'
	// own lines, or the payment's lines marked refunded, whichever says
	// more: both may list the same refund). A refund Surge recorded that
	// the provider's books do not hold leaves the money taken there,
	// still owed.
	back := func(p surge.Payment) int64 {
		if taken[p.ID] {
			return max(own[p.ID], min(refunded[p.ID], capped(held[p.ID], strange[p.OrderID])))
		}
		return max(own[p.ID], refunded[p.ID])
	}
	settled := map[string]Row{}
	for _, row := range rows {
		// One payment may have several lines (its charge, later its
		// refund, a failed attempt before): the money was taken if any
		// says so, whichever line comes first.
		if prev, ok := settled[row.PaymentID]; !ok || rank(row.Status) > rank(prev.Status) {
			settled[row.PaymentID] = row
		}
		p, ok := payments[row.PaymentID]
		switch {
		case !ok && row.Status == Settled:
			rep.add(PaidNotInSurge, row.PaymentID, row.OrderID, "", "the provider settled %s; Surge has no such payment", surge.FormatMinorUnits(row.AmountCents, row.digits(), row.Currency))
			continue
		case !ok && row.Status == Refunded:
			rep.add(PaidNotInSurge, row.PaymentID, row.OrderID, "", "the provider refunded %s; Surge has no such payment", surge.FormatMinorUnits(row.AmountCents, row.digits(), row.Currency))
			continue
		case !ok:
			continue // a failed payment Surge never heard of: no money moved
		case row.Status == Failed:
			// No money moved: its amount is the attempt's, or none, not
			// money taken to compare with what Surge recorded. A paid
			// payment with no other line is paid_not_at_provider (below).
			continue
		}
		cents, digits := row.amountFor(p)
		// A line marking a payment (not a refund) refunded says how much
		// of it was given back: up to the whole, in part, or one step.
		partial := row.Status == Refunded && p.Type != surge.RefundSucceeded && cents < p.AmountCents
		if cents != p.AmountCents && !partial || !strings.EqualFold(row.Currency, p.Currency) || (row.OrderID != "" && row.OrderID != p.OrderID) {
			// Say what the line did and what Surge holds: a refund line
			// read as "settled" tells the operator money was taken.
			did, recorded := "settled", ""
			if row.Status == Refunded {
				did = "refunded"
			}
			if p.Type == surge.RefundSucceeded {
				recorded = "a refund of "
			}
			rep.add(AmountDiffers, p.ID, p.OrderID, p.SaleID, "%s %s %s; Surge recorded %s%s %s",
				did, surge.FormatMinorUnits(cents, digits, row.Currency), forOrder(row.OrderID, "(the line names no order)"),
				recorded, p.FormatAmount(), forOrder(p.OrderID, "for no order"))
		}
		switch {
		case row.Status != Refunded && p.Status == surge.PaymentAmountMismatch && p.AmountCents > 0 && back(p) >= p.AmountCents:
			// Money of the wrong amount, given back in full: settled. A
			// line of it refunded is checked below against the refunds
			// Surge recorded.
		case row.Status == Settled && p.Status == surge.PaymentAmountMismatch && back(p) > 0:
			// Refunded in part: its refunds settle it, so no
			// refund_unexpected tells of them (or the settlement holds
			// the part given back under the payment's id, which
			// refund_not_in_surge reports if Surge lacks it). Say so, or
			// refunding the whole would give that part back twice.
			b := back(p)
			rep.add(NotApplied, p.ID, p.OrderID, p.SaleID, "the provider settled it, Surge recorded it %s: the order is not paid by it; %s of it refunded, the other %s still taken",
				p.Status, formatAs(p.PaymentEvent, b), formatAs(p.PaymentEvent, p.AmountCents-b))
		case row.Status == Settled && (p.Status == surge.PaymentAmountMismatch || p.Status == surge.PaymentFailedStatus):
			rep.add(NotApplied, p.ID, p.OrderID, p.SaleID, "the provider settled it, Surge recorded it %s: the order is not paid by it", p.Status)
		// A refund Surge recorded as refund_unexpected is Surge's refund
		// too: refund_unexpected reports it, once.
		// Nor is one of a payment whose refunds Surge recorded add up to
		// the line's.
		case row.Status == Refunded && p.Status != surge.PaymentRefunded && p.Status != surge.PaymentRefund &&
			p.Status != surge.PaymentRefundUnexpected && refunded[p.ID] < cents:
			if k := (refundKey{p.OrderID, cents, strings.ToUpper(row.Currency)}); unexpected[k] > 0 {
				unexpected[k]-- // Surge has that refund: refund_unexpected reports it
				break
			}
			if partial {
				rep.add(RefundNotInSurge, p.ID, p.OrderID, p.SaleID, "the provider refunded %s of it; Surge has it %s",
					surge.FormatMinorUnits(cents, digits, row.Currency), p.Status)
				break
			}
			rep.add(RefundNotInSurge, p.ID, p.OrderID, p.SaleID, "the provider refunded it; Surge has it %s", p.Status)
		}
	}
	for _, id := range order {
		p := payments[id]
		switch p.Status {
		case surge.PaymentRefundDue:
			if p.AmountCents == 0 {
				// A payment of nothing (a free order's Stripe checkout,
				// no_payment_required) that came after its hold ran out,
				// or after the order was paid: it took nothing, so nothing
				// is due back. Money a settlement holds for it is still
				// reported above (amount_differs).
				break
			}
			b := back(p)
			if b >= p.AmountCents {
				// The settlement holds it refunded in full: the provider
				// gave the money back, and asking for that again would pay
				// the buyer twice. The refund Surge has no record of is
				// reported above (refund_not_in_surge, or the
				// refund_unexpected it is recorded as).
				break
			}
			if b > 0 {
				// Refunded in part (a refund in steps): the rest is due.
				rep.add(RefundDue, p.ID, p.OrderID, p.SaleID, "%s taken for an order no longer reserved, %s of it refunded; refund the other %s",
					p.FormatAmount(), formatAs(p.PaymentEvent, b), formatAs(p.PaymentEvent, p.AmountCents-b))
				break
			}
			rep.add(RefundDue, p.ID, p.OrderID, p.SaleID, "%s taken for an order no longer reserved; refund it", p.FormatAmount())
		case surge.PaymentRefunded:
			// Surge recorded it given back in full; the settlement, which
			// holds it taken, may hold less of its refunds.
			if b := back(p); p.AmountCents > 0 && b < p.AmountCents {
				if b > 0 {
					rep.add(RefundDue, p.ID, p.OrderID, p.SaleID, "%s taken for an order no longer reserved, %s of it refunded at the provider (Surge recorded it all refunded); refund the other %s",
						p.FormatAmount(), formatAs(p.PaymentEvent, b), formatAs(p.PaymentEvent, p.AmountCents-b))
					break
				}
				rep.add(RefundDue, p.ID, p.OrderID, p.SaleID, "%s taken for an order no longer reserved, none of it refunded at the provider (Surge recorded it refunded); refund it", p.FormatAmount())
			}
		case surge.PaymentRefundUnexpected:
			rep.add(RefundUnexpected, p.ID, p.OrderID, p.SaleID, "a refund of %s settled no refund_due payment (the order may be paid)", p.FormatAmount())
		case surge.PaymentPaid:
			// The operator's manual settlements happen outside the provider.
			row, ok := settled[p.ID]
			switch {
			case p.Type == surge.PaymentManual:
			case !ok && p.AmountCents == 0:
				// A free order's payment of nothing (a Stripe Checkout
				// Session with no_payment_required) moved no money: the
				// provider has no charge, so no line, to settle.
			case !ok:
				rep.add(PaidNotAtProvider, p.ID, p.OrderID, p.SaleID, "Surge counts %s paid; the settlement does not hold it", p.FormatAmount())
			case row.Status != Settled:
				rep.add(PaidNotAtProvider, p.ID, p.OrderID, p.SaleID, "Surge counts %s paid; the settlement has it %s", p.FormatAmount(), row.Status)
			}
		}
	}
	if err := checkSales(ctx, src, &rep, paidBy, payments); err != nil {
		return rep, err
	}
	slices.SortStableFunc(rep.Mismatches, func(a, b Mismatch) int { return strings.Compare(a.Kind, b.Kind) })
	return rep, nil
}

// forOrder names the order an amount is for, or none when id is empty.
func forOrder(id, none string) string {
	if id == "" {
		return none
	}
	return "for order " + id
}

// capped adds two amounts, neither negative, at most math.MaxInt64: a
// settlement's lines add up to what they like, and a sum wrapped negative
// would count money given back as none.
func capped(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// rank orders a payment's settlement lines: taken, given back, failed.
func rank(s Status) int {
	switch s {
	case Settled:
		return 2
	case Refunded:
		return 1
	}
	return 0
}

// checkSales adds up each sale's units, finds paid orders without a
// payment, and payments counted as having paid an order that is not paid
// (by them alone): money taken for an order that ended, whose units went
// back on sale, or taken twice.
func checkSales(ctx context.Context, src Source, rep *Report, paidBy map[string][]string, payments map[string]surge.Payment) error {
	sales, err := src.Sales(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: read sales: %w", err)
	}
	rep.Sales = len(sales)
	for _, s := range sales {
		var live int64
		if err := src.Orders(ctx, s.ID, func(o surge.Order) error {
			rep.Orders++
			if o.Status.Live() {
				live += o.Quantity
			}
			by := paidBy[o.ID]
			switch {
			case o.Status == surge.OrderPaid && len(by) == 0:
				rep.add(PaidNotAtProvider, "", o.ID, s.ID, "the order is paid but Surge recorded no payment that paid it")
			case o.Status != surge.OrderPaid:
				for _, id := range by {
					p := payments[id]
					rep.add(RefundDue, id, o.ID, s.ID, "%s recorded as paying the order, which is %s (its units are back on sale): refund it",
						p.FormatAmount(), o.Status)
				}
			default:
				for _, id := range by[1:] {
					p := payments[id]
					rep.add(RefundDue, id, o.ID, s.ID, "%s recorded as paying the order, which %s paid already: refund it",
						p.FormatAmount(), by[0])
				}
			}
			delete(paidBy, o.ID)
			return nil
		}); err != nil {
			return fmt.Errorf("reconcile: read orders of sale %s: %w", s.ID, err)
		}
		if live > s.Stock {
			rep.add(StockMismatch, "", "", s.ID, "%d units in reserved and paid orders exceed the stock of %d", live, s.Stock)
		} else if s.Counted && s.Stock-live != s.Remaining {
			rep.add(StockMismatch, "", "", s.ID, "stock %d - %s in reserved and paid orders = %d, but the store counts %d remaining",
				s.Stock, Count(int(live), "unit", "units"), s.Stock-live, s.Remaining)
		}
	}
	// What is left paid an order no sale holds.
	for _, id := range slices.Sorted(maps.Keys(paidBy)) {
		for _, pid := range paidBy[id] {
			p := payments[pid]
			rep.add(RefundDue, pid, id, p.SaleID, "%s recorded as paying an order Surge does not hold: refund it", p.FormatAmount())
		}
	}
	return nil
}

// formatAs writes cents as ev's amount would be written (its currency's,
// or its provider's, places).
func formatAs(ev surge.PaymentEvent, cents int64) string {
	ev.AmountCents = cents
	return ev.FormatAmount()
}
