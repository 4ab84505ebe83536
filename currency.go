package surge

import (
	"fmt"
	"strconv"
	"strings"
)

// MinorDigits is how many decimal places a currency's minor unit is (ISO
// 4217), for an upper-case code: two but for the currencies listed. An
// amount in minor units (price_cents, a webhook's amount_cents) counts yen
// for JPY, fils for KWD.
func MinorDigits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// StripeDigits is how many decimal places Stripe's API counts in a
// currency's amounts, for an upper-case code: ISO 4217's (MinorDigits) but
// for the króna, which Stripe keeps two-decimal ("an ISK amount of 100
// will continue to represent 1 króna"), and the ariary, which Stripe
// counts whole.
func StripeDigits(currency string) int {
	switch currency {
	case "ISK":
		return 2
	case "MGA":
		return 0
	}
	return MinorDigits(currency)
}

// FormatAmount writes an amount of minor units (price_cents, a payment's
// amount_cents) as people and settlement files write it: major units with
// the currency's own places, "129.99 EUR", "1000 JPY", "12.345 KWD". A bare
// count of minor units beside a currency code reads as major units.
func FormatAmount(minor int64, currency string) string {
	return FormatMinorUnits(minor, MinorDigits(strings.ToUpper(currency)), currency)
}

// FormatMinorUnits is FormatAmount of minor units of digits places, for
// amounts counted otherwise than ISO 4217 does (StripeDigits).
func FormatMinorUnits(minor int64, digits int, currency string) string {
	currency = strings.ToUpper(currency)
	if digits == 0 {
		return strconv.FormatInt(minor, 10) + " " + currency
	}
	sign, n := "", uint64(minor)
	if minor < 0 {
		sign, n = "-", -n
	}
	unit := uint64(1)
	for range digits {
		unit *= 10
	}
	return fmt.Sprintf("%s%d.%0*d %s", sign, n/unit, digits, n%unit, currency)
}

// FormatAmount writes the event's amount as the package's FormatAmount
// does, in the places its provider counts: a payment from Stripe is in
// Stripe's units (StripeDigits), as its webhooks send them and as the
// order it paid is priced, so 50000 ISK is 500.00 krónur, not 50000.
func (ev PaymentEvent) FormatAmount() string {
	cur := strings.ToUpper(ev.Currency)
	digits := MinorDigits(cur)
	if ev.Provider == "stripe" { // payments.Stripe, which imports this package
		digits = StripeDigits(cur)
	}
	return FormatMinorUnits(ev.AmountCents, digits, ev.Currency)
}
