package storetest

import (
	"fmt"
	"strings"
	"time"

	"github.com/surgehq/surge"
)

// timeDiff compares instants and insists on UTC, which every backend must
// return so answers are identical whatever the server's zone.
func timeDiff(name string, got, want time.Time) string {
	if !got.Equal(want) || got.Location() != time.UTC {
		return fmt.Sprintf("  %s: got %v, want %v\n", name, got, want)
	}
	return ""
}

func valDiff[T comparable](name string, got, want T) string {
	if got != want {
		return fmt.Sprintf("  %s: got %v, want %v\n", name, got, want)
	}
	return ""
}

func saleDiff(got, want surge.Sale) string {
	return valDiff("ID", got.ID, want.ID) +
		valDiff("Name", got.Name, want.Name) +
		valDiff("Stock", got.Stock, want.Stock) +
		valDiff("PerUserLimit", got.PerUserLimit, want.PerUserLimit) +
		valDiff("PriceCents", got.PriceCents, want.PriceCents) +
		valDiff("Currency", got.Currency, want.Currency) +
		timeDiff("StartsAt", got.StartsAt, want.StartsAt) +
		timeDiff("EndsAt", got.EndsAt, want.EndsAt) +
		valDiff("HoldSeconds", got.HoldSeconds, want.HoldSeconds) +
		timeDiff("CreatedAt", got.CreatedAt, want.CreatedAt) +
		valDiff("WaitingRoom", roomString(got.WaitingRoom), roomString(want.WaitingRoom)) +
		valDiff("Paused", got.Paused, want.Paused) +
		timeDiff("PausedAt", got.PausedAt, want.PausedAt) +
		valDiff("PausedFor", got.PausedFor, want.PausedFor)
}

func roomString(wr *surge.WaitingRoom) string {
	if wr == nil {
		return "none"
	}
	return fmt.Sprintf("%+v", *wr)
}

func orderDiff(got, want surge.Order) string {
	return valDiff("ID", got.ID, want.ID) +
		valDiff("SaleID", got.SaleID, want.SaleID) +
		valDiff("UserID", got.UserID, want.UserID) +
		valDiff("Quantity", got.Quantity, want.Quantity) +
		valDiff("Status", got.Status, want.Status) +
		valDiff("IdempotencyKey", got.IdempotencyKey, want.IdempotencyKey) +
		timeDiff("CreatedAt", got.CreatedAt, want.CreatedAt) +
		timeDiff("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
}

func listDiff[T any](what string, got, want []T, diff func(got, want T) string) string {
	var b strings.Builder
	if len(got) != len(want) {
		fmt.Fprintf(&b, "%d %s, want %d\n", len(got), what, len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := diff(got[i], want[i]); d != "" {
			fmt.Fprintf(&b, "%s[%d]:\n%s", what, i, d)
		}
	}
	return b.String()
}

func ordersDiff(got, want []surge.Order) string { return listDiff("orders", got, want, orderDiff) }

func salesDiff(got, want []surge.Sale) string { return listDiff("sales", got, want, saleDiff) }

// withStatus returns o as it is after a transition.
func withStatus(o surge.Order, st surge.OrderStatus) surge.Order {
	o.Status = st
	return o
}
