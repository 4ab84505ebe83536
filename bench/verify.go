package bench

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// Check names, as they appear in reports.
const (
	CheckNoOversell     = "no oversell"
	CheckPerUserLimit   = "per-user limit"
	CheckConfirmed      = "confirmed orders present"
	CheckOneOrderPerKey = "one order per idempotency key"
	CheckReplays        = "replays consistent"
	CheckRemaining      = "remaining consistent"
	CheckWellFormed     = "orders well-formed"
	// The run's own checks: that it tested the sale at all.
	CheckAccepted = "requests accepted"
	CheckReserved = "reservations made"
	// CheckReadable201s: every 201 named an order the run could check.
	CheckReadable201s = "every 201 names its order"
	// CheckTerms: a sale the run created kept the stock and limit it was
	// created with.
	CheckTerms = "sale terms as created"
)

// maxRefusedPercent: a run in which more than this share of answers were
// 400, 401 or 403 measured the server refusing the bench, not selling.
const maxRefusedPercent = 1

// maxFailedPercent: a run in which more than this share of answers were
// 5xx other than a 503 with Retry-After (Result.BadServerErrors), or of
// purchases sent got no answer (Result.Errors), measured a server failing
// its buyers: an honest one decides a purchase or sheds it (429, 503 with
// Retry-After), and never fails it.
const maxFailedPercent = 1

const (
	// maxListedViolations: a check's detail lists this many, then counts.
	maxListedViolations = 5
	// fetchConsistentTries bounds Fetch's attempts at a quiet snapshot,
	// fetchPause apart: together longer than a cluster node takes to
	// refresh a sale's figures (its sync interval, 500 ms).
	fetchConsistentTries = 5
	fetchPause           = 500 * time.Millisecond
)

// Verify checks the guarantees of a sale from its export: what the server
// says it holds (sale, orders) against itself and against what the run was
// told (confirmed, every 201 including replays). It is pure: the same
// inputs give the same verdict. exported is when the export was read (by
// the verifier's clock): a confirmed order may have expired by then only
// if its hold had ended.
func Verify(sale api.Sale, orders []api.Order, confirmed []Confirmation, exported time.Time) *Verdict {
	return verify(sale, sale.PerUserLimit, orders, confirmed, exported)
}

// verify is Verify with the per-user limit to hold the buyers to: the
// largest the sale is known to have had (a lowered limit binds new
// purchases only).
func verify(sale api.Sale, limit int64, orders []api.Order, confirmed []Confirmation, exported time.Time) *Verdict {
	v := &Verdict{Stock: sale.Stock, Remaining: sale.Remaining, Orders: int64(len(orders))}

	byID := make(map[string]*api.Order, len(orders))
	for i := range orders {
		o := &orders[i]
		if _, dup := byID[o.ID]; !dup {
			byID[o.ID] = o
		}
	}
	distinct := make(map[string]struct{}, len(confirmed))
	for _, c := range confirmed {
		distinct[c.OrderID] = struct{}{}
	}
	v.Confirmed = int64(len(distinct))

	v.Checks = []Check{
		checkOversell(sale, orders, &v.LiveUnits),
		checkPerUser(sale, limit, orders),
		checkConfirmed(byID, confirmed, exported),
		checkOneOrderPerKey(orders),
		checkReplays(confirmed),
		checkRemaining(sale, v.LiveUnits),
		checkWellFormed(sale, orders),
	}
	v.OK = true
	for _, c := range v.Checks {
		v.OK = v.OK && c.OK
	}
	return v
}

// live reports whether an order holds units. A status other than the
// four the API has counts as live: an order the checker cannot read must
// not drop out of the units counted.
func live(o *api.Order) bool {
	switch o.Status {
	case "cancelled", "expired":
		return false
	}
	return true
}

// knownStatus reports whether s is one of the API's order statuses.
func knownStatus(s string) bool {
	switch s {
	case "reserved", "paid", "cancelled", "expired":
		return true
	}
	return false
}

// violations collects the first few problems and counts the rest.
type violations struct {
	first []string
	n     int
}

func (v *violations) add(format string, args ...any) {
	v.n++
	if len(v.first) < maxListedViolations {
		v.first = append(v.first, fmt.Sprintf(format, args...))
	}
}

// check is OK with detail ok when there is no violation, else it lists
// them after summary.
func (v *violations) check(name, ok, summary string) Check {
	if v.n == 0 {
		return Check{Name: name, OK: true, Detail: ok}
	}
	d := summary + ": " + strings.Join(v.first, "; ")
	if more := v.n - len(v.first); more > 0 {
		d += fmt.Sprintf("; and %d more", more)
	}
	return Check{Name: name, OK: false, Detail: d}
}

func checkOversell(sale api.Sale, orders []api.Order, liveUnits *int64) Check {
	var units int64
	var v violations
	// The export is in creation order: the orders that took the count
	// past the stock are the oversold ones.
	for i := range orders {
		o := &orders[i]
		if !live(o) {
			continue
		}
		units += o.Quantity
		if units > sale.Stock {
			v.add("order %s (user %s, %d units) brought the total to %d", o.ID, o.UserID, o.Quantity, units)
		}
	}
	*liveUnits = units
	return v.check(CheckNoOversell,
		fmt.Sprintf("%d units in reserved and paid orders, stock %d", units, sale.Stock),
		fmt.Sprintf("%d units in reserved and paid orders, %d over the stock of %d", units, units-sale.Stock, sale.Stock))
}

// checkPerUser holds every buyer to limit, the sale's largest known
// per-user limit (sale.PerUserLimit, or one before it was lowered).
func checkPerUser(sale api.Sale, limit int64, orders []api.Order) Check {
	units := make(map[string]int64)
	var v violations
	for i := range orders {
		o := &orders[i]
		if !live(o) {
			continue
		}
		before := units[o.UserID]
		units[o.UserID] = before + o.Quantity
		// Report each user once, at the order that crossed the limit.
		if before <= limit && before+o.Quantity > limit {
			v.add("user %s reached %d units with order %s", o.UserID, before+o.Quantity, o.ID)
		}
	}
	which := fmt.Sprintf("the limit of %d", limit)
	if limit != sale.PerUserLimit {
		which += fmt.Sprintf(" (the sale's when the run began; it is %d now, lowered since)", sale.PerUserLimit)
	}
	return v.check(CheckPerUserLimit,
		fmt.Sprintf("%d buyers hold units, none over %s", len(units), which),
		fmt.Sprintf("%d buyers over %s", v.n, which))
}

// clockSkew is how far the server's clock may run ahead of the
// verifier's before an expiry it made counts as early.
const clockSkew = time.Minute

// holdSlack is how much earlier than the run's clock allows a hold may
// end: the export's times are to the millisecond.
const holdSlack = time.Second

func checkConfirmed(byID map[string]*api.Order, confirmed []Confirmation, exported time.Time) Check {
	var v violations
	lost := 0
	// The earliest send of each confirmed order's key: the order is
	// younger, so its hold lasts at least until then plus the hold.
	sent := make(map[string]time.Time, len(confirmed))
	for _, c := range confirmed {
		if s, ok := sent[c.OrderID]; !c.Sent.IsZero() && (!ok || c.Sent.Before(s)) {
			sent[c.OrderID] = c.Sent
		}
	}
	for _, c := range confirmed {
		o, ok := byID[c.OrderID]
		switch {
		case !ok:
			lost++
			v.add("order %s confirmed to user %s is missing (lost confirmation)", c.OrderID, c.UserID)
		case o.UserID != c.UserID || o.Quantity != c.Quantity:
			v.add("order %s confirmed to user %s for %d units is user %s with %d units in the export",
				c.OrderID, c.UserID, c.Quantity, o.UserID, o.Quantity)
		case o.IdempotencyKey != c.Key:
			// The server answered the purchase with an order of another
			// key: that purchase holds no order of its own.
			v.add("order %s confirmed to user %s for key %q is the order of key %q in the export",
				c.OrderID, c.UserID, c.Key, o.IdempotencyKey)
		case o.Status == "cancelled":
			// A confirmed order gone: its units may be sold again, to
			// someone else, while its buyer holds a 201.
			v.add("order %s confirmed to user %s is cancelled in the export, and the run cancels nothing", c.OrderID, c.UserID)
		case o.Status == "expired" && !holdEnded(o, exported.Add(clockSkew)):
			v.add("order %s confirmed to user %s expired before its hold ended (expires_at %s, export read at %s)",
				c.OrderID, c.UserID, o.ExpiresAt, exported.UTC().Format(time.RFC3339))
		case o.Status == "expired" && !c.Expires.IsZero() && c.Expires.After(exported.Add(clockSkew)):
			// The export's times are the server's word after the fact: the
			// 201 promised the buyer a hold until its own expires_at.
			v.add("order %s confirmed to user %s expired before the hold its 201 gave ended (expires_at %s in the 201, %s in the export, export read at %s)",
				c.OrderID, c.UserID, c.Expires.UTC().Format(time.RFC3339Nano), o.ExpiresAt, exported.UTC().Format(time.RFC3339))
		case o.Status == "expired" && !sent[c.OrderID].IsZero() && exported.Add(holdSlack).Before(sent[c.OrderID].Add(max(hold(o), c.Hold))):
			// The server's clock may have run behind when it reserved (its
			// expires_at then looks past): the run's own clock says the
			// hold it gave, in the 201 or in the export, cannot have ended
			// yet.
			v.add("order %s confirmed to user %s expired before its hold of %s ended: its purchase was sent at %s, the export read at %s",
				c.OrderID, c.UserID, max(hold(o), c.Hold), sent[c.OrderID].UTC().Format(time.RFC3339Nano), exported.UTC().Format(time.RFC3339Nano))
		}
	}
	return v.check(CheckConfirmed,
		fmt.Sprintf("all %d confirmations are in the export", len(confirmed)),
		fmt.Sprintf("%d of %d confirmations do not match the export (%d missing)", v.n, len(confirmed), lost))
}

// userKey is an idempotency key in its scope: keys belong to a buyer.
type userKey struct{ user, key string }

func checkOneOrderPerKey(orders []api.Order) Check {
	first := make(map[userKey]string)
	var v violations
	for i := range orders {
		o := &orders[i]
		if o.IdempotencyKey == "" {
			continue
		}
		k := userKey{o.UserID, o.IdempotencyKey}
		if id, dup := first[k]; dup {
			v.add("user %s key %q has orders %s and %s", o.UserID, o.IdempotencyKey, id, o.ID)
			continue
		}
		first[k] = o.ID
	}
	return v.check(CheckOneOrderPerKey,
		fmt.Sprintf("%d keys, each on one order", len(first)),
		fmt.Sprintf("%d orders repeat a key", v.n))
}

func checkReplays(confirmed []Confirmation) Check {
	first := make(map[userKey]string, len(confirmed))
	var v violations
	replays := 0
	for _, c := range confirmed {
		if c.Key == "" {
			continue
		}
		k := userKey{c.UserID, c.Key}
		id, seen := first[k]
		if !seen {
			first[k] = c.OrderID
			continue
		}
		replays++
		if id != c.OrderID {
			v.add("user %s key %q was confirmed as %s and as %s", c.UserID, c.Key, id, c.OrderID)
		}
	}
	return v.check(CheckReplays,
		fmt.Sprintf("%d replays, each naming the first order", replays),
		fmt.Sprintf("%d of %d replays name another order", v.n, replays))
}

func checkRemaining(sale api.Sale, liveUnits int64) Check {
	want := sale.Stock - liveUnits
	detail := fmt.Sprintf("remaining %d = stock %d − %d live units", sale.Remaining, sale.Stock, liveUnits)
	if sale.Remaining == want {
		return Check{Name: CheckRemaining, OK: true, Detail: detail}
	}
	return Check{Name: CheckRemaining, OK: false,
		Detail: fmt.Sprintf("remaining %d, but stock %d − %d live units = %d", sale.Remaining, sale.Stock, liveUnits, want)}
}

// hold is the hold o was given: its expires_at less its created_at, both
// of one reading of the server's clock (0 when either is unreadable).
func hold(o *api.Order) time.Duration {
	created, err1 := api.ParseTime(o.CreatedAt)
	expires, err2 := api.ParseTime(o.ExpiresAt)
	if err1 != nil || err2 != nil {
		return 0
	}
	return max(expires.Sub(created), 0)
}

// holdEnded reports whether o's hold ended by t: an expiry before it is
// early (an unreadable expires_at is not an ended hold).
func holdEnded(o *api.Order, t time.Time) bool {
	at, err := api.ParseTime(o.ExpiresAt)
	return err == nil && !at.After(t)
}

// checkWellFormed flags orders the other checks would misread: of no
// units (a negative one takes units off the count), of a status the API
// does not have, or of another sale (a confirmation matched to it bought
// nothing in this one).
func checkWellFormed(sale api.Sale, orders []api.Order) Check {
	var v violations
	for i := range orders {
		o := &orders[i]
		if o.Quantity < 1 || !knownStatus(o.Status) || o.SaleID != sale.ID {
			v.add("order %s (user %s, %d units, status %q) of sale %q", o.ID, o.UserID, o.Quantity, o.Status, o.SaleID)
		}
	}
	return v.check(CheckWellFormed,
		fmt.Sprintf("%d orders of sale %s, each of at least one unit and a known status", len(orders), sale.ID),
		fmt.Sprintf("%d orders are not valid orders of sale %s", v.n, sale.ID))
}

// VerifyRun is Verify followed by the checks that the run r tested the
// sale at all: a run whose purchases were not answered, or were refused
// (more than 1 % of answers 400, 401 or 403: wrong identity, a waiting
// room, a malformed request), or failed (more than 1 % of answers a 5xx
// other than a 503 with Retry-After, or more than 1 % of purchases sent
// unanswered), or that reserved nothing while units were
// left proves nothing about the guarantees, however clean the export is. The run's checks come
// after the guarantees', so a violated guarantee is quoted first.
func VerifyRun(r *Result, sale api.Sale, orders []api.Order, confirmed []Confirmation, exported time.Time) *Verdict {
	// The limit the run began under holds too: an operator may have
	// lowered it since, which takes nothing from the buyers who hold more.
	v := verify(sale, max(sale.PerUserLimit, r.StartLimit), orders, confirmed, exported)
	// A replay refused after a 201 breaks the replays' guarantee, seen by
	// the run alone: the export holds nothing of it.
	for i := range v.Checks {
		if c := &v.Checks[i]; c.Name == CheckReplays && len(r.RefusedReplays) > 0 {
			*c = checkRefusedReplays(r.RefusedReplays, c)
			v.OK = false
		}
	}
	run := []Check{checkAccepted(r), checkReservedSome(r, sale), checkReadable201s(r), checkTerms(r, sale)}
	v.Checks = append(v.Checks, run...)
	for _, c := range run {
		v.OK = v.OK && c.OK
	}
	return v
}

// checkRefusedReplays fails the replays' check c with the replays of a
// 201 that were answered with another decided status.
func checkRefusedReplays(refused []RefusedReplay, c *Check) Check {
	var v violations
	for _, f := range refused {
		v.add("user %s key %q was confirmed as %s, then its replay was answered %d %s", f.UserID, f.Key, f.OrderID, f.Status, f.Code)
	}
	d := v.check(CheckReplays, "", fmt.Sprintf("%d replays of a 201 were not answered with it", v.n))
	if !c.OK {
		d.Detail = c.Detail + "; " + d.Detail
	}
	return d
}

// checkTerms fails a run whose own sale reads back with another stock or
// per-user limit than it was created with: the other checks read the
// terms from the server, so a server that raised them would hide an
// oversell. A sale the run did not create may be steered by its operator.
func checkTerms(r *Result, sale api.Sale) Check {
	c := r.Created
	switch {
	case c == nil:
		return Check{Name: CheckTerms, OK: true, Detail: "the run bought from an existing sale; its terms are the server's"}
	case sale.Stock != c.Stock || sale.PerUserLimit != c.PerUserLimit:
		return Check{Name: CheckTerms, OK: false, Detail: fmt.Sprintf(
			"the sale was created with stock %d and a limit of %d; it reads back with stock %d and a limit of %d",
			c.Stock, c.PerUserLimit, sale.Stock, sale.PerUserLimit)}
	}
	return Check{Name: CheckTerms, OK: true, Detail: fmt.Sprintf("stock %d and a limit of %d, as created", c.Stock, c.PerUserLimit)}
}

// checkReadable201s fails a run that got a 201 whose body named no order
// (codeBadBody): that confirmation cannot be held against the export, so
// "every 201 is a durable order" was not verified for it.
func checkReadable201s(r *Result) Check {
	if n := r.Codes[codeBadBody]; n > 0 {
		return Check{Name: CheckReadable201s, OK: false, Detail: fmt.Sprintf(
			"%s answers were 201 without an order id in their body: the orders they confirmed cannot be checked against the export", showInt(n))}
	}
	return Check{Name: CheckReadable201s, OK: true, Detail: "every 201 body named an order"}
}

func checkAccepted(r *Result) Check {
	// A run none of whose purchases was decided (each one unanswered, a
	// 5xx, or shed with 429 or 503) had no answer refused either: a server
	// that dropped or failed every purchase of a sold-out sale would pass.
	var undecided int64
	for s, n := range r.Status {
		if s >= 500 || shed(s) {
			undecided += n
		}
	}
	if r.Completed == undecided {
		return Check{Name: CheckAccepted, OK: false, Detail: fmt.Sprintf(
			"none of the %s purchases sent was decided (%s transport errors, %s answers 5xx, 429 or 503): the run tested nothing; "+
				"check --server, the network and the server's health", showInt(r.Sent), showInt(r.Errors), showInt(undecided))}
	}
	refusedStatus := []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden}
	var refused int64
	var parts []string
	for _, s := range refusedStatus {
		if n := r.Status[s]; n > 0 {
			refused += n
			parts = append(parts, fmt.Sprintf("%d × %s", s, showInt(n)))
		}
	}
	share := fmt.Sprintf("%s of %s answers (%s) were 400/401/403", showInt(refused), showInt(r.Completed), showPercent(refused, r.Completed))
	if refused*100 > maxRefusedPercent*r.Completed {
		return Check{Name: CheckAccepted, OK: false, Detail: share + fmt.Sprintf(", over %d%%: %s; ", maxRefusedPercent, strings.Join(parts, ", ")) +
			"the server refused the bench's purchases, so the run tested nothing: check the buyers' identity " +
			"(--jwt-secret, or the server's --insecure-user-header), a waiting room (403 not_admitted) or the request (400)"}
	}
	// A few decided purchases among many failed ones would otherwise
	// pass: the export of a broken server is clean.
	if bad := r.BadServerErrors; bad*100 > maxFailedPercent*r.Completed {
		return Check{Name: CheckAccepted, OK: false, Detail: fmt.Sprintf(
			"%s of %s answers (%s) were 5xx other than a 503 with Retry-After, over %d%%: %s; "+
				"the server failed the purchases instead of deciding or shedding them: check its log and its storage",
			showInt(bad), showInt(r.Completed), showPercent(bad, r.Completed), maxFailedPercent, serverErrors(r.Status, bad))}
	}
	// Nor may a few among many left unanswered: a purchase that timed out
	// (or lost its connection) was neither decided nor shed: the run
	// cannot tell whether it bought.
	if lost := r.Errors; lost*100 > maxFailedPercent*r.Sent {
		return Check{Name: CheckAccepted, OK: false, Detail: fmt.Sprintf(
			"%s of %s purchases sent (%s) got no answer (a timeout or a broken connection), over %d%%: "+
				"the server neither decided nor shed them: check its log, its storage and --timeout",
			showInt(lost), showInt(r.Sent), showPercent(lost, r.Sent), maxFailedPercent)}
	}
	return Check{Name: CheckAccepted, OK: true, Detail: share + fmt.Sprintf(", at most %d%%; %s 5xx other than a 503 with Retry-After; %s unanswered",
		maxRefusedPercent, showInt(r.BadServerErrors), showInt(r.Errors))}
}

// serverErrors lists the statuses of bad 5xx answers, e.g. "500 × 180,
// 503 without Retry-After × 3": every 5xx but 503 in status, and the 503s
// left of bad.
func serverErrors(status map[int]int64, bad int64) string {
	var parts []string
	for _, s := range statusRows(status) {
		if s.Status >= 500 && s.Status != http.StatusServiceUnavailable && s.Count > 0 {
			parts = append(parts, fmt.Sprintf("%d × %s", s.Status, showInt(s.Count)))
			bad -= s.Count
		}
	}
	if bad > 0 {
		parts = append(parts, fmt.Sprintf("503 without Retry-After × %s", showInt(bad)))
	}
	return strings.Join(parts, ", ")
}

// checkReservedSome fails a run that made no new reservation although the
// sale still had units at the end.
func checkReservedSome(r *Result, sale api.Sale) Check {
	made, replays := r.Codes[codeReserved], r.Codes[codeReplayed]
	switch {
	case made > 0:
		return Check{Name: CheckReserved, OK: true,
			Detail: fmt.Sprintf("%s new reservations, %s replays", showInt(made), showInt(replays))}
	case sale.Remaining <= 0:
		return Check{Name: CheckReserved, OK: true, Detail: "none: the sale had no units left"}
	}
	return Check{Name: CheckReserved, OK: false, Detail: fmt.Sprintf(
		"no purchase reserved although %s of %s units were left; the answers: %s",
		showInt(sale.Remaining), showInt(sale.Stock), topCodes(r.Codes, 3))}
}

// topCodes lists the n most frequent outcomes, e.g. "unauthorized ×
// 10,000, transport_error × 3".
func topCodes(codes map[string]int64, n int) string {
	type kv struct {
		code  string
		count int64
	}
	var all []kv
	for c, k := range codes {
		if k > 0 {
			all = append(all, kv{c, k})
		}
	}
	if len(all) == 0 {
		return "none"
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].count != all[j].count {
			return all[i].count > all[j].count
		}
		return all[i].code < all[j].code
	})
	var parts []string
	for _, e := range all[:min(n, len(all))] {
		parts = append(parts, fmt.Sprintf("%s × %s", e.code, showInt(e.count)))
	}
	if more := len(all) - n; more > 0 {
		parts = append(parts, fmt.Sprintf("%d other outcomes", more))
	}
	return strings.Join(parts, ", ")
}

// Fetch reads a sale and its whole order export (admin), for Verify. The
// sale is read before and after the export, and the three read again,
// after a pause, unless they agree: the same remaining stock twice (a hold
// expiring, another client buying would change it), neither read stale,
// and that figure equal to the stock less the export's live units. A
// cluster node answers a sale's figures from its own copy, which follows
// the other nodes' sales within its sync interval (500 ms) and is marked
// stale while it cannot refresh it: figures read then are not the
// server's word on the export, and Verify would report the lag as a
// violation. A pair that still disagrees after the last try is returned
// for Verify to judge, unless it is stale: that is an error (nothing to
// verify against).
func Fetch(ctx context.Context, c *client.Client, saleID string) (api.Sale, []api.Order, error) {
	var orders []api.Order
	var sale api.Sale
	for try := 1; ; try++ {
		before, err := c.Sale(ctx, saleID)
		if err != nil {
			return api.Sale{}, nil, fmt.Errorf("read sale %q: %w", saleID, err)
		}
		orders = orders[:0]
		err = c.Orders(ctx, saleID, func(o api.Order) error {
			orders = append(orders, o)
			return nil
		})
		if err != nil {
			return api.Sale{}, nil, fmt.Errorf("export orders of sale %q: %w", saleID, err)
		}
		if sale, err = c.Sale(ctx, saleID); err != nil {
			return api.Sale{}, nil, fmt.Errorf("read sale %q: %w", saleID, err)
		}
		stale := before.Stale || sale.Stale
		if !stale && sale.Remaining == before.Remaining && sale.Remaining == sale.Stock-liveUnits(orders) {
			return sale, orders, nil
		}
		if try == fetchConsistentTries {
			if stale {
				return api.Sale{}, nil, fmt.Errorf("read sale %q: its figures were stale in %d reads over %v (the server could not refresh them from its stores), so the export cannot be checked against them",
					saleID, 2*fetchConsistentTries, time.Duration(fetchConsistentTries-1)*fetchPause)
			}
			return sale, orders, nil
		}
		select {
		case <-ctx.Done():
			return api.Sale{}, nil, fmt.Errorf("read sale %q: %w", saleID, ctx.Err())
		case <-time.After(fetchPause):
		}
	}
}

// liveUnits is the units of orders that hold stock (live).
func liveUnits(orders []api.Order) int64 {
	var n int64
	for i := range orders {
		if live(&orders[i]) {
			n += orders[i].Quantity
		}
	}
	return n
}
