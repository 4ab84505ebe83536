package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/surgehq/surge"
)

// Outcome codes that reports single out; anything else in Result.Codes is
// listed after them, largest first.
const (
	outcomeReserved     = "reserved"
	outcomeReplayed     = "replayed"
	outcomeSoldOut      = "sold_out"
	outcomeLimitReached = "limit_reached"
	outcomeTransport    = "transport_error"
)

// verdictDetailMax bounds the detail quoted on the one-line verdict; the
// full detail is in the list of checks.
const verdictDetailMax = 200

// VerdictLine is the one-line verdict of a run:
//
//	VERDICT: PASS — no oversell, limits held, every 201 present (1000 confirmed, 1000 of 1000 units sold)
//	VERDICT: FAIL — no oversell: 1003 units live, stock 1000
//	VERDICT: NOT VERIFIED
//
// A pass lists the names of the checks that held, so it reads best when
// checks are named as guarantees. A verdict fails when it is not OK or when
// any of its checks failed; the first failed check is quoted.
func VerdictLine(v *Verdict) string {
	if v == nil {
		return "VERDICT: NOT VERIFIED"
	}
	var b strings.Builder
	if failed := firstFailedCheck(v); failed != nil || !v.OK {
		b.WriteString("VERDICT: FAIL — ")
		if failed == nil {
			b.WriteString("verification failed")
		} else {
			b.WriteString(squashLine(failed.Name, verdictDetailMax))
			if d := squashLine(failed.Detail, verdictDetailMax); d != "" {
				b.WriteString(": ")
				b.WriteString(d)
			}
		}
		return b.String()
	}
	b.WriteString("VERDICT: PASS — ")
	if len(v.Checks) == 0 {
		b.WriteString("no checks ran")
	}
	for i, c := range v.Checks {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(squashLine(c.Name, verdictDetailMax))
	}
	if v.Stock != 0 || v.Confirmed != 0 || v.LiveUnits != 0 {
		fmt.Fprintf(&b, " (%d confirmed, %d of %d units sold)", v.Confirmed, v.LiveUnits, v.Stock)
	}
	return b.String()
}

// verdictClass classifies a verdict for display: "pass", "fail" or "none".
func verdictClass(v *Verdict) string {
	switch {
	case v == nil:
		return "none"
	case v.OK && firstFailedCheck(v) == nil:
		return "pass"
	default:
		return "fail"
	}
}

func firstFailedCheck(v *Verdict) *Check {
	for i := range v.Checks {
		if !v.Checks[i].OK {
			return &v.Checks[i]
		}
	}
	return nil
}

// squashLine puts s on one line, its lines joined by "; " and runs of
// spaces collapsed, and cuts it to max runes.
func squashLine(s string, max int) string {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	s = strings.Join(lines, "; ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:max-1])) + "…"
}

// WriteJSON writes r as indented JSON, the --json report.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench: writing JSON report: %w", err)
	}
	return nil
}

// WriteSummary writes a readable summary of r for a terminal: the run, its
// requests, latency and outcomes, the client's overhead, the verification
// and, last, the one-line verdict.
func WriteSummary(w io.Writer, r *Result) {
	if r == nil {
		r = &Result{}
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("Surge bench: sale %q at %s\n", r.SaleID, orDash(r.Target))
	p("  load        %s\n", loadText(r))
	p("  crowd       %s users, %s connections\n", showInt(int64(r.Users)), showInt(int64(r.Connections)))
	p("  time        %s", elapsedText(r.Elapsed))
	if !r.Started.IsZero() {
		p(", started %s", r.Started.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	p("\n\nRequests\n")
	p("  sent        %-12s answered %-12s transport errors %s\n", showInt(r.Sent), showInt(r.Completed), showInt(r.Errors))
	p("  throughput  %s answers/s\n", showRate(r.Throughput))
	l := r.Latency
	p("  latency     p50 %s · p90 %s · p99 %s · p99.9 %s · max %s ms", showMs(l.P50), showMs(l.P90), showMs(l.P99), showMs(l.P999), showMs(l.Max))
	if l.Count > 0 {
		p(" (mean %s ms over %s)", showMs(l.Mean), showInt(l.Count))
	}
	p("\n")
	p("  goodput     %s decided/s (201 + 409) · shed %s (429 + 503) · 5xx without Retry-After %s\n",
		showRate(r.Goodput), showInt(r.Shed), showInt(r.BadServerErrors))
	if a := r.Admitted; r.Shed > 0 && a.Count > 0 {
		p("  admitted    p50 %s · p90 %s · p99 %s · p99.9 %s · max %s ms (every request but the 429 and 503 answers)\n",
			showMs(a.P50), showMs(a.P90), showMs(a.P99), showMs(a.P999), showMs(a.Max))
	}
	if r.Scheduled > 0 {
		p("  scheduled   %s purchases by the shape, %s never sent\n", showInt(r.Scheduled), showInt(r.Unsent))
	}
	p("  reservations %s\n", reservationsText(r))
	p("\n")

	rows, total := outcomeRows(r)
	width := len("transport errors")
	for _, o := range rows {
		width = max(width, utf8.RuneCountInString(o.Label))
	}
	p("Outcomes%s %12s %8s\n", strings.Repeat(" ", width-len("Outcomes")+2), "count", "share")
	for _, o := range rows {
		p("  %s%s %12s %8s\n", o.Label, strings.Repeat(" ", width-utf8.RuneCountInString(o.Label)), showInt(o.Count), showPercent(o.Count, total))
	}

	p("\nHTTP status ")
	if len(r.Status) == 0 {
		p(" none")
	}
	for i, s := range statusRows(r.Status) {
		if i > 0 {
			p(" ·")
		}
		p(" %d: %s", s.Status, showInt(s.Count))
	}
	p("\nClient       CPU %s s (%s of all cores)", showFloat(r.Client.CPUSeconds, 2), showShare(r.Client.CPUShare))
	if r.Mode == OpenLoop || r.Client.Late > 0 {
		p(", %s late sends", showInt(r.Client.Late))
	}
	p("\n\n")

	if v := r.Verdict; v != nil {
		p("Verification: stock %s · remaining %s · orders %s · units sold %s · confirmed %s\n",
			showInt(v.Stock), showInt(v.Remaining), showInt(v.Orders), showInt(v.LiveUnits), showInt(v.Confirmed))
		nameWidth := 0
		for _, c := range v.Checks {
			nameWidth = max(nameWidth, utf8.RuneCountInString(c.Name))
		}
		for _, c := range v.Checks {
			mark := "✓"
			if !c.OK {
				mark = "✗"
			}
			pad := strings.Repeat(" ", nameWidth-utf8.RuneCountInString(c.Name))
			lines := strings.Split(strings.TrimRight(c.Detail, "\n"), "\n")
			b.WriteString(strings.TrimRight(fmt.Sprintf("  %s %s%s  %s", mark, c.Name, pad, lines[0]), " "))
			b.WriteByte('\n')
			for _, line := range lines[1:] {
				p("    %s  %s\n", strings.Repeat(" ", nameWidth), line)
			}
		}
		if len(v.Checks) == 0 {
			p("  (no checks)\n")
		}
	} else {
		p("Verification: not run\n")
	}
	if warn := deliveryWarning(r); warn != "" {
		p("\nWARNING: %s\n", warn)
	}
	p("\n%s\n", VerdictLine(r.Verdict))
	io.WriteString(w, shown(b.String()))
}

// shown is the summary's text as a terminal shows it: a character a
// terminal would obey rather than show (an escape, a carriage return, a
// bidirectional override) in what the server sent, an error code or an
// order id, could hide the verdict or rewrite a line, and is written
// escaped instead ("\x1b"). The summary's own line breaks stay.
func shown(s string) string {
	unshowable := func(r rune) bool { return r != '\n' && surge.Unshowable(r) }
	if !strings.ContainsFunc(s, unshowable) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unshowable(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// maxLatePercent: when more sends than this share left late, the client
// could not keep to the shape, and the reports say the shape was not
// delivered.
const maxLatePercent = 5

// deliveryWarning says, for an open-loop run whose sends left late more
// than maxLatePercent of the time, that the server was not offered the
// shape asked for; "" otherwise. A purchase the shape called for within
// the run that never left (Unsent: every connection held until the run
// ended) was not offered either, and counts as late, more so.
func deliveryWarning(r *Result) string {
	late, sent, unsent := r.Client.Late, r.Sent, max(r.Unsent, 0)
	missed, due := late+unsent, sent+unsent
	if r.Mode != OpenLoop || due <= 0 || missed*100 <= maxLatePercent*due {
		return ""
	}
	what := fmt.Sprintf("%s of %s sends (%s) left late (more than 1 ms behind busy connections, or 20 ms behind the schedule)",
		showInt(late), showInt(sent), showPercent(late, sent))
	if unsent > 0 {
		what += fmt.Sprintf(" and %s of the %s purchases the shape called for (%s) were never sent",
			showInt(unsent), showInt(r.Scheduled), showPercent(unsent, r.Scheduled))
	}
	return fmt.Sprintf("shape not delivered: %s, over %d%%: "+
		"the client could not keep to the schedule (every connection busy, or too little CPU for the bench), "+
		"so the server was offered less than the shape; raise --connections, or give the bench cores of its own",
		what, maxLatePercent)
}

// reservationsText tells new reservations from replays (a 201 answering a
// key again names the first order, and sells nothing), and when the sale
// sold out.
func reservationsText(r *Result) string {
	s := showInt(r.Codes[outcomeReserved]) + " new · " + showInt(r.Codes[outcomeReplayed]) + " replays of a key (same order again) · "
	if r.SoldOutAt > 0 {
		return s + "sold out at " + elapsedText(r.SoldOutAt)
	}
	return s + "no sold_out answer"
}

// outcomeRow is one row of the outcome breakdown.
type outcomeRow struct {
	Code  string // key in Result.Codes
	Label string
	Count int64
	Kind  string // "ok", "reject", "fail": how a report colours it
}

// outcomeRows lists outcomes in a fixed order: reserved, replayed,
// sold_out and limit_reached always, then other codes by count (largest first), then
// transport errors. total is the sum of the counts.
func outcomeRows(r *Result) (rows []outcomeRow, total int64) {
	rows = []outcomeRow{
		{Code: outcomeReserved, Label: outcomeReserved, Count: r.Codes[outcomeReserved], Kind: "ok"},
		{Code: outcomeReplayed, Label: outcomeReplayed, Count: r.Codes[outcomeReplayed], Kind: "ok"},
		{Code: outcomeSoldOut, Label: outcomeSoldOut, Count: r.Codes[outcomeSoldOut], Kind: "reject"},
		{Code: outcomeLimitReached, Label: outcomeLimitReached, Count: r.Codes[outcomeLimitReached], Kind: "reject"},
	}
	var others []outcomeRow
	for code, n := range r.Codes {
		switch code {
		case outcomeReserved, outcomeReplayed, outcomeSoldOut, outcomeLimitReached, outcomeTransport:
			continue
		}
		label := code
		if label == "" {
			label = "(no code)"
		}
		others = append(others, outcomeRow{Code: code, Label: label, Count: n, Kind: "fail"})
	}
	sort.Slice(others, func(i, j int) bool {
		if others[i].Count != others[j].Count {
			return others[i].Count > others[j].Count
		}
		return others[i].Code < others[j].Code
	})
	rows = append(rows, others...)
	transport, ok := r.Codes[outcomeTransport]
	if !ok {
		transport = r.Errors
	}
	rows = append(rows, outcomeRow{Code: outcomeTransport, Label: "transport errors", Count: transport, Kind: "fail"})
	for _, o := range rows {
		total += o.Count
	}
	return rows, total
}

type statusRow struct {
	Status int
	Count  int64
}

func statusRows(m map[int]int64) []statusRow {
	rows := make([]statusRow, 0, len(m))
	for s, n := range m {
		rows = append(rows, statusRow{s, n})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Status < rows[j].Status })
	return rows
}

// failedAnswers counts answers that are failures: any status of 400 or
// more except 409 (a rejection such as sold out is a correct answer).
func failedAnswers(m map[int]int64) int64 {
	var n int64
	for s, c := range m {
		if s >= 400 && s != 409 {
			n += c
		}
	}
	return n
}

func loadText(r *Result) string {
	var mode string
	switch r.Mode {
	case OpenLoop:
		mode = "open loop"
	case ClosedLoop:
		mode = "closed loop"
	case "":
		mode = "—"
	default:
		mode = string(r.Mode)
	}
	if r.Shape != "" {
		return mode + ", " + r.Shape
	}
	return mode
}

func elapsedText(d Duration) string {
	return showFloat(time.Duration(d).Seconds(), 3) + " s"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// finiteOr0 replaces NaN and infinities by 0, so that no report prints them.
func finiteOr0(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func showFloat(v float64, prec int) string {
	return strconv.FormatFloat(finiteOr0(v), 'f', prec, 64)
}

// showMs formats milliseconds with about three significant digits.
func showMs(v float64) string {
	v = finiteOr0(v)
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return showInt(int64(math.Round(v)))
	}
}

// showRate formats a rate per second with one decimal and digit grouping.
func showRate(v float64) string {
	v = finiteOr0(v)
	whole := math.Trunc(v)
	frac := int64(math.Round(math.Abs(v-whole) * 10))
	if frac == 10 {
		whole += math.Copysign(1, v)
		frac = 0
	}
	return showInt(int64(whole)) + "." + strconv.FormatInt(frac, 10)
}

// showShare formats a 0..1 share as a percentage.
func showShare(v float64) string {
	return showFloat(100*v, 1) + "%"
}

func showPercent(n, total int64) string {
	if total <= 0 {
		return "—"
	}
	share := 100 * float64(n) / float64(total)
	if n > 0 && share < 0.05 {
		return "<0.1%"
	}
	return showFloat(share, 1) + "%"
}

// showInt formats n with a comma every three digits: 1,234,567.
func showInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if len(s) <= 3 {
		if neg {
			return "-" + s
		}
		return s
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 && !(neg && b.Len() == 1) {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
