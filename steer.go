package surge

import "time"

// SalePatch is an operator's change to a sale in service (PATCH
// /v1/sales/{id}); nil fields stay as they are.
type SalePatch struct {
	Paused       *bool
	Name         *string
	Stock        *int64
	PerUserLimit *int64 // applies to purchases decided after the change
	// EndsAt is the new end; the zero time means no end (the API's null).
	// A time at or before now ends the sale at once.
	EndsAt *time.Time
	// EndNow ends the sale at the server's present (the API's "now"),
	// whatever the operator's clock reads; the engine sets EndsAt to it.
	EndNow      bool
	HoldSeconds *int64 // applies to reservations made after the change
}

// Empty reports whether p changes nothing.
func (p SalePatch) Empty() bool {
	return p.Paused == nil && p.Name == nil && p.Stock == nil && p.PerUserLimit == nil &&
		p.EndsAt == nil && !p.EndNow && p.HoldSeconds == nil
}

// Apply returns the sale with p applied at now, checked by the rules
// NewSale applies to the same fields, against sold, the units its
// reserved and paid orders hold: the stock may go up, or down to sold and
// no lower (CodeStockBelowSold). A pause records when it began and a
// resume adds the pause to PausedFor (Stopped); pausing a paused sale, or
// resuming a live one, changes nothing (a retried PATCH). s is not
// changed.
func (s Sale) Apply(p SalePatch, sold int64, now time.Time) (Sale, error) {
	if p.Name != nil {
		if err := checkName(*p.Name); err != nil {
			return Sale{}, err
		}
		s.Name = *p.Name
	}
	if p.Stock != nil {
		if err := checkStock(*p.Stock); err != nil {
			return Sale{}, err
		}
		s.Stock = *p.Stock
	}
	if p.PerUserLimit != nil {
		s.PerUserLimit = *p.PerUserLimit
	}
	if p.PerUserLimit == nil && p.Stock != nil && s.PerUserLimit > s.Stock {
		// A cut of the stock alone: say what stands in its way, not the
		// rule of a field the request did not send.
		return Sale{}, Errorf(CodeInvalid,
			"stock %d is below the sale's per-user limit %d: send a lower \"per_user_limit\" (1 to %d) with it",
			s.Stock, s.PerUserLimit, s.Stock)
	}
	if p.PerUserLimit != nil || p.Stock != nil {
		if err := checkLimit(s.PerUserLimit, s.Stock); err != nil {
			return Sale{}, err
		}
	}
	if p.EndsAt != nil {
		switch {
		case p.EndsAt.IsZero():
			s.EndsAt = time.Time{}
		case !p.EndsAt.After(now) && !s.EndsAt.IsZero() && !s.EndsAt.After(now):
			// Ending now a sale that has already ended (surge sale end run
			// again, its answer lost): it keeps the end it had, when its
			// purchases stopped, as a paused sale keeps its pause's start.
		default:
			if !p.EndsAt.After(now) && s.StartsAt.After(now) {
				// Ending now (surge sale end) a sale that has yet to
				// start: no end can come before its start.
				return Sale{}, Errorf(CodeInvalid,
					"the sale has not started (it starts at %s), so it cannot end before then: archive it to call it off, or pause it to keep it from selling",
					FormatTime(s.StartsAt))
			}
			var err error
			if s.EndsAt, err = checkEnd(*p.EndsAt, s.StartsAt); err != nil {
				return Sale{}, err
			}
		}
	}
	if p.HoldSeconds != nil {
		if err := checkHold(*p.HoldSeconds); err != nil {
			return Sale{}, err
		}
		s.HoldSeconds = *p.HoldSeconds
	}
	if p.Paused != nil && *p.Paused != s.Paused {
		now = now.UTC().Truncate(time.Millisecond) // as the stores keep times
		if *p.Paused {
			s.PausedAt = now
		} else {
			s.PausedFor, s.PausedAt = s.Stopped(now), time.Time{}
		}
		s.Paused = *p.Paused
	}
	if s.Stock < sold {
		return Sale{}, Errorf(CodeStockBelowSold,
			"stock %d is below the %d units reserved and paid orders hold: it may go down to %d and no lower", s.Stock, sold, sold)
	}
	return s, nil
}

// Steers reports whether p changes how purchases are decided (the pause,
// stock, limit, end, or the hold the reservations made from now on get),
// as opposed to the name only.
func (p SalePatch) Steers() bool {
	return p.Paused != nil || p.Stock != nil || p.PerUserLimit != nil || p.EndsAt != nil || p.EndNow || p.HoldSeconds != nil
}
